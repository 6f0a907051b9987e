"""What a report says about one artifact, read from its manifest into plain fields.

The manifest is the only source: validation results (`validation`), benchmark results
(`benchmarks`, one per runtime setting) and target constraints (`constraints`, a list of
`{name, value, limit, passed}`). Anything missing stays `None` so every renderer shows "—".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekeras.artifact import as_artifact
from edgekeras.errors import InputError
from edgekeras.reporting.heads import data_label, metric_text

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.hints import JSONDict, PathLike


@dataclass
class ArtifactSummary:
    """One artifact as the report shows it."""

    file: str  # file name, e.g. digits-cnn-tflite-int8.tflite
    format: str
    precision: str
    size_bytes: int
    gzip_size_bytes: int | None = None  # the manifest's gzip -9 size
    validated: bool = False
    parity_passed: bool | None = None
    max_abs_error: float | None = None
    cosine: float | None = None  # the lowest over outputs
    accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy_delta: float | None = None  # percentage points vs the Keras model
    validation_data: str | None = None
    data_source: str | None = None  # validation.DATA_SOURCES key: labelled, inputs, calibration_holdout, generated
    data_label: str = "—"  # the table's short text for it, "(weak)" marked
    weak: bool = False  # validated on generated inputs at a calibrated precision
    heads: list[dict[str, Any]] = field(default_factory=list)  # the manifest's validation.outputs (kind, metric, ...)
    unlabelled: list[str] = field(default_factory=list)  # outputs validated without labels
    failures: list[str] = field(default_factory=list)
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)  # group label -> latency_ms dict
    devices: dict[str, str] = field(default_factory=dict)  # group label -> device name
    constraints: list[dict[str, Any]] | None = None  # [{name, value, limit, passed}] or None
    tool_versions: dict[str, str] = field(default_factory=dict)
    sparsity: float | None = None  # exact-zero fraction of the weights (the manifest's weight_stats)
    origin: str = ""  # "" for the run's own artifacts; "unpruned" for those of the run it was pruned from
    mixed_precision: dict[str, Any] | None = None  # precision auto: the manifest's search record

    @property
    def label(self) -> str:
        """The short name plots use: format-precision (after its origin, if not this run)."""
        return f"{self.origin} {self.format}-{self.precision}".strip()

    @property
    def no_accuracy_reason(self) -> str | None:
        """Why `accuracy` is None (None when it is not)."""
        if self.accuracy is not None:
            return None
        if not self.validated:
            return "not validated"
        if self.validation_data != "labelled data":
            return f"validated on {self.validation_data or 'unlabelled data'}, without labels"
        metrics = sorted({m.split(" ")[0] for m in map(metric_text, self.heads) if m})
        if metrics:
            return f"judged by {', '.join(metrics)}, no classifier output"
        return "the model compiles no accuracy metric"

    @property
    def constraints_passed(self) -> bool | None:
        if not self.constraints:
            return None
        return all(bool(c.get("passed")) for c in self.constraints)

    def to_dict(self) -> JSONDict:
        """Raw values (no formatting) for `--json`."""
        return {
            "artifact": self.file,
            "format": self.format,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "gzip_size_bytes": self.gzip_size_bytes,
            "validated": self.validated,
            "parity_passed": self.parity_passed,
            "max_abs_error": self.max_abs_error,
            "cosine": self.cosine,
            "accuracy": self.accuracy,
            "accuracy_delta": self.accuracy_delta,
            "heads": [{k: h.get(k) for k in HEAD_KEYS} for h in self.heads],
            "data_source": self.data_source,
            "weak": self.weak,
            "unlabelled": list(self.unlabelled),
            "failures": list(self.failures),
            "latency_ms": {g: {k: lat.get(k) for k in ("p50", "p90", "p99")} for g, lat in self.benchmarks.items()},
            "constraints": self.constraints,
        }


# What `--json` and the report rows repeat of each output's validation.
HEAD_KEYS = (
    "output",
    "kind",
    "metric",
    "metric_reference",
    "metric_artifact",
    "accuracy_delta",
    "metric_ratio",
    "relative_error",
    "top1_agreement",
)


def _section(manifest, key, kind, path):
    value = manifest.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InputError(
            f"Expected '{key}' in manifest '{path}' to be a JSON {'object' if kind is dict else 'list'}. "
            f"Received: {type(value).__name__}. Re-run `edgekeras validate`/`bench` to rewrite it."
        )
    return value


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def benchmark_group(bench):
    """The column group a benchmark belongs to: runtime plus the settings that change latency."""
    details = bench.get("details") if isinstance(bench.get("details"), dict) else {}
    parts = [str(bench.get("runtime") or "unknown runtime")]
    threads = bench.get("threads")
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    providers = details.get("providers") or []
    if providers and providers[0] != "CPUExecutionProvider":
        parts.append(str(providers[0]).removesuffix("ExecutionProvider"))
    if details.get("delegate"):  # a library path on the measuring machine: its file name says enough
        parts.append(f"delegate {str(details['delegate']).replace(chr(92), '/').rsplit('/', 1)[-1]}")
    if details.get("xnnpack") is False:
        parts.append("no XNNPACK")
    if bench.get("batch_size", 1) != 1:
        parts.append(f"batch {bench['batch_size']}")
    device = device_name(bench)
    return " · ".join(parts) + (f" @ {device}" if device != LOCAL else "")


LOCAL = "this machine"


def device_name(bench):
    """Where a benchmark ran: the manifest's `device` (an ssh:// URL; null: this machine)."""
    device = bench.get("device")
    if not device:
        return LOCAL
    if isinstance(device, dict):
        return str(device.get("name") or device.get("host") or device.get("url") or LOCAL)
    return str(device).removeprefix("ssh://")


