"""Latency, cold start and memory of an artifact in a runtime (no TensorFlow import).

The timed loop calls only the session's `invoke()` — the runtime's own call — between two
`perf_counter_ns` reads, so the figures are the runtime's, not edgekeras' (see
benchmarks/bench_overhead.py for the measured overhead).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edgekeras.progress import Progress


@dataclass
class BenchResult:
    artifact: str
    runtime: str
    runtime_version: str
    threads: int | None
    runs: int
    warmup: int
    batch_size: int
    size_bytes: int
    load_ms: float
    first_inference_ms: float
    latency_ms: dict = field(default_factory=dict)  # mean std min p50 p90 p99 max
    peak_rss_mb: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def p50(self):
        return self.latency_ms["p50"]

    def to_dict(self):
        return asdict(self)


def latency_stats(samples_ms):
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def benchmark(artifact, runtime=None, threads=None, runs=100, warmup=10, inputs=None, batch_size=1,
              save=True, progress=True, **options):
    """Measures `artifact` in `runtime`; the result is added to its manifest when it has one.

    `inputs` is {input name: array} (the first `batch_size` rows are used) or None to
    generate inputs from the artifact's signature.
    """
    from edgekeras.artifact import as_artifact
    from edgekeras.errors import InputError
    from edgekeras.runtimes import get_runtime, open_session, runtimes_for
    from edgekeras.validation import generated_inputs

    if runs < 1 or warmup < 0:
        raise InputError(f"Expected --runs >= 1 and --warmup >= 0. Received: runs={runs}, warmup={warmup}.")
    artifact = as_artifact(artifact)
    name = runtime or runtimes_for(artifact.format)[0]
    t0 = time.perf_counter()
    session = open_session(artifact.path, runtime=name, threads=threads, **options)
    if inputs is None:
        feeds = generated_inputs(session.inputs, n=batch_size)
    else:
        feeds = {k: np.asarray(v)[:batch_size] for k, v in inputs.items()}
    session.prepare(feeds)
    t1 = time.perf_counter()
    session.invoke()
    t2 = time.perf_counter()
    for _ in range(warmup):
        session.invoke()
    samples = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    invoke = session.invoke
    with Progress(f"Benchmarking {artifact.name} ({name})", runs) if progress else _NoBar() as bar:
        step = max(1, runs // 50)
        for i in range(runs):
            start = clock()
            invoke()
            samples[i] = clock() - start
            if i % step == step - 1:
                bar.update(step)
    result = BenchResult(
        artifact=str(artifact.path), runtime=name, runtime_version=get_runtime(name).version(),
        threads=threads, runs=runs, warmup=warmup, batch_size=batch_size,
        size_bytes=artifact.size_bytes, load_ms=(t1 - t0) * 1e3, first_inference_ms=(t2 - t1) * 1e3,
        latency_ms=latency_stats(samples / 1e6), peak_rss_mb=_peak_rss_mb(), details=session.details(),
    )
    if save and artifact.manifest_path.exists():
        kept = [b for b in artifact.manifest.get("benchmarks", [])
                if (b.get("runtime"), b.get("threads")) != (name, threads)]
        artifact.manifest["benchmarks"] = kept + [result.to_dict()]
        artifact.save()
    return result


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def update(self, n=1):
        pass
