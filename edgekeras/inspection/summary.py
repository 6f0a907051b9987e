"""What `inspect` reports about one artifact: format, precision, size, signature, ops.

The format modules (`inspection/tflite.py`, `inspection/onnx.py`) fill an `ArtifactSummary`
from the file alone, through `edgekeras.readers`; `inspection.inspect` adds what the manifest says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict
    from edgekeras.inspection.layer_report import LayerReport
    from edgekeras.inspection.weights import WeightReport


@dataclass
class IOTensor:
    """One input or output: its (Keras) name, the graph tensor, shape, dtype, quantization."""

    name: str
    tensor: str
    shape: tuple[int | None, ...]  # None for a dynamic dimension
    dtype: str  # numpy dtype name as stored in the artifact
    quantization: dict[str, Any] | None = None  # {"scale", "zero_point"} for integer I/O

    def to_dict(self) -> JSONDict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass
class ArtifactSummary:
    """Everything a format reader learns from the file, without running it."""

    format: str
    producer: str
    detected_precision: str
    inputs: list[IOTensor] = field(default_factory=list)
    outputs: list[IOTensor] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)  # op name -> count, every subgraph
    subgraphs: int = 1
    select_ops: list[str] = field(default_factory=list)  # TensorFlow select (Flex) ops
    custom_ops: list[str] = field(default_factory=list)  # other custom ops / non-standard domains
    opset_imports: dict[str, int] | None = None  # ONNX: domain -> version
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts


@dataclass
class Inspection:
    """`inspect`'s answer: the file's summary, the manifest's claims, and optional layer errors."""

    path: str
    format: str
    precision: str
    precision_source: str  # "manifest" or "detected"
    detected_precision: str
    size_bytes: int
    sha256: str
    manifest: str | None  # path of NAME.json, when there is one
    manifest_matches: bool | None  # the manifest's artifact_sha256 equals the file's
    summary: ArtifactSummary
    validation: dict[str, Any] | None = None  # the manifest's validation summary
    layers: LayerReport | None = None  # with a reference
    unrolled: dict[str, Any] | None = None  # the manifest's "unrolled": why and by how much a recurrent artifact grew
    gzip_size_bytes: int | None = None  # gzip -9 of the file
    weights: WeightReport | None = None  # per weighted op sparsity, params, MACs
    xnnpack_sparse: dict[str, Any] | None = None  # TFLite: xnnpack_sparse.verdict of the file

    @property
    def needs_select_ops(self) -> bool:
        return bool(self.summary.select_ops)

    @property
    def inputs(self) -> list[IOTensor]:
        return self.summary.inputs

    @property
    def outputs(self) -> list[IOTensor]:
        return self.summary.outputs

    @property
    def ops(self) -> dict[str, int]:
        return self.summary.ops

    def to_dict(self, top: int | None = None) -> JSONDict:
        s = self.summary
        d: JSONDict = {
            "path": self.path,
            "format": self.format,
            "precision": self.precision,
            "precision_source": self.precision_source,
            "detected_precision": self.detected_precision,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "manifest": self.manifest,
            "manifest_matches": self.manifest_matches,
            "producer": s.producer,
            "inputs": [t.to_dict() for t in s.inputs],
            "outputs": [t.to_dict() for t in s.outputs],
            "ops": dict(s.ops),
            "op_count": sum(s.ops.values()),
            "subgraphs": s.subgraphs,
            "needs_select_ops": self.needs_select_ops,
            "select_ops": list(s.select_ops),
            "custom_ops": list(s.custom_ops),
            "opset_imports": s.opset_imports,
            "details": dict(s.details),
            "validation": self.validation,
            "unrolled": self.unrolled,
            "gzip_size_bytes": self.gzip_size_bytes,
            "weights": None if self.weights is None else self.weights.to_dict(),
            "xnnpack_sparse": self.xnnpack_sparse,
        }
        if self.layers is not None:
            d["layers"] = self.layers.to_dict(top=top)
        return d


# The manifest's validation keys worth repeating in `inspect` (see validation.ValidationResult).
VALIDATION_KEYS = ("passed", "samples", "data", "max_abs_error", "accuracy", "accuracy_delta", "tolerance", "failures")


def validation_summary(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's validation result, reduced to what `inspect` shows (None if not validated)."""
    v = manifest.get("validation")
    if not isinstance(v, dict):
        return None
    out = {k: v.get(k) for k in VALIDATION_KEYS if k in v}
    outputs = v.get("outputs") or []
    cosines = [c for o in outputs if isinstance(o, dict) and (c := o.get("cosine")) is not None]
    top1 = [t for o in outputs if isinstance(o, dict) and (t := o.get("top1_agreement")) is not None]
    out["min_cosine"] = min(cosines) if cosines else None
    out["min_top1_agreement"] = min(top1) if top1 else None
    return out
