"""ONNX artifacts: tf2onnx from the serving function; fp16 and int8 from that fp32 graph.

- fp16: ONNX Runtime's maintained copy of onnxconverter-common's float16 converter
  (`onnxruntime.transformers.float16`), inputs/outputs kept float32. Its default block list
  plus its handling of Cast/Less keeps SimpleRNN/GRU (Loop) and Embedding/Masking graphs
  loadable; onnxconverter-common 1.16 breaks them (STACK-NOTES; tested per family).
- dynamic: `quantize_dynamic` (int8 weights, activations quantized at run time).
- int8: static QDQ calibrated on the user's samples, per-channel; uint8 activations and
  uint8 weights (U8U8) by default, every choice overridable by a recipe.
- int8 weights (dynamic, or a recipe's `weights: int8`) are 7-bit (`reduce_range`) unless the
  recipe says otherwise: ONNX Runtime's u8 x s8 kernels on x86 CPUs without VNNI (AVX2 only)
  add pairs of products in 16 bits, which full-range weights overflow (measured: cosine
  0.84-0.99 on our layer families; MobileNetV2 -11 accuracy points). U8U8 is exact on every
  CPU and lost 0.5 points on MobileNetV2 where 7-bit U8S8 lost 2.3; `int8-u8s8` (full-range
  U8S8, the fastest pair) is for CPUs with int8 dot products (VNNI, ARM dotprod).
The fp32 graph is built once per batch setting and shared; graphs tf2onnx would leave with
TensorFlow ops in them (grouped convolutions, exact GELU: ConvNeXt) are rewritten first
(`onnx_lowering`), and any op still unconverted is a `ConversionError` naming it.
"""

from __future__ import annotations

from edgekeras.errors import ConversionError, InputError
from edgekeras.export import MixedPrecision, float_revert, onnx_files, register
from edgekeras.export.graph import serving_function
from edgekeras.export.onnx_calibration import calibrate, pre_process
from edgekeras.export.onnx_fake_quant import strip_fake_quant, weight_overrides
from edgekeras.export.onnx_lowering import convert_function, unknown_ops
from edgekeras.memory_estimate import release_memory
from edgekeras.progress import Progress
from edgekeras.quiet import captured_output
from edgekeras.readers.scopes import layers_in_names, names_in_layers

DEFAULT_OPSET = 18  # the newest opset tf2onnx 1.17 knows; ONNX Runtime 1.32 runs it
OPSETS = range(13, 19)


def check_opset(opset):
    if opset not in OPSETS:
        raise InputError(
            f"Expected --opset between {OPSETS.start} and {OPSETS.stop - 1} (what tf2onnx and ONNX "
            f"Runtime both support). Received: {opset!r}."
        )


def _fp32_graph(context):
    """The fp32 graph in the workdir (built once); weights in a data file beside it from
    `onnx_files.work_threshold()` on, so ONNX Runtime's tools never hold a big model twice."""

    def build():
        import warnings

        from keras.src.export.tf2onnx_lib import patch_tf2onnx  # numpy 2 fixes Keras applies

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy-2 FutureWarnings from the patch and tf2onnx
            patch_tf2onnx()
            import tf2onnx

        fn = serving_function(context.model, context.fixed_batch)
        with captured_output() as log:
            try:
                model, tensors = convert_function(tf2onnx, fn, context.opset)
            except Exception as e:
                raise ConversionError.from_log("onnx", e, log.text) from None
        _inline_captured_tensors(model, fn)
        _check_known_ops(model, context.model)
        largest = _largest_tensor_bytes(model)
        context.cached("onnx_largest_tensor", lambda: largest)
        path = context.workdir / "model-fp32.onnx"
        onnx_files.write(model, onnx_files.in_memory(tensors), path, limit=onnx_files.work_threshold())
        del model, tensors
        release_memory()  # tf2onnx's graph cycles hold the weights (2 GB of Dense2G) until collected
        return path

    return context.cached("onnx_fp32", build)


def _largest_tensor_bytes(model):
    """Bytes of the graph's largest tensor for one sample (free dimensions count as 1), from ONNX
    shape inference on the weightless graph; None when no shape is known. A converter may build
    tensors far larger than any Keras activation (tf2onnx's transpose optimizer turns ConvNeXt's
    layer norm on a 1 x 1 map into a [N, 1, C, C] broadcast), so validation batches are sized by
    this too (`memory_estimate.batch_for`)."""
    import numpy as np
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is advice here, never a failure
        return None
    largest = 0
    for info in inferred.graph.value_info:
        kind = info.type.tensor_type
        if not kind.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in kind.shape.dim]
        size = onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type).itemsize if kind.elem_type else 4
        largest = max(largest, int(np.prod(dims)) * size)
    return largest or None


