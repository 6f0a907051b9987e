"""Per-tensor error of an artifact against a float baseline of its Keras model (`inspect --layers`).

What is compared: the Keras reference is converted to **fp32 in the artifact's own format**
(the same edgekeras exporter, in a temporary folder); both graphs then run on the same inputs
with every intermediate tensor kept (tensors inside control-flow subgraphs are not), tensors
are paired **by name** (both conversions keep the Keras layer scopes, e.g.
`sequential_1/conv2d_1/Relu`), quantized tensors are dequantized with their own scale and
zero point, and each pair gets (see `stats.ErrorStats`):

- `rmse`, `max_abs_error`: of artifact minus float, over every element of every sample;
- `relative_rmse`: rmse / std of the float tensor (rms when it is constant);
- `cosine`: of the flattened tensors over all samples;
- for quantized tensors, `quant_error`: the relative rmse of the *float* tensor rounded to
  this tensor's own int grid (scale, zero point, dtype range), and `clipped`: the fraction
  of float values outside that grid.

`relative_rmse` includes everything upstream, so one badly quantized layer raises it for
every later tensor; `quant_error` is local to the tensor, which is why quantized artifacts
are sorted by it ("auto"), float ones (fp16, dynamic) by `relative_rmse`. Tensors without a
partner are listed as unmatched, never dropped. The format modules (`tflite.compare`,
`onnx.compare`) run and pair; this module checks the inputs, accumulates and sorts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekeras.errors import InputError, expected_one_of
from edgekeras.inspection.scopes import keras_layer_names, resolve_scopes, scope_of
from edgekeras.inspection.stats import ErrorStats, Quant

DEFAULT_SAMPLES = 32
BATCH = 8  # samples per run: bounds memory with every tensor kept
# What rows can be sorted by; "auto" picks quant_error for quantized artifacts (it isolates the
# tensor whose own range or resolution is wrong) and relative_rmse otherwise.
SORT_KEYS = ("quant_error", "relative_rmse", "rmse", "max_abs_error", "cosine", "clipped")


@dataclass
class Pair:
    """An artifact tensor and the float-reference tensor it is compared with."""

    tensor: str  # name in the artifact
    reference_tensor: str  # name in the float reference
    match: str  # how they were paired: "name", "fused name", "quantized copy", ...
    shape: tuple
    dtype: str  # dtype in the artifact
    quant: Quant | None = None
    stats: ErrorStats = None
    problem: str | None = None

    def __post_init__(self):
        if self.stats is None:
            self.stats = ErrorStats(self.quant)

    def update(self, artifact, reference):
        if self.problem is None:
            try:
                self.stats.update(artifact, reference)
            except ValueError as e:
                self.problem = f"not comparable: {e}"


@dataclass
class Comparison:
    """What a format module hands back: the pairs, what could not be paired, and a runner."""

    baseline: str  # what the float reference is, in words
    activations: list  # Pair
    weights: list  # Pair, already compared (weights need no data)
    unmatched_artifact: list  # {"tensor", "reason"}
    unmatched_reference: list  # {"tensor", "reason"}
    skipped: list  # integer tensors that carry no quantization
    io_names: dict  # graph tensor name -> Keras input/output name
    order: list  # reference tensor names in execution order
    run: Callable  # run(feeds) -> iterable of (Pair, artifact, reference)


@dataclass
class TensorError:
    """One row of the report."""

    tensor: str
    reference_tensor: str
    layer: str | None
    kind: str  # "activation" or "weight"
    match: str
    shape: list
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
    activations: list = field(default_factory=list)  # TensorError, worst first
    weights: list = field(default_factory=list)  # TensorError, worst first
    unmatched_artifact: list = field(default_factory=list)
    unmatched_reference: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    keras_layers_matched: list = field(default_factory=list)
    keras_layers_unmatched: list = field(default_factory=list)
    sorted_by: str = "relative_rmse"

    def to_dict(self, top=None):
        d = asdict(self)
        d["activation_count"], d["weight_count"] = len(self.activations), len(self.weights)
        if top is not None:
            d["activations"], d["weights"] = d["activations"][:top], d["weights"][:top]
        return d


def resolve_sort(key, rows):
    """`auto` is `quant_error` when some tensor is quantized, else `relative_rmse`."""
    if key not in ("auto", *SORT_KEYS):
        raise expected_one_of("--sort", key, ("auto", *SORT_KEYS))
    if key == "auto":
        return "quant_error" if any(r.quant_error is not None for r in rows) else "relative_rmse"
    return key


def worst_first(rows, key):
    """Rows by `key`, worst first (lowest cosine, else largest); undefined values last."""
    sign = 1.0 if key == "cosine" else -1.0
    return sorted(
        rows, key=lambda r: (getattr(r, key) is None, sign * (getattr(r, key) or 0.0), -(r.relative_rmse or 0.0))
    )


def _row(pair, kind, layer):
    m = pair.stats.metrics()
    q = pair.quant
    return TensorError(
        pair.tensor,
        pair.reference_tensor,
        layer,
        kind,
        pair.match,
        list(pair.shape),
        pair.dtype,
        float(q.scale.item()) if q is not None and not q.per_channel else None,
        int(q.zero_point.item()) if q is not None and not q.per_channel else None,
        int(q.scale.size) if q is not None and q.per_channel else None,
        **m,
    )


def pair_by_key(art_items, ref_items, key):
    """{artifact id: reference id} for leftover (id, name) items whose `key(name)` is unique
    on both sides: tensors a converter renumbered ('Squeeze1'/'Squeeze2', 'Transpose__30')."""

    def unique(items):
        groups = {}
        for ident, name in items:
            groups.setdefault(key(name), []).append(ident)
        return {k: v[0] for k, v in groups.items() if len(v) == 1}

    art, ref = unique(art_items), unique(ref_items)
    return {art[k]: ref[k] for k in art.keys() & ref.keys()}


# ------------------------------------------------------------------ the whole comparison

_FLOAT_BASELINES = {}  # (source sha256, format) -> fp32 artifact path, for this process
_WORKDIR = []


def float_baseline(keras_model, format):
    """The reference converted to fp32 `format` (once per model and format in a process)."""
    key = (keras_model.sha256, format)
    if key not in _FLOAT_BASELINES:
        from edgekeras.conversion import convert
        from edgekeras.progress import note

        if not _WORKDIR:
            _WORKDIR.append(tempfile.TemporaryDirectory(prefix="edgekeras-inspect-"))
        out = Path(_WORKDIR[0].name) / f"baseline-{len(_FLOAT_BASELINES)}"
        note(f"Converting the reference to fp32 {format} as the float baseline")
        artifact = convert(
            keras_model, formats=[format], precisions=["fp32"], validate=False, out=out, name="reference", force=True
        )[0]
        _FLOAT_BASELINES[key] = artifact.path
    return _FLOAT_BASELINES[key]


def _describe(tensors):
    return (
        ", ".join(f"{t.name}: ({', '.join('None' if d is None else str(d) for d in t.shape)})" for t in tensors)
        or "none"
    )


def _shapes_fit(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_inputs(summary, artifact_path, keras_model, reference):
    """The reference must take the artifact's inputs: same names, compatible shapes."""
    art = {t.name: t for t in summary.inputs}
    ref = {s.name: s for s in keras_model.inputs}
    if set(art) != set(ref) or any(not _shapes_fit(art[n].shape, ref[n].shape) for n in ref):
        where = f"'{reference}'" if isinstance(reference, (str, Path)) else "the reference model"
        raise InputError(
            f"Expected a --reference model with the inputs of '{artifact_path}' "
            f"({_describe(summary.inputs)}). Received: {where} with inputs ({_describe(keras_model.inputs)}). "
            "Pass the Keras model the artifact was exported from."
        )


