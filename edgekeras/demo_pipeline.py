"""`demo`: the whole pipeline on the embedded digits data, in about a minute on 2 cores."""

from __future__ import annotations

from typing import Any

from edgekeras.bench import benchmark
from edgekeras.reporting import artifact_rows, text_table, write_report
from edgekeras.signature import TensorSpec
from edgekeras.training import train


def demo(out: Any = None, force: bool = False, runs: int = 200, threads: int = 2) -> tuple[Any, str]:
    """Trains the shipped `digits-cnn` recipe, converts to TFLite and ONNX at fp32 and int8,
    validates and benchmarks every artifact, and returns (run, table text)."""
    run = train("digits-cnn", out=out, force=force)
    sample = run.data.test.take(1)
    for artifact in run.artifacts:
        benchmark(artifact, threads=threads, runs=runs, warmup=20, inputs=sample.feeds(artifact_inputs(artifact)))
    write_report(run.path)
    return run, text_table(artifact_rows(run.artifacts))


def artifact_inputs(artifact):
    return [TensorSpec.from_dict(d) for d in artifact.manifest["inputs"]]
