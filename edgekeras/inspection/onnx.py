"""ONNX artifacts: read with `onnx` (no runtime, no TensorFlow), compared with `--layers`.

`compare` follows ONNX Runtime's own quantization debugger
(`onnxruntime.quantization.qdq_loss_debug`): both graphs get every float tensor added as an
output (`modify_model_output_intermediate_tensors`), run with graph optimizations off
(`collect_activations`), and each QDQ tensor `X` of the artifact is compared after its
QuantizeLinear → DequantizeLinear pair with the float baseline's `X`
(`create_activation_matching`); weights come from `create_weight_matching`.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter

import numpy as np

from edgekeras.errors import InputError
from edgekeras.inspection.layers import Comparison, Pair, pair_by_key
from edgekeras.inspection.stats import make_quant
from edgekeras.inspection.summary import ArtifactSummary, IOTensor

FORMAT = "onnx"
_STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
_DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}
_SAVED = "_ReshapedSavedOutput"  # the suffix modify_model_output_intermediate_tensors gives outputs


def load(path):
    """The model without external weights; a file that is not ONNX is an `InputError`."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise InputError(
            f"Expected an ONNX model (a protobuf ModelProto). Received: '{path}', which could not be parsed "
            f"({type(e).__name__}). Is it truncated, or another format renamed to .onnx?"
        ) from None
    if model.ir_version <= 0 or not model.graph.node:
        raise InputError(
            f"Expected an ONNX model with a graph. Received: '{path}', which has no graph nodes "
            "(empty, or not an ONNX file). Re-export it with 'edgekeras convert'."
        )
    return model


def _dtype(elem_type):
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        return "unknown"


