"""Per-layer weights of an artifact: sparsity, parameters and MACs, read from the file itself.

    from edgekeras.inspection.weights import weight_report
    report = weight_report("model.tflite")     # or .onnx; no TensorFlow, no runtime
    report.rows[0].sparsity, report.sparsity, report.macs

One row per op that carries a weight (a convolution, depthwise convolution, fully-connected
layer or matrix product with a constant operand). `sparsity` is the fraction of exact zeros
in its weight tensor: for an integer weight, values equal to the tensor's zero point (per
channel) are its zeros; a sparse-stored TFLite weight counts the values it does not store as
zeros. `params` counts every constant the op reads (weight and bias; a bias the converter
folded away because it was zero is not in the file, and ONNX dynamic-range ops add theirs
after a cast, uncounted); `macs` are the
multiply-accumulates of one sample, from the weight and output shapes (a dynamic dimension
counts as 1). Each format is one reader function in `READERS`; the MAC rule of each op is
one entry of `TFLITE_MACS` / `ONNX_MACS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekeras.formats import format_of_path
from edgekeras.readers import onnx as onnx_reader
from edgekeras.readers import tflite as tflite_reader
from edgekeras.readers.scopes import scopes_of


@dataclass
class WeightRow:
    """One weighted op."""

    name: str  # the op's layer scope (or output tensor name)
    op: str
    weight_shape: tuple
    weight_dtype: str
    params: int  # elements of every constant input (weight + bias)
    weight_elements: int
    zeros: int  # exact zeros of the weight (zero-point aware)
    macs: int | None  # per sample; None when the shapes do not say

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weight_elements if self.weight_elements else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "weight_shape": list(self.weight_shape),
            "weight_dtype": self.weight_dtype,
            "params": self.params,
            "sparsity": round(self.sparsity, 4),
            "macs": self.macs,
        }


@dataclass
class WeightReport:
    """Per weighted op of an artifact: sparsity, params and MACs (`rows`), and their totals."""

    rows: list[WeightRow] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs or 0 for r in self.rows)

    @property
    def sparsity(self) -> float:
        """Zeros over all weight elements of the weighted ops."""
        total = sum(r.weight_elements for r in self.rows)
        return sum(r.zeros for r in self.rows) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "sparsity": round(self.sparsity, 4),
            "layers": [r.to_dict() for r in self.rows],
        }


def _dims(shape):
    return [1 if d is None or d < 0 else int(d) for d in shape]


def _prod(values):
    return int(np.prod(values)) if len(values) else 1


def count_zeros(values, quant=None, axis_shape=None):
    """Exact zeros of `values`; for integer weights, values equal to their zero point.

    `quant` is a `readers.quant.Quant` (or None); `axis_shape` the dense shape, to lay a
    per-channel zero point along its axis.
    """
    values = np.asarray(values)
    if quant is None or values.dtype.kind == "f":
        return int(np.count_nonzero(values == 0))
    zero_point = np.asarray(quant.zero_point).reshape(-1)
    if zero_point.size <= 1 or axis_shape is None or values.size != _prod(axis_shape):
        zp = int(zero_point[0]) if zero_point.size else 0
        return int(np.count_nonzero(values.astype(np.int64) == zp))
    shape = [1] * len(axis_shape)
    shape[quant.axis] = -1
    dense = values.reshape(axis_shape).astype(np.int64)
    return int(np.count_nonzero(dense == zero_point.reshape(shape)))


# ------------------------------------------------------------------ TFLite

# MACs of one sample from (weight shape, output shape, input shape); TFLite layouts.
TFLITE_MACS = {
    "CONV_2D": lambda w, out, x: _prod(out[1:]) * _prod(w[1:]),  # w: [O, kh, kw, I]
    "DEPTHWISE_CONV_2D": lambda w, out, x: _prod(out[1:]) * w[1] * w[2],  # w: [1, kh, kw, C*m]
    "CONV_3D": lambda w, out, x: _prod(out[1:]) * _prod(w[:-1]),  # w: [kd, kh, kw, I, O]
    "FULLY_CONNECTED": lambda w, out, x: _prod(out[1:]) * w[-1] if len(out) > 1 else out[0] * w[-1],  # w: [O, I]
    "TRANSPOSE_CONV": lambda w, out, x: _prod(x[1:]) * _prod(w[:-1]),  # w: [O, kh, kw, I]
    "BATCH_MATMUL": lambda w, out, x: _prod(out[1:]) * (w[-2] if len(w) >= 2 else 1),  # w: [..., K, N]
}
# The weight is input 1 of each; the data input 0 but where listed.
TFLITE_DATA_INPUT = {"TRANSPOSE_CONV": 2}  # (output shape, weights, input, bias)


def tflite_rows(path_or_model):
    """One `WeightRow` per weighted op of every subgraph of a `.tflite` path or read model."""
    reader = tflite_reader
    model = path_or_model if isinstance(path_or_model, reader.TFLiteModel) else reader.read(path_or_model)
    rows = []
    for graph in model.subgraphs:
        producers = graph.producers()
        for op in graph.ops:
            if op.name not in TFLITE_MACS or len(op.inputs) < 2:
                continue
            weight = reader.weight_source(graph, op.inputs[1], producers)
            if weight is None:
                continue
            constants = [reader.weight_source(graph, i, producers) for i in op.inputs]
            dense = _dims(weight.shape)
            out = _dims(graph.tensors[op.outputs[0]].shape)
            x = _dims(graph.tensors[op.inputs[TFLITE_DATA_INPUT.get(op.name, 0)]].shape)
            rows.append(
                WeightRow(
                    _tflite_name(graph, op, weight),
                    op.name,
                    tuple(dense),
                    weight.dtype,
                    sum(_prod(_dims(t.shape)) for t in constants if t is not None),
                    _prod(dense),
                    _stored_zeros(model, weight, dense),
                    int(TFLITE_MACS[op.name](dense, out, x)),
                )
            )
    return rows


def _stored_zeros(model, weight, dense):
    """Zeros of a TFLite weight; a sparse-stored one's unstored values are zeros too."""
    stored = model.constant(weight)
    if stored is None:
        return 0
    if weight.sparse:
        return count_zeros(stored, weight.quant) + _prod(dense) - stored.size
    return count_zeros(stored, weight.quant, dense)