def _large(context):
    """Whether ONNX Runtime's tools write the work folder's graphs with external data (as the
    fp32 graph is written: `_fp32_graph`); artifacts are repacked by `onnx_files.threshold()`."""
    return onnx_files.data_path(_fp32_graph(context)).exists()


def _place(context, written, path):
    """Moves an ONNX file ONNX Runtime wrote into the workdir to the artifact `path`, as one
    file or with external data (`onnx_files`)."""
    onnx_files.repack(written, path)


def _check_known_ops(model, keras_model):
    """A graph still holding TensorFlow ops tf2onnx could not convert is refused here, naming the
    ops and the Keras layers they come from, instead of being written for ONNX Runtime to refuse."""
    unknown = unknown_ops(model)
    if not unknown:
        return
    layer_names = [layer.name for layer in keras_model._flatten_layers(include_self=False)]
    parts = "; ".join(
        f"{op} (layers: {', '.join(layers_in_names(nodes, layer_names)) or 'unknown'})"
        for op, nodes in sorted(unknown.items())
    )
    raise ConversionError(
        f"Expected an ONNX graph of ONNX operators. Received: TensorFlow ops tf2onnx cannot convert: {parts}; "
        "ONNX Runtime would refuse the file. Use --format tflite for this model, or replace those layers."
    )


def _inline_captured_tensors(model, fn):
    """Turns graph inputs of `model` that are tensors the function captured into initializers.

    tf2onnx's `from_function` makes every non-variable capture a graph input: a Keras
    `Normalization` layer's mean/variance (EfficientNet) would have to be fed by the user,
    which no runtime caller does (STACK-NOTES). Their values are fixed: store them.
    """
    import numpy as np
    from onnx import numpy_helper

    concrete = fn.get_concrete_function()
    captured = {
        t.name: v
        for t, v in zip(concrete.graph.internal_captures, concrete.captured_inputs)
        if v.dtype.name != "resource"
    }
    for graph_input in [i for i in model.graph.input if i.name in captured]:
        model.graph.input.remove(graph_input)
        model.graph.initializer.append(
            numpy_helper.from_array(np.asarray(captured[graph_input.name]), graph_input.name)
        )


def _pre_process(context, source, prepared, optimize=True):
    with captured_output():
        return pre_process(source, prepared, optimize=optimize, external=_large(context))


def _prepared_graph(context):
    """The fp32 graph after ONNX Runtime's recommended pre-processing for quantization."""
    return context.cached(
        "onnx_prepared",
        lambda: _pre_process(context, _fp32_graph(context), context.workdir / "model-fp32-prep.onnx"),
    )


def _calibration_graph(context, weights):
    """(graph to calibrate, TensorQuantOverrides, number of simulated tensors): a
    quantization-aware model's graph loses its simulated Q/DQ pairs to overrides that keep
    their ranges (`onnx_fake_quant`), and its weights get their int8 grid when `weights` is
    uint8."""
    stripped = context.workdir / "model-fp32-stripped.onnx"
    ranges, pairs = context.cached("onnx_fake_quant", lambda: strip_fake_quant(_fp32_graph(context), stripped))
    if not ranges:
        return _prepared_graph(context), {}, 0
    # Without graph optimization: fusing (MatMul+Add into Gemm, folding constants) renames the
    # tensors whose ranges the overrides carry, and the model's BatchNormalizations are
    # already folded (qat.transform).
    prepared = context.cached(
        "onnx_prepared_stripped",
        lambda: _pre_process(context, stripped, context.workdir / "model-fp32-stripped-prep.onnx", optimize=False),
    )
    overrides = _present(prepared, ranges)
    if weights == "uint8":
        overrides.update(weight_overrides(prepared))
    return prepared, overrides, pairs