def _feeds(specs, data, samples):
    from edgekeras.validation import generated_inputs

    if data is None:
        return generated_inputs(specs, n=samples), "generated inputs"
    from edgekeras.data.coerce import as_split

    is_path = isinstance(data, (str, Path))
    where = f"--data ('{data}')" if is_path else "data"
    split = as_split(data, where)
    return split.take(samples).feeds(specs, what=where), f"'{data}'" if is_path else "given inputs"


def _batches(feeds, summary):
    """Slices of `feeds` to run at once; a fixed batch dimension is respected."""
    n = len(next(iter(feeds.values())))
    fixed = {t.shape[0] for t in summary.inputs if t.shape and t.shape[0] is not None}
    size = next(iter(fixed)) if len(fixed) == 1 else BATCH
    count = n // size if len(fixed) == 1 else -(-n // size)  # a fixed batch drops the remainder
    if count == 0:
        raise InputError(
            f"Expected at least {size} samples for an artifact with a fixed batch of {size}. "
            f"Received: {n}. Pass --samples {size} or more."
        )
    return [{k: v[i * size : (i + 1) * size] for k, v in feeds.items()} for i in range(count)]


def layer_errors(
    info,
    artifact,
    reference,
    data=None,
    samples=DEFAULT_SAMPLES,
    sort="auto",
    safe_mode=True,
    custom_objects=None,
    architecture=None,
):
    """Compares every tensor of `artifact` with the fp32 conversion of `reference`.

    Args:
        info: the artifact's `Inspection` (from `inspection.inspect`).
        artifact: the artifact path.
        reference: the Keras model (path, `keras.Model`, `KerasModel`, training run).
        data: inputs (a `.npz` path, {input: array}, an array); default: generated from
            the signature. At most `samples` samples are used.
        sort: one of `SORT_KEYS` or "auto" (see above); rows come back worst first.
        safe_mode, custom_objects, architecture: how a `reference` path loads.
    """
    from edgekeras.inspection import format_module
    from edgekeras.progress import Progress
    from edgekeras.sources import as_keras_model

    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InputError(f"Expected --samples to be a positive integer. Received: {samples!r}.")
    resolve_sort(sort, [])  # a wrong key fails before any work
    keras_model = as_keras_model(
        reference, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture
    )
    check_inputs(info, artifact, keras_model, reference)
    feeds, source = _feeds(keras_model.inputs, data, int(samples))
    batches = _batches(feeds, info)
    baseline = float_baseline(keras_model, info.format)
    with tempfile.TemporaryDirectory(prefix="edgekeras-inspect-") as workdir:
        comparison = format_module(info.format).compare(Path(artifact), baseline, Path(workdir))
        with Progress(f"Collecting activations ({info.format})", total=len(batches)) as bar:
            for batch in batches:
                for pair, art_value, ref_value in comparison.run(batch):
                    pair.update(art_value, ref_value)
                bar.update()
    return _report(
        info,
        artifact,
        reference,
        keras_model,
        comparison,
        source,
        sum(len(next(iter(b.values()))) for b in batches),
        sort,
    )


