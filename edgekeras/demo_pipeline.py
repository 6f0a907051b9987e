"""`demo`: the whole pipeline on the embedded digits data, in about a minute on 2 cores."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.hints import PathLike
    from edgekeras.signature import TensorSpec
    from edgekeras.training import Run

from edgekeras.bench import benchmark
from edgekeras.reporting import artifact_rows, text_table, write_report
from edgekeras.signature import TensorSpec
from edgekeras.training import train


def demo(out: PathLike | None = None, force: bool = False, runs: int = 200, threads: int = 2) -> tuple[Run, str]:
    """Trains the shipped `digits-cnn` recipe, converts to TFLite and ONNX at fp32 and int8,
    validates and benchmarks every artifact, and returns (run, table text)."""
    run = train("digits-cnn", out=out, force=force)
    assert run.data.test is not None  # the shipped recipe keeps a test split
    sample = run.data.test.take(1)
    for artifact in run.artifacts:
        benchmark(artifact, threads=threads, runs=runs, warmup=20, inputs=sample.feeds(artifact_inputs(artifact)))
    write_report(run.path)
    return run, text_table(artifact_rows(run.artifacts))


def artifact_inputs(artifact: Artifact) -> list[TensorSpec]:
    return [TensorSpec.from_dict(d) for d in artifact.manifest["inputs"]]
