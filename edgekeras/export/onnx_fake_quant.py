"""ONNX int8 from a quantization-aware model: its simulated ranges handed to ONNX Runtime.

tf2onnx writes each `FakeQuant` as a QuantizeLinear/DequantizeLinear pair on the tensor it
simulates. Left in, ONNX Runtime's quantizer would add its own pair after it (two roundings).
So the pairs are taken out and their ranges given to `quantize_static` as
`TensorQuantOverrides`: every simulated tensor gets exactly the model's range, the others
are calibrated as usual. Weights of Conv and MatMul nodes get a per-output-channel scale of
max |w| / 127 around zero point 128 (uint8): the symmetric grid the model's kernels were
snapped to (`qat.weights`), so the artifact holds the very weights the model computes with.
"""

from __future__ import annotations

import numpy as np

# Ops that move values without computing new ones: their input and output share a range, as
# the model's layers that keep their input's scale (qat.transform) do; tf2onnx also wraps
# NHWC convolutions in Transposes, on whichever side of the Q/DQ pair its optimizer left them.
SAME_RANGE_OPS = frozenset(
    {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "MaxPool", "Pad", "Slice"}
)
# ONNX op: (input index of its weight, axis of the output channel in that weight)
WEIGHT_INPUTS = {"Conv": (1, 0), "MatMul": (1, -1), "Gemm": (1, -1)}
_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _constant(model, name):
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def fake_quant_pairs(model):
    """[(QuantizeLinear node, DequantizeLinear node)] where a Q feeds exactly one DQ."""
    users = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    pairs = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        after = users.get(node.output[0], [])
        if len(after) == 1 and after[0].op_type == "DequantizeLinear":
            pairs.append((node, after[0]))
    return pairs


def strip_fake_quant(source, target):
    """Writes `source` without its Q/DQ pairs to `target`; returns ({tensor: [{rmin, rmax}]},
    number of pairs) (empty, and nothing written, for a graph with no pairs). `target` goes
    beside `source`: weights in an external data file stay there, read by both."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    pairs = fake_quant_pairs(model)
    if not pairs:
        return {}, 0
    overrides, renames = {}, {}
    for q, dq in pairs:
        scale = float(_constant(model, q.input[1]))
        zero = _constant(model, q.input[2])
        low, high = _QRANGE[zero.dtype]
        tensor = q.input[0]
        overrides[tensor] = [
            {"rmin": np.float32((low - int(zero)) * scale), "rmax": np.float32((high - int(zero)) * scale)}
        ]
        renames[dq.output[0]] = tensor
        model.graph.node.remove(q)
        model.graph.node.remove(dq)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    outputs = {o.name for o in model.graph.output}
    for old, new in renames.items():  # a graph output keeps its name: an Identity feeds it
        if old in outputs:
            model.graph.node.append(onnx.helper.make_node("Identity", [new], [old], name=f"{old}_identity"))
    _fuse_dense(model)
    _share_ranges(model, overrides)
    onnx.save(model, str(target))
    return overrides, len(pairs)


def _fuse_dense(model):
    """MatMul + bias Add on 2-D inputs (a Dense layer) becomes one Gemm named as the Add's
    output, as ONNX Runtime's optimizer would fuse it (and LiteRT does: FULLY_CONNECTED), so the
    product before the bias is not quantized on a grid of its own. Done here because that
    optimizer also renames the tensors the overrides name."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in (*inferred.graph.value_info, *inferred.graph.input)
        if v.type.tensor_type.HasField("shape")
    }
    constants = {init.name: init for init in model.graph.initializer}
    users = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    for matmul in [n for n in model.graph.node if n.op_type == "MatMul"]:
        after = users.get(matmul.output[0], [])
        if (
            len(after) != 1
            or after[0].op_type != "Add"
            or ranks.get(matmul.input[0]) != 2
            or matmul.input[1] not in constants
            or len(constants[matmul.input[1]].dims) != 2
        ):
            continue
        add = after[0]
        bias = next((name for name in add.input if name != matmul.output[0]), None)
        if bias not in constants or len(constants[bias].dims) != 1:
            continue
        index = list(model.graph.node).index(matmul)
        model.graph.node.remove(matmul)
        model.graph.node.remove(add)
        model.graph.node.insert(
            index,
            onnx.helper.make_node(
                "Gemm", [matmul.input[0], matmul.input[1], bias], [add.output[0]], name=f"{matmul.name}_gemm"
            ),
        )


def _share_ranges(model, overrides):
    """Gives both sides of every `SAME_RANGE_OPS` node the range one side has, so ONNX Runtime
    does not round the same values a second time on a calibrated grid of their own."""
    constants = {init.name for init in model.graph.initializer}
    links = [
        (node.input[0], node.output[0])
        for node in model.graph.node
        if node.op_type in SAME_RANGE_OPS and node.input and node.input[0] not in constants
    ]
    changed = True
    while changed:
        changed = False
        for a, b in links:
            for known, other in ((a, b), (b, a)):
                if known in overrides and other not in overrides:
                    overrides[other] = overrides[known]
                    changed = True


def weight_overrides(path, weight_type="uint8"):
    """{weight initializer: per-channel [{scale, zero_point}, ...]} for Conv/MatMul/Gemm nodes
    of the graph at `path`: symmetric 8-bit, one scale per output channel."""
    import onnx

    model = onnx.load(str(path))
    initializers = {init.name for init in model.graph.initializer}
    zero = np.uint8(128) if weight_type == "uint8" else np.int8(0)
    found = {}
    for node in model.graph.node:
        spec = WEIGHT_INPUTS.get(node.op_type)
        if spec is None or len(node.input) <= spec[0] or node.input[spec[0]] not in initializers:
            continue
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            spec = (1, 0)
        weight = _constant(model, node.input[spec[0]])
        if weight is None or weight.ndim < 2:
            continue
        axis = spec[1] % weight.ndim
        scales = np.max(np.abs(np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)), axis=1) / 127
        scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
        found[node.input[spec[0]]] = [{"axis": axis, "scale": np.float32(s), "zero_point": zero} for s in scales]
    return found