def _shape(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def nodes(graph):
    """Every node, nested subgraphs (If/Loop/Scan bodies) included, and the subgraph count."""
    from onnx import AttributeProto

    found, graphs = [], 1
    for node in graph.node:
        found.append(node)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                inner, count = nodes(sub)
                found += inner
                graphs += count
    return found, graphs


def _op_name(node):
    return node.op_type if node.domain in _STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"


def _initializers(model):
    from onnx import numpy_helper

    return {i.name: i for i in model.graph.initializer}, numpy_helper


def _quant_of(node, model):
    """The Quant of a QuantizeLinear/DequantizeLinear node with constant scale/zero point."""
    inits, numpy_helper = _initializers(model)
    if len(node.input) < 2 or node.input[1] not in inits:
        return None
    scale = numpy_helper.to_array(inits[node.input[1]])
    if len(node.input) > 2 and node.input[2] in inits:
        zero = numpy_helper.to_array(inits[node.input[2]])
    else:
        zero = np.zeros(scale.shape, np.uint8)  # ONNX's default zero point type
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return make_quant(scale, zero, axis, zero.dtype)


def detect_precision(model, all_nodes):
    """fp32, fp16, dynamic, int8 or int16x8, from the graph's ops and tensor types."""
    types = {n.op_type for n in all_nodes}
    inits, _ = _initializers(model)
    if "QuantizeLinear" in types or any(t.startswith("QLinear") for t in types):
        for n in all_nodes:
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
                q = _quant_of(n, model)
                if q is not None and q.dtype in ("int16", "uint16"):
                    return "int16x8"
        return "int8"
    if types & _DYNAMIC_OPS or "DequantizeLinear" in types:
        return "dynamic"
    from onnx import TensorProto

    io = list(model.graph.input) + list(model.graph.output)
    if any(i.data_type == TensorProto.FLOAT16 for i in inits.values()) or any(
        v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in io
    ):
        return "fp16"
    return "fp32"


def _io(values, model, all_nodes, is_input):
    """Inputs/outputs, with the scale/zero point of integer ones (from their (De)QuantizeLinear)."""
    inits, _ = _initializers(model)
    out = []
    for v in values:
        if v.name in inits:  # old IR versions list initializers as inputs
            continue
        dtype = _dtype(v.type.tensor_type.elem_type)
        quant = None
        if dtype != "unknown" and np.issubdtype(np.dtype(dtype), np.integer):
            op, pos = ("DequantizeLinear", "input") if is_input else ("QuantizeLinear", "output")
            node = next((n for n in all_nodes if n.op_type == op and getattr(n, pos)[0] == v.name), None)
            q = _quant_of(node, model) if node is not None else None
            if q is not None and not q.per_channel:
                quant = {"scale": float(q.scale.item()), "zero_point": int(q.zero_point.item())}
        out.append(IOTensor(v.name, v.name, _shape(v), dtype, quant))
    return out


def summarize(path):
    """What the graph says: inputs/outputs, op types of every (sub)graph, opsets, precision."""
    model = load(path)
    all_nodes, graphs = nodes(model.graph)
    counts = Counter(_op_name(n) for n in all_nodes)
    custom = sorted({_op_name(n) for n in all_nodes if n.domain not in _STANDARD_DOMAINS})
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p) or "unknown"
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    details = {
        "ir_version": model.ir_version,
        "domain": model.domain or None,
        "model_version": model.model_version or None,
        "graph_name": model.graph.name,
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
    return ArtifactSummary(
        FORMAT,
        producer,
        detect_precision(model, all_nodes),
        _io(model.graph.input, model, all_nodes, True),
        _io(model.graph.output, model, all_nodes, False),
        dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        graphs,
        [],
        custom,
        opsets,
        details,
    )


# ------------------------------------------------------------------ --layers


def _renumbered(name):
    """A tf2onnx name without the counter it appends ('Transpose__30:0' -> 'Transpose:0'),
    which depends on what the converting process converted before."""
    return re.sub(r"__\d+", "", name)


def _augment(source, workdir, stem):
    """A copy of `source` in `workdir` (ORT writes shape-inferred files beside its input) and its
    augmented version saving every float tensor; returns (copy, augmented, {saved name: value_info})."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    from edgekeras.quiet import captured_output

    copy, augmented = workdir / f"{stem}.onnx", workdir / f"{stem}-augmented.onnx"
    shutil.copyfile(source, copy)
    with captured_output():
        modify_model_output_intermediate_tensors(str(copy), str(augmented))
    model = onnx.load(str(augmented))
    infos = {v.name: v for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    saved = {o.name[: -len(_SAVED)] for o in model.graph.output if o.name.endswith(_SAVED)}
    order = [i.name for i in model.graph.input] + [t for n in model.graph.node for t in (*n.input, *n.output)]
    return copy, augmented, {name: infos.get(name) for name in dict.fromkeys(order) if name in saved}


def _weights(baseline, artifact, art_model):
    """Quantized weights (ORT's `create_weight_matching`) and float weights present in both."""
    from onnx import numpy_helper
    from onnxruntime.quantization.qdq_loss_debug import create_weight_matching
    from onnxruntime.quantization.quant_utils import TENSOR_NAME_QUANT_SUFFIX

    from edgekeras.quiet import captured_output

    with captured_output():
        matched = create_weight_matching(str(baseline), str(artifact))
    dq = {n.input[0]: n for n in art_model.graph.node if n.op_type == "DequantizeLinear"}
    pairs = []
    for name, m in matched.items():
        node = dq.get(name + TENSOR_NAME_QUANT_SUFFIX)
        quant = _quant_of(node, art_model) if node is not None else None
        pair = Pair(name, name, "quantized weight", m["float"].shape, quant.dtype if quant else "float32", quant)
        pair.update(m["dequantized"], m["float"])
        pairs.append(pair)
    ref_inits = {i.name: i for i in load(baseline).graph.initializer}
    for init in art_model.graph.initializer:
        if init.name in matched or init.name not in ref_inits or _external(init) or _external(ref_inits[init.name]):
            continue
        a, f = numpy_helper.to_array(init), numpy_helper.to_array(ref_inits[init.name])
        if np.issubdtype(f.dtype, np.floating) and np.issubdtype(a.dtype, np.floating):
            pair = Pair(init.name, init.name, "name", a.shape, a.dtype.name)
            pair.update(a, f)
            pairs.append(pair)
    return pairs


def _external(tensor):
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL


def compare(artifact_path, baseline_path, workdir):
    """Pairs the artifact's tensors with the fp32 baseline's; see `inspection.layers`."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, create_activation_matching
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX

    art_copy, art_aug, art_saved = _augment(artifact_path, workdir, "artifact")
    ref_copy, ref_aug, ref_saved = _augment(baseline_path, workdir, "baseline")
    art_model = load(art_copy)
    inits, _ = _initializers(art_model)
    quantize = {n.input[0]: n for n in art_model.graph.node if n.op_type == "QuantizeLinear"}
    weight_outputs = {
        n.output[0] for n in art_model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    helper_suffixes = (DEQUANT_OUTPUT_SUFFIX, DEQUANT_OUTPUT_SUFFIX + "_1", QUANT_INPUT_SUFFIX)

    def helpers(name):  # the names ORT's quantizer gives a QDQ'd tensor's other copies
        return [name + suffix for suffix in helper_suffixes if name + suffix in art_saved]

    def is_helper(name):
        return any(name.endswith(x) and name[: -len(x)] in art_saved for x in helper_suffixes)

    pairs, used = {}, set()

    def add(name, ref_name, how):
        extra = helpers(name)
        node = quantize.get(name + QUANT_INPUT_SUFFIX if name + QUANT_INPUT_SUFFIX in art_saved else name)
        quant = _quant_of(node, art_model) if extra and node is not None else None
        info = art_saved[name]
        shape = _shape(info) if info is not None else ()
        dtype = quant.dtype if quant else (_dtype(info.type.tensor_type.elem_type) if info else "float32")
        pairs[name] = Pair(name, ref_name, how, shape, dtype, quant)
        used.update([name, *extra])

    for name in ref_saved:
        if name in art_saved:
            add(name, name, "name")
    paired = {p.reference_tensor for p in pairs.values()}
    leftovers = [(t, t) for t in art_saved if t not in used and t not in weight_outputs and not is_helper(t)]
    for name, ref_name in pair_by_key(leftovers, [(t, t) for t in ref_saved if t not in paired], _renumbered).items():
        add(name, ref_name, "renumbered name")
    paired = {p.reference_tensor for p in pairs.values()}
    unmatched_art = [
        {"tensor": t, "reason": "no tensor of this name in the float baseline"}
        for t in art_saved
        if t not in used and t not in weight_outputs
    ]
    unmatched_ref = [
        {"tensor": t, "reason": "not in the artifact (fused or removed)"} for t in ref_saved if t not in paired
    ]
    io_names = {v.name: v.name for v in [*art_model.graph.input, *art_model.graph.output] if v.name not in inits}

    def run(feeds):
        from edgekeras.quiet import captured_output

        with captured_output():
            art_acts = collect_activations(str(art_aug), [feeds])
            ref_acts = collect_activations(str(ref_aug), [feeds])
        qdq = create_activation_matching(art_acts)  # {X: {"pre_qdq", "post_qdq"}} for QDQ tensors
        for name, pair in pairs.items():
            value = qdq[name]["post_qdq"][0] if name in qdq else art_acts[name][0]
            yield pair, value, ref_acts[pair.reference_tensor][0]

    return Comparison(
        "the reference converted to fp32 ONNX; both run in ONNX Runtime (CPU) with graph optimizations "
        "off, QDQ tensors compared after their QuantizeLinear/DequantizeLinear pair",
        list(pairs.values()),
        _weights(ref_copy, art_copy, art_model),
        unmatched_art,
        unmatched_ref,
        [],
        io_names,
        list(ref_saved),
        run,
    )
