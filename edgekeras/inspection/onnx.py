"""ONNX artifacts: described with `readers.onnx` (no runtime, no TensorFlow), compared with `--layers`.

`compare` follows ONNX Runtime's own quantization debugger
(`onnxruntime.quantization.qdq_loss_debug`): both graphs get every float tensor added as an
output (`modify_model_output_intermediate_tensors`), run with graph optimizations off
(`collect_activations`), and each QDQ tensor `X` of the artifact is read after its
QuantizeLinear -> DequantizeLinear pair (`create_activation_matching`); quantized weights
are dequantized on their own grid here. Which tensor pairs with which is `inspection.pairing`'s job: the
int8 graph is quantized from ONNX Runtime's optimized copy of the fp32 graph (batch norms
folded into convolutions, activations into their QDQ ranges), so its tensors carry the names
of the layers they end in, and tf2onnx's counters ('Conv__378') differ between processes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.inspection.layers import Comparison, Pair
from edgekeras.inspection.pairing import Node
from edgekeras.inspection.summary import ArtifactSummary, IOTensor
from edgekeras.quiet import captured_output
from edgekeras.readers import onnx as reader

if TYPE_CHECKING:
    from edgekeras.hints import Arrays, PathLike
    from edgekeras.keras_model import KerasModel

FORMAT = "onnx"
_SAVED = "_ReshapedSavedOutput"  # the suffix modify_model_output_intermediate_tensors gives outputs


def _io(values, model, is_input):
    """Inputs/outputs, with the scale/zero point of integer ones (from their (De)QuantizeLinear)."""
    out = []
    for v in values:
        dtype = reader.dtype_name(v.type.tensor_type.elem_type)
        quant = None
        if dtype != "unknown" and np.issubdtype(np.dtype(dtype), np.integer):
            q = reader.io_quant(model, v.name, is_input)
            quant = q.to_dict() if q is not None else None
        out.append(IOTensor(v.name, v.name, reader.shape_of(v), dtype, quant))
    return out


def summarize(path: PathLike) -> ArtifactSummary:
    """What the graph says: inputs/outputs, op types of every (sub)graph, opsets, precision."""
    model = reader.read(path)
    proto = model.proto
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p) or "unknown"
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    details = {
        "ir_version": proto.ir_version,
        "domain": proto.domain or None,
        "model_version": proto.model_version or None,
        "graph_name": model.graph.name,
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }
    return ArtifactSummary(
        FORMAT,
        producer,
        reader.detect_precision(model),
        _io(model.inputs, model, True),
        _io(model.outputs, model, False),
        dict(sorted(model.op_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        model.subgraphs,
        [],
        reader.custom_ops(model),
        opsets,
        details,
    )


def baseline_options(path: PathLike, keras_model: KerasModel) -> dict[str, Any]:
    """How to convert the float baseline to line up with the artifact: its fixed batch."""
    model = reader.read(path)
    batches = {reader.shape_of(v)[0] for v in model.inputs if reader.shape_of(v)}
    return {"fixed_batch": next(iter(batches)) if len(batches) == 1 and None not in batches else None}


# ------------------------------------------------------------------ --layers


def _renumbered(name: str) -> str:
    """A tf2onnx name without the counter it appends ('Transpose__30:0' -> 'Transpose:0'),
    which depends on what the converting process converted before."""
    return re.sub(r"__\d+", "", name)


def _augment(source, workdir, stem):
    """A copy of `source` in `workdir` (ORT writes shape-inferred files beside its input) and its
    augmented version saving every float tensor; returns (copy, augmented, {saved name: value_info})."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    copy, augmented = workdir / f"{stem}.onnx", workdir / f"{stem}-augmented.onnx"
    shutil.copyfile(source, copy)
    with captured_output():
        modify_model_output_intermediate_tensors(str(copy), str(augmented))
    model = onnx.load(str(augmented))
    infos = {v.name: v for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    saved = {o.name[: -len(_SAVED)] for o in model.graph.output if o.name.endswith(_SAVED)}
    order = [i.name for i in model.graph.input] + [t for n in model.graph.node for t in (*n.input, *n.output)]
    return copy, augmented, {name: infos.get(name) for name in dict.fromkeys(order) if name in saved}


def _helper_suffixes():
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX, QUANT_INPUT_SUFFIX

    # the names ORT's quantizer gives a QDQ'd tensor's other copies
    return (DEQUANT_OUTPUT_SUFFIX, DEQUANT_OUTPUT_SUFFIX + "_1", QUANT_INPUT_SUFFIX)


def _nodes(model, saved):
    """The saved float tensors as pairing `Node`s, in execution order: a QDQ tensor's helper
    copies folded into it (they hold the same values around its QuantizeLinear/DequantizeLinear),
    dequantized weights left to `_weights`."""
    from onnxruntime.quantization.quant_utils import QUANT_INPUT_SUFFIX

    suffixes = _helper_suffixes()
    constants = model.constants()
    dequantize = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    weight_outputs = {out for out, n in dequantize.items() if n.input[0] in constants}
    quantize = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}
    floats = {
        name for name, init in model.initializers.items() if reader.dtype_name(init.data_type).startswith("float")
    }
    sizes = {name: int(np.prod(init.dims)) for name, init in model.initializers.items()}

    def base(name):
        for suffix in suffixes:
            if name.endswith(suffix) and name[: -len(suffix)] in saved:
                return name[: -len(suffix)]
        return name

    def weight_size(name):
        source = dequantize[name].input[0] if name in weight_outputs else name
        return sizes.get(source, 0)

    io = {v.name: v.name for v in [*model.inputs, *model.outputs]}
    producer = {o: (k, n) for k, n in enumerate(model.graph.node) for o in n.output}
    nodes, seen = [], set()
    for name, info in saved.items():
        tensor = base(name)
        if tensor in seen or tensor in weight_outputs or tensor not in saved:
            continue
        seen.add(tensor)
        has_helpers = any(tensor + s in saved for s in suffixes)
        q = quantize.get(tensor + QUANT_INPUT_SUFFIX if tensor + QUANT_INPUT_SUFFIX in saved else tensor)
        quant = reader.quant_of(model, q) if has_helpers else None
        info = saved[tensor]
        shape = reader.shape_of(info) if info is not None else ()
        dtype = quant.dtype if quant else (reader.dtype_name(info.type.tensor_type.elem_type) if info else "float32")
        k, op = producer.get(tensor, (None, None))
        inputs, weights = (), ()
        if op is not None:
            inputs = tuple(
                dict.fromkeys(base(i) for i in op.input if i and i not in constants and i not in weight_outputs)
            )
            # weights of more than one element: scalars (Clip bounds) are shared across layers
            weights = tuple(
                sorted(
                    (i for i in op.input if (i in floats or i in weight_outputs) and weight_size(i) > 1),
                    key=lambda i: -weight_size(i),
                )
            )
        nodes.append(
            Node(
                tensor,
                tensor,
                shape,
                dtype,
                quant,
                op=k,
                output=list(op.output).index(tensor) if op is not None else 0,
                outputs=len(op.output) if op is not None else 1,
                inputs=inputs,
                op_name=op.name if op is not None else None,
                weights=weights,
                io=io.get(tensor),
            )
        )
    return nodes