def _tflite_name(graph, op, weight):
    """The op's Keras layer scope, from its output's name or else its weight's (a model's last
    op outputs a tensor named after the signature)."""
    for name in (graph.tensors[op.outputs[0]].name, weight.name):
        scopes = scopes_of(name)
        if scopes:
            return scopes[0]
    return graph.tensors[op.outputs[0]].name.split(";")[0]


# ------------------------------------------------------------------ ONNX


def _onnx_conv(w, out, x):  # w: [O, I/g, k...], out: [N, O, spatial...]
    return _prod(out[2:]) * _prod(w)


def _onnx_conv_transpose(w, out, x):  # w: [I, O/g, k...], x: [N, I, spatial...]
    return _prod(x[2:]) * _prod(w)


def _onnx_matmul(w, out, x):  # w: [K, N] (or [N, K] for Gemm transB: same product)
    return _prod(out[1:-1] or [1]) * _prod(w) if len(out) > 2 else _prod(w)


ONNX_MACS = {
    "Conv": _onnx_conv,
    "ConvTranspose": _onnx_conv_transpose,
    "Gemm": _onnx_matmul,
    "MatMul": _onnx_matmul,
    "ConvInteger": _onnx_conv,  # dynamic-range quantization: int8 weights, zero point at input 3
    "MatMulInteger": _onnx_matmul,
}
ONNX_WEIGHT_ZERO_POINT = {"ConvInteger": 3, "MatMulInteger": 3}


