"""Building and measuring one candidate: convert it here, validate and benchmark it on its site.

`Converter` writes a candidate's artifact with `convert`'s own exporter and manifest writer
(one `ExportContext` per model, so its SavedModel and fp32 graphs are built once for every
candidate), or takes it from the cache. `measure` validates it on the labelled data -- the
outputs computed on the site's device when it has one, compared here -- benchmarks it with
the target's runtime, threads and delegate/provider, and checks the target's constraints.
Each result is a `Row`; `verdict` judges the rows.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.artifact import Artifact
from edgekeras.bench import benchmark
from edgekeras.constraints import check_artifact
from edgekeras.conversion import write_artifact
from edgekeras.conversion_plan import ConversionJob
from edgekeras.deployment.cache import DeployCache, digest
from edgekeras.deployment.candidates import Candidate
from edgekeras.deployment.sites import Site
from edgekeras.errors import ConversionError, EdgekerasError
from edgekeras.export import get_exporter
from edgekeras.export.context import ExportContext
from edgekeras.manifest import RECORDED_SECTIONS, Manifest
from edgekeras.validation import validate

if TYPE_CHECKING:
    from edgekeras.data.bundle import Split
    from edgekeras.hints import Arrays, JSONDict
    from edgekeras.keras_model import KerasModel

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One candidate on one site: what was built and measured, and the verdict on it."""

    candidate: Candidate
    site: Site
    artifact: Path | None = None
    validation: JSONDict | None = None  # ValidationResult.to_dict()
    benchmark: JSONDict | None = None  # BenchResult.to_dict()
    constraints: list[JSONDict] = field(default_factory=list)
    error: str | None = None  # why it could not be built or measured
    converted_from_cache: bool = False
    cached: bool = False  # measured by an earlier run
    status: str = "not measured"  # chosen | eligible | rejected | not measured
    reason: str = ""

    @property
    def size_bytes(self) -> int | None:
        return self.artifact.stat().st_size if self.artifact is not None and self.artifact.exists() else None

    @property
    def accuracy_delta(self) -> float | None:
        return (self.validation or {}).get("accuracy_delta")

    @property
    def cosine(self) -> float | None:
        """The lowest cosine over the outputs."""
        values = [o["cosine"] for o in (self.validation or {}).get("outputs") or []]
        return min(values) if values else None

    @property
    def parity(self) -> bool | None:
        """The precision's own tolerance verdict (informative: the budget decides)."""
        return None if self.validation is None else bool(self.validation.get("passed"))

    @property
    def p50(self) -> float | None:
        return None if self.benchmark is None else self.benchmark["latency_ms"]["p50"]

    @property
    def p99(self) -> float | None:
        return None if self.benchmark is None else self.benchmark["latency_ms"]["p99"]

    @property
    def measured(self) -> bool:
        return self.error is None and self.validation is not None and self.benchmark is not None

    def to_dict(self) -> JSONDict:
        return {
            "candidate": self.candidate.label,
            "kind": self.candidate.kind,
            "format": self.candidate.format,
            "precision": self.candidate.precision,
            "recipe": self.candidate.recipe.name,
            "model": self.candidate.model,
            "artifact": str(self.artifact) if self.artifact else None,
            "size_bytes": self.size_bytes,
            "accuracy": (self.validation or {}).get("accuracy"),
            "accuracy_delta": self.accuracy_delta,
            "cosine": self.cosine,
            "parity": self.parity,
            "validated_on": (self.validation or {}).get("measured_on"),
            "validation_data": (self.validation or {}).get("data"),
            "p50_ms": self.p50,
            "p99_ms": self.p99,
            "runtime": (self.benchmark or {}).get("runtime"),
            "threads": (self.benchmark or {}).get("threads"),
            "benchmarked_on": None if self.benchmark is None else (self.benchmark.get("device") or "local"),
            "constraints": self.constraints,
            "status": self.status,
            "reason": self.reason,
            "cached": self.cached,
            "error": self.error,
        }