def _weights(art_model, ref_model):
    """Quantized weights (a DequantizeLinear of an initializer 'W_quantized', dequantized on its
    own per-tensor or per-channel grid, against the baseline's 'W') and float weights present
    in both, each with the first tensor computed from it on either side (what decides its
    layer). ONNX Runtime's `create_weight_matching` is not used: it dequantizes per-channel
    weights along the wrong axis (cosine -0.5 on MobileNetV2's 1x1 convolutions)."""
    from onnxruntime.quantization.quant_utils import TENSOR_NAME_QUANT_SUFFIX

    art_users, ref_users = _first_outputs(art_model), _first_outputs(ref_model)
    # tf2onnx numbers names per process ('ReadVariableOp__6'), so the baseline converted after
    # the artifact numbers the same weight differently: match without the counters when unique
    by_stem: dict[str, list[str]] = {}
    for ref_name in ref_model.initializers:
        by_stem.setdefault(_renumbered(ref_name), []).append(ref_name)

    def ref_name_of(name):
        if name in ref_model.initializers:
            return name
        candidates = by_stem.get(_renumbered(name), [])
        return candidates[0] if len(candidates) == 1 else None

    found, quantized = [], set()
    for node in art_model.graph.node:
        source = node.input[0] if node.op_type == "DequantizeLinear" and node.input else None
        if source is None or source not in art_model.initializers or not source.endswith(TENSOR_NAME_QUANT_SUFFIX):
            continue
        name = source[: -len(TENSOR_NAME_QUANT_SUFFIX)]
        quant = reader.quant_of(art_model, node)
        ref = ref_name_of(name)
        if quant is None or ref is None or reader.is_external(ref_model.initializers[ref]):
            continue
        if reader.is_external(art_model.initializers[source]):
            continue
        weight = reader.array(ref_model, ref)
        pair = Pair(name, ref, "quantized weight", weight.shape, quant.dtype, quant)
        pair.update(quant.dequantize(reader.array(art_model, source)), weight)
        found.append((pair, art_users.get(node.output[0]), ref_users.get(ref)))
        quantized.update([name, source])
    for init in art_model.graph.initializer:
        ref = ref_name_of(init.name)
        if init.name in quantized or ref is None or reader.is_external(init):
            continue
        if reader.is_external(ref_model.initializers[ref]):
            continue
        a, f = reader.array(art_model, init.name), reader.array(ref_model, ref)
        if a.shape == f.shape and np.issubdtype(f.dtype, np.floating) and np.issubdtype(a.dtype, np.floating):
            pair = Pair(init.name, ref, "name" if ref == init.name else "renumbered name", a.shape, a.dtype.name)
            pair.update(a, f)
            found.append((pair, art_users.get(init.name), ref_users.get(ref)))
    return found


