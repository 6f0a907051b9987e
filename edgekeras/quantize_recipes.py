"""Quantization recipes: one YAML file per recipe in `quantize/`, checked by a strict schema.

A recipe fixes how one precision is produced: calibration (sample count, method), per-channel
or per-tensor weights, activation/weight integer types, int8 or float I/O, layers and ops kept
in float, and tolerances that override the precision's defaults. Adding a recipe is adding a
file; every precision names its default recipe in `precisions.py`.

Knobs that only some exporters honour are declared by the exporters (`Exporter.options`), and
`conversion` refuses a recipe that sets a knob the chosen exporter would ignore, so no setting
is ever silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekeras.errors import InputError, suggest
from edgekeras.formats import names as format_names
from edgekeras.precisions import PRECISIONS, check_tolerance, get_precision
from edgekeras.recipe.schema import Field, check_section
from edgekeras.resources import shipped_dir

# No "entropy": ONNX Runtime 1.32's quantize_static gives its entropy calibrator 128 histogram
# bins and 128 quantized bins, so the only candidate threshold is the min/max range (measured:
# identical scales on EfficientNetB0), and it passes no option to change that.
CALIBRATION_METHODS = ("minmax", "percentile")
SPARSE_WEIGHTS = ("auto", "on", "off")
DENSE_PER_CHANNEL = ("auto", "on", "off")  # export/dense_scales.py
REVERT_TO = ("int16x8", "float32")
QUANTIZERS = ("auto", "converter", "ai-edge-quantizer")  # TFLite int8, export/tflite.py


def _precision_names():
    return list(PRECISIONS)


def _format_names():
    return format_names()


CALIBRATION_FIELDS = {
    "samples": Field("posint", 200, doc="How many calibration samples to use (at most)."),
    "method": Field(
        "str", "minmax", choices=CALIBRATION_METHODS, doc="minmax everywhere; percentile with ONNX Runtime."
    ),
    "percentile": Field("float", 99.999, doc="The percentile kept by method: percentile."),
    "scale": Field("float", None, doc="Multiplier for image-folder pixels 0..255 (default 1/255)."),
}
KEEP_FLOAT_FIELDS = {
    "layers": Field("strlist", [], doc="Keras layer names left in float."),
    "ops": Field("strlist", [], doc="Op types left in float (TFLite: CONV_2D, ONNX: Conv)."),
}
FIELDS = {
    "description": Field("str", ""),
    "precision": Field(
        "str", choices=_precision_names, doc="Say which precision the recipe produces, e.g. 'precision: int8'."
    ),
    "formats": Field(
        "strlist",
        None,
        choices=_format_names,
        doc="Formats the recipe applies to (default: every format with the precision).",
    ),
    "calibration": Field("dict", {}),
    "per_channel": Field("bool", True, doc="Per-channel weight scales (false: per-tensor)."),
    "dense_per_channel": Field(
        "str",
        "auto",
        choices=DENSE_PER_CHANNEL,
        doc="TFLite: per-channel scales for Dense weights too: auto (one scale per kernel when every Dense "
        "kernel is pruned to >= 70 % zeros, export/dense_scales.py), on, off.",
    ),
    "activations": Field(
        "str", None, choices=("int8", "uint8"), doc="Activation type (ONNX Runtime; TFLite int8 is always int8)."
    ),
    "weights": Field("str", None, choices=("int8", "uint8"), doc="Weight type (ONNX Runtime)."),
    "reduce_range": Field(
        "bool",
        None,
        doc=(
            "7-bit weights (ONNX Runtime; default: true for int8 weights): x86 CPUs without VNNI "
            "sum u8 x s8 products in 16 bits, which full-range weights overflow."
        ),
    ),
    "io_dtype": Field("str", "float32", choices=("float32", "int8"), doc="Input/output type of a TFLite int8 model."),
    "keep_float": Field("dict", {}),
    "sparse_weights": Field(
        "str",
        "auto",
        choices=SPARSE_WEIGHTS,
        doc="TFLite: store weights sparse (the converter's sparsity optimization, DENSIFY ops): "
        "auto (when the kernels are sparse enough for it to shrink the file), on, off.",
    ),
    "quantizer": Field(
        "str",
        "auto",
        choices=QUANTIZERS,
        doc="TFLite int8: what quantizes the float model: converter (TensorFlow's MLIR quantizer), "
        "ai-edge-quantizer, or auto (ai-edge-quantizer from 256 MB of weights, where TensorFlow's quantizer "
        "needs about 8x the weights in memory; see edgekeras.memory_estimate).",
    ),
    "revert_to": Field(
        "str",
        None,
        choices=REVERT_TO,
        doc="Precision auto: what the layers the search reverts run in, int16x8 (TFLite only) or float32 "
        "(default: the format's, see edgekeras.mixed_precision).",
    ),
    "tolerance": Field(
        "dict",
        {},
        doc="Overrides of the precision's tolerance: max_abs_error, min_cosine, min_top1_agreement, "
        "max_accuracy_drop, max_relative_error, max_metric_ratio (see precisions.Tolerance).",
    ),
}


@dataclass(frozen=True)
class QuantRecipe:
    """A checked quantization recipe (every key filled with its default)."""

    name: str
    precision: str
    description: str = ""
    formats: tuple | None = None
    calibration: dict = field(default_factory=lambda: {k: f.default for k, f in CALIBRATION_FIELDS.items()})
    per_channel: bool = True
    dense_per_channel: str = "auto"
    activations: str | None = None
    weights: str | None = None
    reduce_range: bool | None = None
    io_dtype: str = "float32"
    keep_float: dict = field(default_factory=lambda: {"layers": [], "ops": []})
    sparse_weights: str = "auto"
    quantizer: str = "auto"  # TFLite int8: converter | ai-edge-quantizer | auto (by weight bytes)
    revert_to: str | None = None  # precision auto: what reverted layers run in (None: the format's default)
    tolerance: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def samples(self) -> int:
        return self.calibration["samples"]

    def knobs(self) -> dict[str, Any]:
        """{knob: value} for every setting that differs from what all exporters do anyway."""
        knobs = {}
        if self.calibration["method"] != "minmax":
            knobs["calibration.method"] = self.calibration["method"]
        if not self.per_channel:
            knobs["per_channel"] = False
        if self.dense_per_channel != "auto":
            knobs["dense_per_channel"] = self.dense_per_channel
        if self.activations:
            knobs["activations"] = self.activations
        if self.weights:
            knobs["weights"] = self.weights
        if self.reduce_range is not None:
            knobs["reduce_range"] = self.reduce_range
        if self.io_dtype != "float32":
            knobs["io_dtype"] = self.io_dtype
        if self.keep_float["layers"] or self.keep_float["ops"]:
            knobs["keep_float"] = self.keep_float
        if self.sparse_weights != "auto":
            knobs["sparse_weights"] = self.sparse_weights
        if self.quantizer != "auto":
            knobs["quantizer"] = self.quantizer
        if self.revert_to is not None:
            knobs["revert_to"] = self.revert_to
        return knobs

    def with_options(self, **changes: Any) -> QuantRecipe:
        """A copy with some settings replaced (e.g. `io_dtype='int8'` from `--int8-io`)."""
        from dataclasses import replace

        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "precision": self.precision,
            "formats": list(self.formats) if self.formats else None,
            "calibration": dict(self.calibration),
            "per_channel": self.per_channel,
            "dense_per_channel": self.dense_per_channel,
            "activations": self.activations,
            "weights": self.weights,
            "reduce_range": self.reduce_range,
            "io_dtype": self.io_dtype,
            "keep_float": dict(self.keep_float),
            "sparse_weights": self.sparse_weights,
            "quantizer": self.quantizer,
            "revert_to": self.revert_to,
            "tolerance": dict(self.tolerance),
        }


def recipes_dir():
    """The shipped `quantize/` folder (repository root in a checkout, package data when installed)."""
    return shipped_dir("quantize")


def recipe_names():
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def parse_quant_recipe(mapping, name, path=None):
    """Checks a recipe mapping; errors name the file and the key at fault."""
    where = f"'{path}'" if path else f"'{name}'"
    if not isinstance(mapping, dict):
        raise InputError(f"Expected a mapping of recipe keys in {where}. Received: {type(mapping).__name__}.")
    try:
        top = check_section(mapping, FIELDS, "")
        calibration = check_section(top["calibration"], CALIBRATION_FIELDS, "calibration")
        keep_float = check_section(top["keep_float"], KEEP_FLOAT_FIELDS, "keep_float")
        tolerance = check_tolerance(top["tolerance"], "tolerance")
        if calibration["scale"] is not None and calibration["scale"] <= 0:
            raise InputError(f"Expected 'calibration.scale' > 0. Received: {calibration['scale']!r}.")
        if not 50 <= calibration["percentile"] <= 100:
            raise InputError(
                f"Expected 'calibration.percentile' in [50, 100]. Received: {calibration['percentile']!r}."
            )
    except InputError as e:
        raise InputError(f"Quantize recipe {where}: {e}") from None
    return QuantRecipe(
        name=name,
        precision=top["precision"],
        description=top["description"],
        formats=tuple(top["formats"]) if top["formats"] else None,
        calibration=calibration,
        per_channel=top["per_channel"],
        dense_per_channel=top["dense_per_channel"],
        activations=top["activations"],
        weights=top["weights"],
        reduce_range=top["reduce_range"],
        io_dtype=top["io_dtype"],
        keep_float=keep_float,
        sparse_weights=top["sparse_weights"],
        quantizer=top["quantizer"],
        revert_to=top["revert_to"],
        tolerance=tolerance,
        path=Path(path) if path else None,
    )


def load_quant_recipe(source):
    """A `QuantRecipe` from a shipped name (`int8-percentile`), a YAML path, or a dict."""
    import yaml

    if isinstance(source, QuantRecipe):
        return source
    if isinstance(source, dict):  # the API's inline recipe may carry its name
        mapping = dict(source)
        return parse_quant_recipe(mapping, str(mapping.pop("name", "custom")))
    path = Path(source)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        shipped = recipes_dir() / f"{source}.yaml"
        if not shipped.exists():
            names = recipe_names()
            raise InputError(
                f"Expected --recipe to be a quantize recipe ({', '.join(names)}) or a .yaml file. "
                f"Received: '{source}'.{suggest(source, names)}"
            )
        path = shipped
    try:
        mapping = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"Quantize recipe '{path}' is not valid YAML: {e}") from None
    return parse_quant_recipe(mapping, path.stem, path)


def default_recipe(precision):
    """The recipe a precision uses when none is given (a bare one for unquantized precisions)."""
    name = get_precision(precision).default_recipe
    return load_quant_recipe(name) if name else QuantRecipe(name=precision, precision=precision)


def recipes_for(precisions, recipe=None):
    """{precision: QuantRecipe}: `recipe` for its own precision and for those built on it
    (an int8 recipe is the base of auto), the defaults for the rest."""
    chosen = load_quant_recipe(recipe) if recipe is not None else None

    def takes(p):
        return chosen is not None and chosen.precision in (p, get_precision(p).base)

    if chosen is not None and not any(takes(p) for p in precisions):
        raise InputError(
            f"Expected --precision to include '{chosen.precision}', the precision of recipe "
            f"'{chosen.name}'. Received: {', '.join(precisions)}. Drop --precision or add "
            f"--precision {chosen.precision}."
        )
    return {p: chosen if takes(p) else default_recipe(p) for p in precisions}