def onnx_rows(path):
    """One `WeightRow` per weighted node of the main graph of an `.onnx` file (weights read
    directly or through a DequantizeLinear; shapes from ONNX shape inference)."""
    import onnx

    reader = onnx_reader

    model = reader.read(path, weights_on_disk=True)  # each weight read, counted and dropped in turn
    try:
        inferred = onnx.shape_inference.infer_shapes(_without_weights(model.proto))
    except Exception:  # shapes are a nicety: MACs stay unknown without them
        inferred = model.proto
    shapes = {
        v.name: reader.shape_of(v) for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    producers = {o: n for n in model.graph.node for o in n.output}
    users: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for name in n.input:
            users.setdefault(name, []).append(n)
    rows = []
    for node in model.graph.node:
        if node.op_type not in ONNX_MACS or len(node.input) < 2:
            continue
        weight = _onnx_weight(model, reader, node.input[1], producers)
        if weight is None:
            continue
        values, zero_point, axis = weight
        if node.op_type in ONNX_WEIGHT_ZERO_POINT:
            zero_point, axis = _integer_zero_point(model, reader, node, values)
        # zero points and scales of ConvInteger/MatMulInteger are not parameters of the layer
        names = node.input[:3] if node.op_type not in ONNX_WEIGHT_ZERO_POINT else node.input[1:2]
        # counted from the initializers' dims: reading them again would hold each weight twice
        params = sum(_onnx_elements(model.initializers, name, producers) for name in names if name) + _onnx_bias(
            model.initializers, node, users, producers
        )
        quant = None if zero_point is None else _ZeroPoint(zero_point, axis)
        zeros = count_zeros(values, quant, values.shape)
        out = shapes.get(node.output[0])
        x = shapes.get(node.input[0])
        macs = int(ONNX_MACS[node.op_type](list(values.shape), _dims(out), _dims(x or ()))) if out else None
        name = scopes_of(node.name)[0] if scopes_of(node.name) else node.name or node.output[0]
        rows.append(
            WeightRow(name, node.op_type, values.shape, values.dtype.name, params, int(values.size), zeros, macs)
        )
    return rows


def _without_weights(proto):
    """`proto` with its large initializers reduced to name, type and dims: shape inference needs
    no weight values (only small shape constants), and a copy with them is one more copy of
    every weight (VGG16: 0.5 GB)."""
    import onnx

    light = onnx.ModelProto(ir_version=proto.ir_version)
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    graph = light.graph
    for part in ("node", "input", "output", "value_info"):
        getattr(graph, part).extend(getattr(proto.graph, part))
    for tensor in proto.graph.initializer:
        if tensor.ByteSize() <= 4096:
            graph.initializer.append(tensor)
        else:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    return light


def _integer_zero_point(model, reader, node, values):
    """ConvInteger/MatMulInteger: the weight zero point input (absent: 0), on the output axis."""
    at = ONNX_WEIGHT_ZERO_POINT[node.op_type]
    zero_point = reader.array(model, node.input[at]) if len(node.input) > at and node.input[at] else None
    return (np.zeros(1) if zero_point is None else zero_point), (0 if node.op_type == "ConvInteger" else 1)


def _onnx_bias(inits, node, users, producers):
    """Elements of the bias a MatMul's single Add consumer adds (tf2onnx writes Dense so)."""
    after = users.get(node.output[0], [])
    if node.op_type not in ("MatMul", "MatMulInteger") or len(after) != 1 or after[0].op_type != "Add":
        return 0
    return sum(_onnx_elements(inits, name, producers) for name in after[0].input if name != node.output[0])


def _onnx_elements(inits, name, producers):
    """Elements of the initializer `name` (or the one a DequantizeLinear producing it reads),
    from its dims; 0 when it is not a constant."""
    init = inits.get(name)
    if init is None:
        node = producers.get(name)
        init = inits.get(node.input[0]) if node is not None and node.op_type == "DequantizeLinear" else None
    return _prod(list(init.dims)) if init is not None else 0


@dataclass
class _ZeroPoint:
    zero_point: object
    axis: int


def _onnx_weight(model, reader, name, producers):
    """(values, zero point or None, axis) of an initializer, through a DequantizeLinear."""
    values = reader.array(model, name)
    if values is not None:
        return values, None, 0
    node = producers.get(name)
    if node is None or node.op_type != "DequantizeLinear":
        return None
    values = reader.array(model, node.input[0])
    if values is None:
        return None
    zero_point = reader.array(model, node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return values, zero_point, axis % max(values.ndim, 1)


READERS = {"tflite": tflite_rows, "onnx": onnx_rows}


def weight_report(path, format=None):
    """A `WeightReport` of the artifact at `path` (its format from the suffix unless given)."""
    return WeightReport(READERS[format or format_of_path(path)](path))