def _report(info, artifact, reference, keras_model, comparison, source, samples, sort):
    names = keras_layer_names(keras_model.model)
    scopes = list(dict.fromkeys(s for s in map(scope_of, comparison.order) if s))
    mapping = resolve_scopes(scopes, names)

    def layer(pair):
        for name in (pair.reference_tensor, pair.tensor):
            if name in comparison.io_names:
                return comparison.io_names[name]
        return mapping.get(scope_of(pair.reference_tensor))

    unmatched = list(comparison.unmatched_artifact)
    activations = []
    for pair in comparison.activations:
        if pair.problem or pair.stats.n == 0:
            unmatched.append({"tensor": pair.tensor, "reason": pair.problem or "never computed on the data"})
        else:
            activations.append(_row(pair, "activation", layer(pair)))
    weights = [
        _row(p, "weight", mapping.get(scope_of(p.reference_tensor)))
        for p in comparison.weights
        if p.problem is None and p.stats.n
    ]
    seen = {r.layer for r in activations}
    key = resolve_sort(sort, activations)
    return LayerReport(
        str(artifact),
        info.format,
        info.precision,
        str(reference) if isinstance(reference, (str, Path)) else getattr(keras_model.model, "name", "model"),
        comparison.baseline,
        samples,
        source,
        worst_first(activations, key),
        worst_first(weights, key),
        unmatched,
        list(comparison.unmatched_reference),
        list(comparison.skipped),
        [n for n in names if n in seen],
        [n for n in names if n not in seen],
        key,
    )