def summarize(artifact: Artifact | PathLike) -> ArtifactSummary:
    """An `ArtifactSummary` from an `Artifact` (or a path to one)."""
    art = as_artifact(artifact)
    m, where = art.manifest, art.manifest_path
    v = _section(m, "validation", dict, where)
    outputs = [o for o in v.get("outputs") or [] if isinstance(o, dict)]
    cosines = [c for c in (_number(o.get("cosine")) for o in outputs) if c is not None]
    ref_metrics = v.get("metrics_reference") if isinstance(v.get("metrics_reference"), dict) else {}
    summary = ArtifactSummary(
        file=art.path.name,
        format=str(m.get("format", "?")),
        precision=str(m.get("precision", "?")),
        size_bytes=art.size_bytes,
        gzip_size_bytes=_integer(m.get("gzip_size_bytes")),
        validated=bool(v),
        parity_passed=bool(v.get("passed")) if v else None,
        max_abs_error=_number(v.get("max_abs_error")),
        cosine=min(cosines) if cosines else None,
        accuracy=_number(v.get("accuracy")),
        reference_accuracy=_number(ref_metrics.get("accuracy")),
        accuracy_delta=_number(v.get("accuracy_delta")),
        validation_data=v.get("data"),
        data_source=v.get("data_source"),
        data_label=data_label(v) if v else "—",
        weak=bool(v.get("weak")),
        heads=outputs,
        unlabelled=[str(u) for u in v.get("unlabelled") or []],
        failures=[str(f) for f in v.get("failures") or []],
        tool_versions=versions if isinstance(versions := m.get("tool_versions"), dict) else {},
        sparsity=_number(stats.get("sparsity")) if isinstance(stats := m.get("weight_stats"), dict) else None,
        mixed_precision=mix if isinstance(mix := m.get("mixed_precision"), dict) else None,
    )
    for bench in _section(m, "benchmarks", list, where):
        if isinstance(bench, dict) and isinstance(bench.get("latency_ms"), dict):
            group = benchmark_group(bench)
            summary.benchmarks[group] = bench["latency_ms"]
            summary.devices[group] = device_name(bench)
    if "constraints" in m:
        constraints = _section(m, "constraints", list, where)
        summary.constraints = [c for c in constraints if isinstance(c, dict)]
    return summary


def benchmark_groups(summaries: Iterable[ArtifactSummary]) -> list[str]:
    """Every benchmark group found, in first-seen order (the report's column groups)."""
    groups: dict[str, None] = {}
    for s in summaries:
        for g in s.benchmarks:
            groups.setdefault(g, None)
    return list(groups)