def _present(path, overrides):
    """`overrides`, checked to name only tensors the pre-processed graph has (ONNX Runtime would
    silently calibrate a tensor whose override names nothing)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {name for node in model.graph.node for name in (*node.input, *node.output)}
    missing = sorted(set(overrides) - names)
    if missing:
        raise ConversionError(
            f"Expected every simulated tensor of the quantization-aware model in the ONNX graph. Received: "
            f"{len(missing)} gone after ONNX Runtime's pre-processing ({', '.join(missing[:5])}). "
            "Convert to TFLite, or report the model."
        )
    return dict(overrides)


def _facts(context):
    facts = {"fixed_batch": context.fixed_batch, "opset": context.opset, "warnings": []}
    largest = context.known("onnx_largest_tensor")
    if largest:
        facts["largest_tensor_bytes"] = largest
    return facts


@register("onnx", "fp32", "ONNX float32 (tf2onnx)")
def export_fp32(context, path, recipe):
    onnx_files.repack(_fp32_graph(context), path)
    return _facts(context)


# Ops whose second input is their weight: when tf2onnx renames such a node ('Conv__508': a
# convolution merged with the batch norm after it), the weight still carries the layer's scope
# ('model/block_1_expand_1/convolution/ReadVariableOp').
_WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def _nodes_in_layers(nodes, layers):
    """{layer: [ONNX node names]}: each node by its own name's scope, or its weight's when
    tf2onnx gave it a scope-less name."""
    names = [n.name for n in nodes]
    scoped_by = [
        n.input[1] if "/" not in n.name and n.op_type in _WEIGHTED_OPS and len(n.input) > 1 else n.name for n in nodes
    ]
    return names_in_layers(names, layers, scoped_by)


def _kept_float_nodes(graph_path, recipe):
    """ONNX node names for the recipe's keep_float layers and ops; unknown ones are an error."""
    import onnx

    nodes = onnx.load(str(graph_path), load_external_data=False).graph.node
    layers, ops = recipe.keep_float["layers"], recipe.keep_float["ops"]
    by_layer = _nodes_in_layers(nodes, layers)
    missing = [layer for layer, names in by_layer.items() if not names]
    present = sorted({n.op_type for n in nodes})
    absent = [op for op in ops if op not in present]
    if missing or absent:
        raise InputError(
            f"Expected keep_float to name layers and ONNX ops of this model (ops: {', '.join(present)}). "
            f"Received: layers {missing} and ops {absent}, not found in the ONNX graph."
        )
    by_op = [n.name for n in nodes if n.op_type in ops]
    return sorted({n for names in by_layer.values() for n in names} | set(by_op))


@register("onnx", "fp16", "ONNX float16, float32 inputs/outputs", options=("keep_float",))
def export_fp16(context, path, recipe):
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    source = _fp32_graph(context)
    blocked = _kept_float_nodes(source, recipe) if recipe.keep_float["layers"] or recipe.keep_float["ops"] else []
    model = onnx.load(str(source))
    try:
        model16 = convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=DEFAULT_OP_BLOCK_LIST + recipe.keep_float["ops"],
            node_block_list=blocked or None,
        )
    except Exception as e:
        raise ConversionError.from_log("onnx fp16", e, "") from None
    del model
    onnx_files.write(model16, None, path)
    notes = _facts(context)
    if blocked:
        notes["kept_float"] = {**recipe.keep_float, "nodes": blocked}
    return notes


_QUANT_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


def _reduce_range(recipe, weights):
    """7-bit weights when they are int8 (see the module docstring), unless the recipe decides."""
    return weights == "int8" if recipe.reduce_range is None else recipe.reduce_range


_CALIBRATION = {"minmax": "MinMax", "percentile": "Percentile"}


def _quantized_initializers(path):
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    integer = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    return sum(1 for t in model.graph.initializer if t.data_type in integer and len(t.dims) > 1)


@register(
    "onnx",
    "dynamic",
    "ONNX dynamic int8 (int8 weights, activations quantized at run time)",
    options=("per_channel", "weights", "reduce_range", "keep_float"),
)
def export_dynamic(context, path, recipe):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = _prepared_graph(context)
    exclude = _kept_float_nodes(source, recipe) if recipe.knobs().get("keep_float") else []
    weights = recipe.weights or "int8"
    written = context.workdir / "model-dynamic.onnx"
    with captured_output() as log:
        try:
            quantize_dynamic(
                str(source),
                str(written),
                use_external_data_format=_large(context),
                per_channel=recipe.per_channel,
                reduce_range=_reduce_range(recipe, weights),
                weight_type=getattr(QuantType, _QUANT_TYPES[weights]),
                nodes_to_exclude=exclude,
            )
        except Exception as e:
            raise ConversionError.from_log("onnx dynamic", e, log.text) from None
    _place(context, written, path)
    notes = _facts(context)
    notes["reduce_range"] = _reduce_range(recipe, weights)
    notes["quantized"] = _quantized_initializers(path) > 0
    if not notes["quantized"]:
        notes["warnings"].append(
            "onnx dynamic: ONNX Runtime quantized no weights (no MatMul/Gemm/Conv "
            "weights), so this artifact is float32 in all but name."
        )
    if exclude:
        notes["kept_float"] = {**recipe.keep_float, "nodes": exclude}
    return notes