def _first_outputs(model):
    """{tensor: first output of the first node that reads it}."""
    users: dict[Any, Any] = {}
    for n in model.graph.node:
        if n.output:
            for i in n.input:
                users.setdefault(i, n.output[0])
    return users


def _loop_tensors(model):
    """Names of the node outputs inside If/Loop/Scan bodies (not kept when the graph runs)."""
    main = {id(n) for n in model.graph.node}
    return [o for n in model.nodes if id(n) not in main for o in n.output]


def compare(artifact_path: Path, baseline_path: Path, workdir: Path) -> Comparison:
    """Both graphs as pairing nodes, their weights compared, and a runner; see `inspection.layers`."""
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, create_activation_matching

    art_copy, art_aug, art_saved = _augment(artifact_path, workdir, "artifact")
    ref_copy, ref_aug, ref_saved = _augment(baseline_path, workdir, "baseline")
    art_model, ref_model = reader.read(art_copy), reader.read(ref_copy)

    def run(feeds: Arrays) -> tuple[Any, Any]:
        with captured_output():
            art_acts = collect_activations(str(art_aug), [feeds])
            ref_acts = collect_activations(str(ref_aug), [feeds])
        qdq = create_activation_matching(art_acts)  # {X: {"pre_qdq", "post_qdq"}} for QDQ tensors

        def artifact_value(name):
            return qdq[name]["post_qdq"][0] if name in qdq else art_acts[name][0]

        return artifact_value, lambda name: ref_acts[name][0]

    return Comparison(
        "the reference converted to fp32 ONNX; both run in ONNX Runtime (CPU) with graph optimizations "
        "off, QDQ tensors compared after their QuantizeLinear/DequantizeLinear pair",
        _nodes(art_model, art_saved),
        _nodes(ref_model, ref_saved),
        _weights(art_model, ref_model),
        [],
        _loop_tensors(art_model) + _loop_tensors(ref_model),
        _renumbered,
        run,
    )
