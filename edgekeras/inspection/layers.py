"""Per-tensor error of an artifact against a float baseline of its Keras model (`inspect --layers`).

What is compared: the Keras reference is converted to **fp32 in the artifact's own format**
(the same edgekeras exporter, in a temporary folder), the way the artifact was: same fixed
batch, same fixed sequence lengths, recurrent layers unrolled when the artifact's are (the
format module's `baseline_options`). Both graphs then run on the same inputs with every
intermediate tensor kept (tensors inside loop bodies are not), tensors are paired **only
within the same Keras layer** (`pairing`: by name, fused name, renumbered name or inputs),
quantized tensors are dequantized with their own scale and zero point, and each pair gets
(see `stats.ErrorStats`):

- `rmse`, `max_abs_error`: of artifact minus float, over every element of every sample;
- `relative_rmse`: rmse / std of the float tensor (rms when it is constant);
- `cosine`: of the flattened tensors over all samples;
- for quantized tensors, `quant_error`: the relative rmse of the *float* tensor rounded to
  this tensor's own int grid (scale, zero point, dtype range), and `clipped`: the fraction
  of float values outside that grid;
- `upstream_relative_rmse`: the worst `relative_rmse` of the compared tensors it is computed
  from, so an error a tensor inherits is told from one it adds;
- `fused_layers`: the other Keras layers its op computes (a batch norm folded into a
  convolution, a depthwise convolution whose ONNX Conv outputs the ReLU's tensor).

`relative_rmse` includes everything upstream, so one badly quantized layer raises it for
every later tensor; `quant_error` is local to the tensor, which is why quantized artifacts
are sorted by it ("auto"), float ones (fp16, dynamic) by `relative_rmse`. Tensors without a
partner are listed as unmatched, never dropped, and every Keras layer is counted as
compared (its output tensor is), fused (into a compared tensor) or not compared, with the
reason. The format modules (`tflite.compare`, `onnx.compare`) read and run the graphs;
this module checks the inputs, pairs, accumulates and sorts.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.data.coerce import as_split
from edgekeras.errors import InputError, expected_one_of
from edgekeras.export import get_exporter
from edgekeras.export.context import ExportContext
from edgekeras.formats import get_format
from edgekeras.inspection import pairing
from edgekeras.inspection.layer_report import LayerReport, TensorError
from edgekeras.inspection.stats import ErrorStats
from edgekeras.progress import Progress, note
from edgekeras.quantize_recipes import default_recipe
from edgekeras.quiet import quiet_tensorflow
from edgekeras.readers.quant import Quant
from edgekeras.readers.scopes import keras_layer_names
from edgekeras.signature import TensorSpec
from edgekeras.sources import as_keras_model
from edgekeras.validation import generated_inputs

if TYPE_CHECKING:
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Architecture, Arrays, PathLike
    from edgekeras.inspection.summary import Inspection
    from edgekeras.keras_model import KerasModel
    from edgekeras.sources import ModelLike

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
    shape: tuple[Any, ...]
    dtype: str  # dtype in the artifact
    quant: Quant | None = None
    stats: ErrorStats = field(init=False)
    problem: str | None = None

    def __post_init__(self) -> None:
        self.stats = ErrorStats(self.quant)

    def update(self, artifact: np.ndarray, reference: np.ndarray) -> None:
        if self.problem is None:
            try:
                self.stats.update(artifact, reference)
            except ValueError as e:
                self.problem = f"not comparable: {e}"


@dataclass
class Comparison:
    """What a format module hands back: both graphs as pairing nodes, their weights, a runner."""

    baseline: str  # what the float reference is, in words
    artifact_nodes: list[pairing.Node]  # execution order
    reference_nodes: list[pairing.Node]  # execution order
    weights: list[tuple[Pair, Any, Any]]  # (Pair already compared, artifact tensor computed from it, reference one)
    skipped: list[str]  # integer tensors that carry no quantization
    loop_tensors: list[str]  # names inside loop bodies (WHILE, Loop): never kept at run time
    renumbered: Callable[[str], str]  # a name without the converter's counters
    # run(feeds) -> (artifact value of a node id, reference value of a node id)
    run: Callable[[Arrays], tuple[Callable[[Any], np.ndarray], Callable[[Any], np.ndarray]]]


def resolve_sort(key: str, rows: Iterable[TensorError]) -> str:
    """`auto` is `quant_error` when some tensor is quantized, else `relative_rmse`."""
    if key not in ("auto", *SORT_KEYS):
        raise expected_one_of("--sort", key, ("auto", *SORT_KEYS))
    if key == "auto":
        return "quant_error" if any(r.quant_error is not None for r in rows) else "relative_rmse"
    return key


def worst_first(rows: Iterable[TensorError], key: str) -> list[TensorError]:
    """Rows by `key`, worst first (lowest cosine, else largest); undefined values last."""
    sign = 1.0 if key == "cosine" else -1.0
    return sorted(
        rows, key=lambda r: (getattr(r, key) is None, sign * (getattr(r, key) or 0.0), -(r.relative_rmse or 0.0))
    )


def _row(
    pair: Pair, kind: str, layer: str | None, fused: Iterable[str] = (), upstream: float | None = None
) -> TensorError:
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
        fused_layers=list(fused),
        upstream_relative_rmse=upstream,
    )


# ------------------------------------------------------------------ the whole comparison

_FLOAT_BASELINES: dict[tuple[str, str, str], Path] = {}  # (source sha256, format, options) -> fp32 artifact path
_WORKDIR: list[tempfile.TemporaryDirectory[str]] = []  # where they are, for this process


def float_baseline(keras_model: KerasModel, format: str, options: Mapping[str, Any]) -> Path:
    """The reference converted to fp32 `format` the way the artifact was (once per model,
    format and options in a process). `options` are `ExportContext` fields the format module
    reads off the artifact (`baseline_options`): its fixed batch, fixed sequence lengths, and
    whether recurrent layers are unrolled."""
    key = (keras_model.sha256, format, json.dumps(options, sort_keys=True))
    if key not in _FLOAT_BASELINES:
        quiet_tensorflow()
        if not _WORKDIR:
            _WORKDIR.append(tempfile.TemporaryDirectory(prefix="edgekeras-inspect-"))
        exporter = get_exporter(format, "fp32")
        path = Path(_WORKDIR[0].name) / f"baseline-{len(_FLOAT_BASELINES)}{exporter.suffix}"
        unrolled = " with its recurrent layers unrolled" if options.get("unroll") else ""
        note(f"Converting the reference to fp32 {format}{unrolled} as the float baseline")
        context = ExportContext(keras_model, **options)
        try:
            exporter.build(context, path, default_recipe("fp32"))
        finally:
            context.close()
        _FLOAT_BASELINES[key] = path
    return _FLOAT_BASELINES[key]


def _describe(tensors: Iterable[Any]) -> str:
    return (
        ", ".join(f"{t.name}: ({', '.join('None' if d is None else str(d) for d in t.shape)})" for t in tensors)
        or "none"
    )


def _shapes_fit(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_inputs(summary: Inspection, artifact_path: PathLike, keras_model: KerasModel, reference: ModelLike) -> None:
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


def _input_specs(summary: Inspection, keras_model: KerasModel) -> list[TensorSpec]:
    """The Keras inputs with the dimensions the artifact fixes (a sequence length fixed for
    int8) filled in, batch left free: what generated or given data must look like."""
    art = {t.name: t for t in summary.inputs}
    specs = []
    for s in keras_model.inputs:
        fixed = art[s.name].shape
        shape = (None, *[d if d is not None else f for d, f in zip(s.shape[1:], fixed[1:])])
        specs.append(TensorSpec(s.name, shape, s.dtype))
    return specs


def _feeds(specs: list[TensorSpec], data: DataLike | None, samples: int) -> tuple[Arrays, str]:
    if data is None:
        return generated_inputs(specs, n=samples), "generated inputs"

    is_path = isinstance(data, (str, Path))
    where = f"--data ('{data}')" if is_path else "data"
    split = as_split(data, where)
    return split.take(samples).feeds(specs, what=where), f"'{data}'" if is_path else "given inputs"


def _batches(feeds: Arrays, summary: Inspection) -> list[Arrays]:
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
    info: Inspection,
    artifact: PathLike,
    reference: ModelLike,
    data: DataLike | None = None,
    samples: int = DEFAULT_SAMPLES,
    sort: str = "auto",
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = None,
    architecture: Architecture | None = None,
) -> LayerReport:
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
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InputError(f"Expected --samples to be a positive integer. Received: {samples!r}.")
    resolve_sort(sort, [])  # a wrong key fails before any work
    keras_model = as_keras_model(
        reference, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture
    )
    check_inputs(info, artifact, keras_model, reference)
    feeds, source = _feeds(_input_specs(info, keras_model), data, int(samples))
    batches = _batches(feeds, info)
    module = get_format(info.format).load("inspector")
    baseline = float_baseline(keras_model, info.format, module.baseline_options(Path(artifact), keras_model))
    with tempfile.TemporaryDirectory(prefix="edgekeras-inspect-") as workdir:
        comparison = module.compare(Path(artifact), baseline, Path(workdir))
        layer_names = keras_layer_names(keras_model.model)
        graphs = {"ref": comparison.reference_nodes, "art": comparison.artifact_nodes}
        layering = pairing.resolve(layer_names, [s.name for s in keras_model.inputs], graphs)
        matched = pairing.pair(comparison.artifact_nodes, comparison.reference_nodes, layering, comparison.renumbered)
        nodes = {n.id: n for n in comparison.artifact_nodes}
        refs = {n.id: n for n in comparison.reference_nodes}
        pairs = {a: _pair_of(nodes[a], refs[r], how) for a, (r, how) in matched.items()}
        with Progress(f"Collecting activations ({info.format})", total=len(batches)) as bar:
            for batch in batches:
                artifact_value, reference_value = comparison.run(batch)
                for a, p in pairs.items():
                    try:
                        values = artifact_value(a), reference_value(matched[a][0])
                    except ValueError as e:  # LiteRT frees some tensors of dynamic shape (loop state)
                        p.problem = p.problem or f"the runtime kept no value: {str(e).splitlines()[0]}"
                        continue
                    p.update(*values)
                bar.update()
    used = sum(len(next(iter(b.values()))) for b in batches)
    found = _Found(comparison, layering, matched, pairs, layer_names)
    return _report(info, artifact, reference, keras_model, found, source, used, sort)


def _pair_of(node: pairing.Node, ref: pairing.Node, how: str) -> Pair:
    """The `Pair` that accumulates the error of artifact `node` against reference `ref`."""
    return Pair(node.name, ref.name, how, node.shape, node.dtype, node.quant)


@dataclass
class _Found:
    """Everything `_report` needs from one comparison run."""

    comparison: Comparison
    layering: pairing.Layering
    matched: pairing.Matched  # artifact id -> (reference id, how)
    pairs: dict[Hashable, Pair]  # artifact id -> Pair
    layer_names: list[str]


def _report(
    info: Inspection,
    artifact: PathLike,
    reference: ModelLike,
    keras_model: KerasModel,
    found: _Found,
    source: str,
    samples: int,
    sort: str,
) -> LayerReport:
    comparison, layering, names = found.comparison, found.layering, found.layer_names
    art_nodes, ref_nodes = comparison.artifact_nodes, comparison.reference_nodes
    good = {a: p for a, p in found.pairs.items() if p.problem is None and p.stats.n}
    paired_refs = {found.matched[a][0] for a in good}
    order = {name: i for i, name in enumerate(names)}

    def ordered(layers: Iterable[str]) -> list[str]:
        return sorted(layers, key=lambda x: order.get(x, -1))

    art_by_id = {n.id: n for n in art_nodes}
    rows: dict[Hashable, TensorError] = {}
    fused_into: dict[str, str | None] = {}
    for a in good:  # first the plain rows, so that upstream errors can be read off them
        r = found.matched[a][0]
        layer = layering.owner["ref", r]
        node = art_by_id[a]
        art_inputs = [found.matched[i][0] for i in node.inputs if i in good]
        fused = pairing.fused_layers(node, r, ref_nodes, layering, paired_refs, art_inputs)
        for x in fused:
            fused_into.setdefault(x, layer)
        rows[a] = _row(good[a], "activation", layer, ordered(fused))
    by_ref: dict[Hashable, list[TensorError]] = {}
    for a, row in rows.items():
        by_ref.setdefault(found.matched[a][0], []).append(row)
    for a, row in rows.items():
        feeding = [x for r in pairing.upstream(found.matched[a][0], ref_nodes, paired_refs) for x in by_ref.get(r, [])]
        errors = [x.relative_rmse for x in feeding if x.relative_rmse is not None]
        row.upstream_relative_rmse = max(errors) if errors else None

    unmatched = [
        {"tensor": p.tensor, "layer": layering.owner["art", a], "reason": p.problem or "never computed on the data"}
        for a, p in found.pairs.items()
        if a not in good
    ]
    unmatched += [
        {"tensor": n.name, "layer": layering.owner["art", n.id], "reason": "no float tensor of its layer pairs with it"}
        for n in art_nodes
        if n.id not in found.pairs
    ]
    statuses, notes = _keras_layers(names, layering, ref_nodes, art_nodes, paired_refs, fused_into, comparison, good)
    fused_row = {x: fused_into[x] for x in names if statuses[x] == "fused"}
    partnered = {r for r, _ in found.matched.values()}  # a partner that could not be compared is listed above
    unmatched_ref = []
    for n in ref_nodes:
        if n.id in paired_refs or n.id in partnered:
            continue
        layer = layering.owner["ref", n.id]
        item = {"tensor": n.name, "layer": layer, "reason": "not in the artifact (fused or removed)"}
        if layer in fused_row:
            item.update(reason="fused in the artifact into another layer's op", compared_in=fused_row[layer])
        unmatched_ref.append(item)
    weights = []
    for pair, art_user, ref_user in comparison.weights:
        owner = layering.owner.get(("art", art_user))
        if owner != layering.owner.get(("ref", ref_user)) or pair.problem or not pair.stats.n:
            continue  # never a weight of one layer against another's
        weights.append(_row(pair, "weight", owner))
    activations = list(rows.values())
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
        unmatched_ref,
        list(comparison.skipped),
        [x for x in names if statuses[x] == "compared"],
        fused_row,
        [x for x in names if statuses[x] == "not compared"],
        notes,
        key,
    )


def _keras_layers(
    names: Sequence[str],
    layering: pairing.Layering,
    ref_nodes: Sequence[pairing.Node],
    art_nodes: Sequence[pairing.Node],
    paired_refs: set[Hashable],
    fused_into: Mapping[str, str | None],
    comparison: Comparison,
    good: Mapping[Hashable, Pair],
) -> tuple[dict[str, str], dict[str, str]]:
    """{layer: "compared" | "fused" | "not compared"} and {layer: note}.

    A layer is compared when its output tensor (the last it computes that another layer
    reads) is paired, fused when a compared tensor's op also computes it, and otherwise not
    compared, with the reason. Layers running in a loop body get a note either way: their
    per-step tensors are never kept.
    """
    outputs = pairing.layer_outputs(ref_nodes, layering, "ref")
    in_loops = {layering.layer_of(name) for name in comparison.loop_tensors} - {None}
    owned: dict[tuple[str, str | None], list[Hashable]] = {}
    for side, nodes in (("ref", ref_nodes), ("art", art_nodes)):
        for n in nodes:
            owned.setdefault((side, layering.owner[side, n.id]), []).append(n.id)
    paired_art = set(good)
    statuses: dict[str, str] = {}
    notes: dict[str, str] = {}
    for layer in names:
        out = outputs.get(layer)
        ref_ids, art_ids = owned.get(("ref", layer), []), owned.get(("art", layer), [])
        if out is not None and out.id in paired_refs:
            statuses[layer] = "compared"
        elif layer in fused_into:
            statuses[layer] = "fused"
        else:
            statuses[layer] = "not compared"
            if layer in in_loops and not ref_ids:
                notes[layer] = "runs inside a loop body (WHILE/Loop), whose tensors the runtime does not keep"
            elif not ref_ids:
                notes[layer] = (
                    "no op of its own in the float baseline (an identity at inference, or folded into "
                    "another layer by the converter)"
                )
            elif out is not None and any(r in paired_refs for r in ref_ids):
                notes[layer] = f"only tensors inside it were compared; its output '{out.name}' has no artifact partner"
            elif art_ids and not any(a in paired_art for a in art_ids):
                notes[layer] = f"none of its {len(art_ids)} artifact tensors found a float partner in this layer"
            else:
                notes[layer] = "its tensors are not in the artifact"
        if layer in in_loops and layer not in notes:
            notes[layer] = (
                "runs inside a loop body (WHILE/Loop): what enters and leaves the loop is compared, "
                "not its per-step tensors"
            )
    return statuses, notes