class _Reader:
    """Feeds calibration samples to ONNX Runtime's calibrator, one batch at a time."""

    def __init__(self, context, bar, limit):
        self._context, self._bar, self._limit = context, bar, limit
        self.rewind()

    def get_next(self):
        sample = next(self._samples, None)
        if sample is not None and self._bar is not None:
            self._bar.update()
        return sample

    def rewind(self):  # histogram (percentile) calibrators may read the data twice
        self._samples = self._context.calibration_samples(self._context.fixed_batch or 1, self._limit)


INT8_OPTIONS = ("calibration.method", "per_channel", "activations", "weights", "reduce_range", "keep_float")


@register("onnx", "int8", "ONNX static int8 QDQ, calibrated", options=INT8_OPTIONS)
def export_int8(context, path, recipe):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    weights = recipe.weights or "uint8"
    source, overrides, simulated = _calibration_graph(context, weights)
    exclude = _kept_float_nodes(source, recipe) if recipe.knobs().get("keep_float") else []
    method = recipe.calibration["method"]
    extra = {"CalibPercentile": recipe.calibration["percentile"]} if method == "percentile" else {}
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    written = context.workdir / "model-int8.onnx"
    total = context.calibration_count(recipe.samples) // (context.fixed_batch or 1)
    # Ranges are calibrated once per graph and setting and kept in the work folder: the
    # accuracy-aware search (`mixed_precision`) quantizes the same graph with many exclusions.
    ranges = context.workdir / f"ranges-{source.stem}-{method}-{extra.get('CalibPercentile', '')}-{recipe.samples}.json"
    if not ranges.exists():
        with Progress(f"Calibrating onnx int8 ({method})", total) as bar, captured_output() as log:
            try:
                calibrate(
                    source,
                    ranges,
                    method,
                    _Reader(context, bar, recipe.samples),
                    percentile=extra.get("CalibPercentile"),
                    external=_large(context),
                )
            except Exception as e:
                raise ConversionError.from_log("onnx int8 calibration", e, log.text) from None
    with captured_output() as log:
        try:
            quantize_static(  # from the ranges just written: ONNX Runtime does not calibrate again
                str(source),
                str(written),
                _Reader(context, None, recipe.samples),
                calibration_cache_path=str(ranges),
                quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel,
                reduce_range=_reduce_range(recipe, weights),
                activation_type=getattr(QuantType, _QUANT_TYPES[recipe.activations or "uint8"]),
                weight_type=getattr(QuantType, _QUANT_TYPES[weights]),
                calibrate_method=getattr(CalibrationMethod, _CALIBRATION[method]),
                nodes_to_exclude=exclude,
                extra_options=extra,
                use_external_data_format=_large(context),
            )
        except Exception as e:
            raise ConversionError.from_log("onnx int8", e, log.text) from None
    _place(context, written, path)
    notes = _facts(context)
    notes.update(weights=weights, reduce_range=_reduce_range(recipe, weights))
    if simulated:
        notes["fake_quant_ranges"] = simulated
    if exclude:
        notes["kept_float"] = {**recipe.keep_float, "nodes": exclude}
    return notes


def _layer_nodes(context, layers):
    """{layer: ONNX node names} in the graph int8 quantizes (what nodes_to_exclude matches)."""
    import onnx

    source = _calibration_graph(context, "uint8")[0]
    nodes = onnx.load(str(source), load_external_data=False).graph.node
    return _nodes_in_layers(nodes, layers)


# The accuracy-aware mix (`mixed_precision` registers "auto" from this): int8 candidates with
# nodes excluded, all from the one set of calibrated ranges `export_int8` keeps in the work folder.
# float32 is the only revert: edgekeras has no 16-bit-activation ONNX route.
MIXED_PRECISION = MixedPrecision(
    reverts=(float_revert(export_int8, "ONNX Runtime quantize_static nodes_to_exclude: float32"),),
    layer_nodes=_layer_nodes,
    description="ONNX static int8 QDQ, layers kept in float32 where needed",
    options=(*INT8_OPTIONS, "revert_to"),
)
