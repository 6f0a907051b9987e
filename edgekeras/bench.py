"""Latency, cold start, memory and delegation of an artifact in a runtime (no TensorFlow import).

The measurement is the on-device runner's (`edgekeras/devices/edgekeras_runner.py`, the one
implementation). By default it runs as a fresh child process of this Python -- so the peak RSS
is that of a process doing nothing but the benchmark, and a runtime that crashes is an error
message, not a dead edgekeras -- or on a device through ssh (`device=`). Its timed loop calls
only the runtime's own invoke between two `perf_counter_ns` reads (benchmarks/bench_overhead.py
and benchmarks/runner_overhead.py measure that nothing is added).

Results follow `edgekeras/schemas/bench.schema.json` and are added to the artifact's manifest.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.hints import JSONDict, PathLike
    from edgekeras.remote import SSHDevice

from edgekeras.artifact import as_artifact
from edgekeras.constraints import check_artifact
from edgekeras.devices import edgekeras_runner as runner
from edgekeras.errors import InputError, expected_one_of
from edgekeras.progress import Progress
from edgekeras.quiet import captured_output
from edgekeras.remote import SSHDevice, as_device, benchmark_on_device
from edgekeras.runtimes import RUNTIMES, check_options, get_runtime, runtimes_for
from edgekeras.runtimes.runner import NoBar, local_command, run_runner, runner_args
from edgekeras.runtimes.session import runner_errors
from edgekeras.targets import get_target
from edgekeras.xnnpack_sparse import verdict

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "bench.schema.json"


@dataclass
class BenchResult:
    """One benchmark: the `result` object of bench.schema.json (see it for units and meaning)."""

    artifact: str
    format: str
    size_bytes: int
    sha256: str
    runtime: str
    runtime_package: str
    runtime_version: str
    threads: int | None  # requested; None: the runtime's default
    runs: int
    warmup: int
    batch_size: int
    inputs: str  # "generated", "file" or "given"
    import_ms: float
    load_ms: float
    first_inference_ms: float
    cold_start_ms: float  # load + first inference
    latency_ms: dict[str, float]  # mean std min p50 p90 p99 max
    peak_rss_mb: float
    baseline_rss_mb: float
    model_rss_mb: float  # peak minus the RSS just before the model was loaded
    memory_scope: str  # "since_load" or "process_lifetime"
    fresh_process: bool
    details: dict[str, Any]  # delegation (LiteRT) or providers per node (ONNX Runtime)
    host: dict[str, Any]
    device: str | None  # None: this machine; else the ssh:// URL it ran on
    timestamp: str

    @property
    def p50(self) -> float:
        return self.latency_ms["p50"]

    def to_dict(self) -> JSONDict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchResult:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def benchmark(
    artifact: Artifact | PathLike,
    runtime: str | None = None,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    inputs: str | Path | dict[str, Any] | None = None,
    batch_size: int = 1,
    save: bool = True,
    progress: bool = True,
    device: str | SSHDevice | None = None,
    isolate: bool = True,
    target: PathLike | None = None,
    **options: Any,
) -> BenchResult:
    """Measures `artifact` in `runtime`; the result is added to its manifest when it has one.

    `inputs`: None (generated from the signature), a `.npz`/`.npy` path, or {input name:
    array}; the first `batch_size` rows are used. `options` are the runtime's: `xnnpack`,
    `delegate` (LiteRT), `provider` (ONNX Runtime). `device`: None for this machine, or an
    `ssh://user@host[:port]` URL / `edgekeras.remote.SSHDevice` to measure on a device (a
    delegate path then names a file on the device). `isolate=False` measures inside this
    process instead of a fresh one (its peak RSS then includes whatever this process holds).
    `target`: a deployment target name/YAML; it sets the runtime, threads and runtime options,
    and its constraints (latency included) are checked and recorded in the manifest
    (`edgekeras.constraints.check_artifact`; this function does not raise on a violation).
    """
    remote = as_device(device)
    artifact = as_artifact(artifact)
    target_obj = None
    if target is not None:
        target_obj = get_target(target)
        implied = target_obj.bench_options(runtime, threads, **options)
        runtime, threads = implied.pop("runtime"), implied.pop("threads")
        options = implied
    _check_counts(runs=runs, warmup=warmup, threads=threads, batch_size=batch_size)
    name = _runtime_name(artifact, runtime)
    # What the exporter found the artifact needs (e.g. xnnpack off) unless the caller says otherwise.
    options = {
        **(artifact.manifest.get("runtime_options") or {}),
        **{k: v for k, v in options.items() if v is not None},
    }
    check_options(name, options)
    if remote is None:
        get_runtime(name)  # installed here? (else: what to pip install, what is available)
    artifact.check_external_data()
    with _inputs_file(inputs, batch_size, keep_dict=not isolate and remote is None) as (given, label):
        args = dict(runtime=name, threads=threads, runs=runs, warmup=warmup, batch_size=batch_size)
        if remote is not None:
            data = benchmark_on_device(
                remote, artifact.path, args, options, given, label, progress, artifact.external_files
            )
        elif isolate:
            command = local_command(
                runner_args(artifact.path, inputs=given, inputs_label=label, options=options, **args)
            )
            data = run_runner(command, f"{artifact.path.name} ({name})", runs, progress)["results"][0]
        else:
            data = _in_process(artifact, args, options, given, label, progress)
    data["artifact"] = str(artifact.path)
    data["device"] = remote.url if remote is not None else None
    if data["format"] == "tflite" and data["details"].get("xnnpack"):
        data["details"]["xnnpack_sparse"] = verdict(artifact.path, host=data["host"])
    result = BenchResult.from_dict(data)
    if save and artifact.manifest_path.exists():
        artifact.manifest.record_benchmark(result.to_dict())
    if target_obj is not None:
        check_artifact(artifact, target_obj, p50_ms=result.latency_ms["p50"], save=save)
    return result


def _check_counts(**values: Any) -> None:
    lows = {"runs": 1, "warmup": 0, "threads": 1, "batch_size": 1}
    for name, value in values.items():
        if value is None and name == "threads":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < lows[name]:
            raise InputError(
                f"Expected --{name.replace('_', '-')} to be an integer >= {lows[name]}. Received: {value!r}."
            )


def _runtime_name(artifact: Artifact, runtime: str | None) -> str:
    if runtime is None:
        return runtimes_for(artifact.format)[0]
    if runtime not in RUNTIMES:
        raise expected_one_of("--runtime", runtime, RUNTIMES)
    if runtime not in runtimes_for(artifact.format):
        raise InputError(
            f"Expected a runtime that runs {artifact.format} artifacts "
            f"({', '.join(runtimes_for(artifact.format))}). Received: --runtime {runtime}."
        )
    return runtime


@contextlib.contextmanager
def _inputs_file(
    inputs: str | Path | dict[str, Any] | None, batch_size: int, keep_dict: bool = False
) -> Iterator[tuple[Any, str | None]]:
    """Yields (what the runner reads, how errors name it): a path, a dict (in process) or None.

    Arrays given in memory are written to a temporary `.npz` (first `batch_size` rows) for a
    runner in another process.
    """
    import numpy as np

    if inputs is None:
        yield None, None
    elif isinstance(inputs, (str, Path)):
        path = Path(inputs)
        if path.suffix not in (".npz", ".npy") or not path.is_file():
            raise InputError(
                f"Expected --inputs to be an existing .npz (arrays named after the inputs) or .npy "
                f"file. Received: '{path}'{'' if path.exists() else ', which does not exist'}."
            )
        yield path, f"'{path}'"
    elif isinstance(inputs, dict):
        if keep_dict:
            yield inputs, "the given inputs"
            return
        with tempfile.TemporaryDirectory(prefix="edgekeras-inputs-") as folder:
            path = Path(folder) / "inputs.npz"
            # Any: numpy's stubs type **arrays like savez's allow_pickle
            arrays: dict[str, Any] = {k: np.asarray(v)[:batch_size] for k, v in inputs.items()}
            np.savez(path, **arrays)
            yield path, "the given inputs"
    else:
        raise InputError(
            f"Expected inputs as a .npz/.npy path or {{input name: array}}. Received: {type(inputs).__name__}."
        )


def _in_process(artifact, args, options, inputs, label, progress):
    with (
        (
            Progress(f"Benchmarking {artifact.path.name} ({args['runtime']})", args["runs"]) if progress else NoBar()
        ) as bar,
        runner_errors(),
        captured_output(),
    ):  # runtime INFO lines stay hidden
        return runner.benchmark(
            artifact.path,
            inputs=inputs,
            inputs_label=label,
            on_progress=lambda done, total: bar.update(done - bar.count),
            fresh_process=False,
            **args,
            **options,
        )
