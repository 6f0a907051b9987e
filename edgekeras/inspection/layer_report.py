"""The rows and the whole of `inspect --layers`' report, as data (`inspection.layers` fills them;
`inspection.summary.Inspection` carries one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict


@dataclass
class TensorError:
    """One row of the report."""

    tensor: str
    reference_tensor: str
    layer: str | None
    kind: str  # "activation" or "weight"
    match: str
    shape: list[int | None]
    dtype: str
    scale: float | None  # per-tensor scale (None for float or per-channel tensors)
    zero_point: int | None
    channels: int | None  # number of per-channel scales
    rmse: float
    max_abs_error: float
    relative_rmse: float | None
    cosine: float
    quant_error: float | None  # relative rmse of the float tensor on this tensor's own int grid
    clipped: float | None
    fused_layers: list[str] = field(default_factory=list)  # other layers this tensor's op computes
    upstream_relative_rmse: float | None = None  # worst relative rmse of the compared tensors it is computed from


@dataclass
class LayerReport:
    """Per-tensor errors, worst first by `sorted_by`, plus everything left unpaired."""

    artifact: str
    format: str
    precision: str
    reference: str
    baseline: str
    samples: int
    data: str
    activations: list[TensorError] = field(default_factory=list)  # worst first
    weights: list[TensorError] = field(default_factory=list)  # worst first
    unmatched_artifact: list[dict[str, Any]] = field(default_factory=list)  # {"tensor", "layer", "reason"}
    unmatched_reference: list[dict[str, Any]] = field(default_factory=list)  # {"tensor", "layer", "reason"}
    skipped: list[str] = field(default_factory=list)
    keras_layers_matched: list[str] = field(default_factory=list)  # layers whose output tensor is compared
    # layer -> the layer whose tensor computes it too
    keras_layers_fused: dict[str, str | None] = field(default_factory=dict)
    keras_layers_unmatched: list[str] = field(default_factory=list)  # every other layer
    keras_layer_notes: dict[str, str] = field(default_factory=dict)  # layer -> why unmatched, or what is not compared
    sorted_by: str = "relative_rmse"

    def to_dict(self, top: int | None = None) -> JSONDict:
        d = asdict(self)
        d["activation_count"], d["weight_count"] = len(self.activations), len(self.weights)
        if top is not None:
            d["activations"], d["weights"] = d["activations"][:top], d["weights"][:top]
        return d