class Converter:
    """Writes candidates' artifacts into their site folders (host side; one at a time)."""

    def __init__(
        self,
        out: Path,
        stem: str,
        models: dict[str, Callable[[], KerasModel]],
        calibration: Arrays | None,
        cache: DeployCache,
        versions: dict[str, str],
        host_lock: threading.RLock,
        validation: Split | None = None,
        validation_source: str | None = None,
    ) -> None:
        self.out, self.stem, self.cache, self.versions, self.host_lock = out, stem, cache, versions, host_lock
        self._loaders = models
        self._models: dict[str, KerasModel] = {}
        self.calibration = calibration
        # what an accuracy-aware mix (auto) is searched on: the data every candidate is judged on
        self.validation, self.validation_source = validation, validation_source
        self._contexts: dict[tuple[str, int | None], ExportContext] = {}

    def model(self, name: str) -> KerasModel:
        """The model `name` (MODEL, QAT), loaded once, under the host lock (TensorFlow runs here)."""
        if name not in self._models:
            with self.host_lock:
                self._models[name] = self._loaders[name]()
        return self._models[name]

    def path(self, candidate: Candidate, site: Site) -> Path:
        suffix = get_exporter(candidate.format, candidate.precision).suffix
        return self.out / site.slug / f"{self.stem}-{candidate.file_tag}{suffix}"

    def key(self, candidate: Candidate) -> str:
        return digest({"source": self.model(candidate.model).sha256, "candidate": candidate.key(), **self.versions})

    def artifact(self, candidate: Candidate, site: Site) -> tuple[Path, bool]:
        """(the candidate's artifact in `site`'s folder, whether it came from the cache)."""
        path, key = self.path(candidate, site), self.key(candidate)
        failed = self.cache.failure(key)
        if failed is not None:
            raise ConversionError(f"{failed} (cached: this conversion failed in an earlier run)")
        cached = self.cache.artifact(key)
        if cached == path:
            return path, True
        path.parent.mkdir(parents=True, exist_ok=True)
        if cached is not None:  # built for another site (or run): a copy, its measurements dropped
            shutil.copyfile(cached, path)
            shutil.copyfile(cached.with_suffix(".json"), path.with_suffix(".json"))
            Manifest.read(path).forget(*RECORDED_SECTIONS)
        else:
            try:
                with self.host_lock:
                    self._convert(candidate, path)
            except EdgekerasError as e:
                self.cache.record_failure(key, str(e))
                raise
        self.cache.record_artifact(key, path)
        return path, cached is not None

    def _convert(self, candidate: Candidate, path: Path) -> None:
        keras_model = self.model(candidate.model)
        context_key = (candidate.model, candidate.fixed_batch)
        if context_key not in self._contexts:
            self._contexts[context_key] = ExportContext(
                keras_model,
                calibration=self.calibration,
                validation=self.validation,
                validation_source=self.validation_source,
                fixed_batch=candidate.fixed_batch,
            )
        job = ConversionJob(get_exporter(candidate.format, candidate.precision), candidate.recipe)
        write_artifact(job, path, self._contexts[context_key], keras_model, self.versions, True, [])

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()


@dataclass
class Measuring:
    """What every measurement of one deploy run shares."""

    reference: KerasModel  # the source model: budgets are against it
    reference_outputs: Arrays  # its outputs on `data`, computed once
    data: Split  # the labelled (or given) validation data
    data_source: str | None  # validation.DATA_SOURCES key for unlabelled data, None for labelled
    data_digest: str
    bench_inputs: Path  # one row of the data, for the benchmark
    runs: int
    warmup: int
    cache: DeployCache
    host_lock: threading.RLock


def measure(row: Row, how: Measuring) -> Row:
    """Validates and benchmarks `row`'s artifact on its site (or takes both from the cache),
    then checks the target's constraints. Failures land in `row.error`, never raise."""
    site = row.site
    options = site.bench_options()
    if row.artifact is None:
        raise ValueError("measure() needs a row whose artifact was built")
    artifact = Artifact.load(row.artifact)
    key = digest(
        {
            "artifact": artifact.manifest.get("artifact_sha256"),
            "host": site.host,
            "bench": options,
            "data": how.data_digest,
            "runs": how.runs,
            "warmup": how.warmup,
        }
    )
    hit = how.cache.measurement(key)
    if hit is not None:
        row.validation, row.benchmark, row.cached = hit["validation"], hit["benchmark"], True
        artifact.manifest.record_validation(row.validation)
        artifact.manifest.record_benchmark(row.benchmark)
    else:
        _measure(row, artifact, how, options)
        if row.measured:
            how.cache.record_measurement(key, {"validation": row.validation, "benchmark": row.benchmark})
    if row.error is None:
        row.constraints = [r.to_dict() for r in check_artifact(artifact, site.target, p50_ms=row.p50)]
    return row


def _measure(row: Row, artifact: Artifact, how: Measuring, options: dict[str, Any]) -> None:
    site = row.site
    local = site.device is None
    step = "validating"
    try:
        with how.host_lock:  # Keras computes the metrics here even when the artifact runs on the device
            result = validate(
                artifact,
                how.reference,
                data=how.data,
                source=how.data_source,
                runtime=options["runtime"],
                raise_on_failure=False,
                device=site.device,
                reference_outputs=how.reference_outputs,
            )
        row.validation = result.to_dict()
        step = "benchmarking"
        with how.host_lock if local else contextlib.nullcontext():
            bench = benchmark(
                artifact,
                runs=how.runs,
                warmup=how.warmup,
                inputs=how.bench_inputs,
                device=site.device,
                progress=False,
                **options,
            )
        row.benchmark = bench.to_dict()
    except EdgekerasError as e:
        row.error = f"{step} failed: {e}"
