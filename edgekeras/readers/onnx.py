"""What an ONNX model holds, read with `onnx`: no runtime, no TensorFlow.

    from edgekeras.readers import onnx
    model = onnx.read("model.onnx")           # external weights are not loaded
    onnx.detect_precision(model)               # "int8"
    model.op_counts["Conv"], onnx.float_ops(model), onnx.quant_of(model, node)

`model.nodes` holds every node, the bodies of If/Loop/Scan included; `model.proto` is the
`onnx.ModelProto`. In a QDQ graph an int8 op is written DequantizeLinear -> op ->
QuantizeLinear, so "computes in float" reads through those pairs (see `float_ops`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekeras.errors import InputError
from edgekeras.readers import onnx_lazy
from edgekeras.readers.quant import make_quant

FORMAT = "onnx"
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"})
CONVERTING_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


@dataclass
class ONNXModel:
    """An ONNX model and the facts every reader of it needs."""

    proto: object  # onnx.ModelProto (initializers without their external data)
    nodes: list  # every NodeProto, nested subgraphs included
    subgraphs: int  # the main graph plus every If/Loop/Scan body
    initializers: dict  # name -> TensorProto of the main graph
    path: object = None  # the file read (its folder holds any external weight data)

    @property
    def graph(self):
        return self.proto.graph

    @property
    def op_counts(self):
        """{op name: count} over every (sub)graph; non-standard domains as 'domain.Op'."""
        return Counter(op_name(n) for n in self.nodes)

    @property
    def inputs(self):
        """The graph inputs that are fed at run time (old IR versions also list initializers)."""
        return [v for v in self.graph.input if v.name not in self.initializers]

    @property
    def outputs(self):
        return list(self.graph.output)

    def constants(self):
        """Names of every tensor fixed at export: initializers and Constant node outputs."""
        names = set(self.initializers)
        names.update(o for n in self.nodes if n.op_type == "Constant" for o in n.output)
        return names


def read(path, weights_on_disk=False):
    """An `ONNXModel` from `path`; a file that is not ONNX is an `InputError`. With
    `weights_on_disk`, a one-file model's weights stay in the file too (`onnx_lazy`): `array`
    reads them one tensor at a time."""
    import onnx

    try:
        proto = onnx_lazy.load(path) if weights_on_disk else onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise InputError(
            f"Expected an ONNX model (a protobuf ModelProto). Received: '{path}', which could not be parsed "
            f"({type(e).__name__}). Is it truncated, or another format renamed to .onnx?"
        ) from None
    if proto.ir_version <= 0 or not proto.graph.node:
        raise InputError(
            f"Expected an ONNX model with a graph. Received: '{path}', which has no graph nodes "
            "(empty, or not an ONNX file). Re-export it with 'edgekeras convert'."
        )
    nodes, subgraphs = _nodes(proto.graph)
    return ONNXModel(proto, nodes, subgraphs, {i.name: i for i in proto.graph.initializer}, Path(path))


def _nodes(graph):
    """Every node, nested subgraphs (If/Loop/Scan bodies) included, and the subgraph count."""
    from onnx import AttributeProto

    found, graphs = [], 1
    for node in graph.node:
        found.append(node)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                inner, count = _nodes(sub)
                found += inner
                graphs += count
    return found, graphs


def op_name(node):
    """The op type, prefixed with its domain when that is not a standard ONNX domain."""
    return node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"


def custom_ops(model):
    """Ops from non-standard domains (e.g. 'com.microsoft.FusedConv'), sorted."""
    return sorted({op_name(n) for n in model.nodes if n.domain not in STANDARD_DOMAINS})


def dtype_name(elem_type):
    """The numpy dtype name of an ONNX element type ('unknown' when numpy has none)."""
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        return "unknown"


def shape_of(value_info):
    """A ValueInfoProto's shape, None for a dimension that is not a fixed number."""
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def array(model, name):
    """An initializer's values as numpy (None when it is not an initializer of the main graph);
    values stored in an external file are read from beside the model, one tensor at a time."""
    from onnx import numpy_helper

    init = model.initializers.get(name)
    if init is None:
        return None
    if is_external(init) and model.path is not None:
        return numpy_helper.to_array(init, base_dir=str(Path(model.path).parent))
    return numpy_helper.to_array(init)


def is_external(tensor):
    """True when a TensorProto's values live in an external file (not loaded by `read`)."""
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL


def quant_of(model, node):
    """The `Quant` of a QuantizeLinear/DequantizeLinear node with constant scale and zero point."""
    if node is None or len(node.input) < 2 or node.input[1] not in model.initializers:
        return None
    scale = array(model, node.input[1])
    if len(node.input) > 2 and node.input[2] in model.initializers:
        zero = array(model, node.input[2])
    else:  # no zero point: 0 of the quantized tensor's type (uint8 for QuantizeLinear's output)
        stored = model.initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        zero = np.zeros(scale.shape, dtype_name(stored.data_type) if stored is not None else np.uint8)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return make_quant(scale, zero, axis, zero.dtype)


def io_quant(model, name, is_input):
    """The per-tensor `Quant` of an integer graph input/output, from the (De)QuantizeLinear
    that reads or writes it (None for float I/O)."""
    op, pos = ("DequantizeLinear", "input") if is_input else ("QuantizeLinear", "output")
    node = next((n for n in model.nodes if n.op_type == op and getattr(n, pos)[0] == name), None)
    q = quant_of(model, node)
    return q if q is not None and not q.per_channel else None


def detect_precision(model):
    """fp32, fp16, dynamic, int8 or int16x8, from the graph's ops and tensor types.

    QuantizeLinear (static QDQ) or QLinear* ops mean int8, or int16x8 when an activation's
    QuantizeLinear is 16-bit; dynamic-quantization ops or weights-only DequantizeLinear mean
    dynamic; float16 weights or I/O mean fp16.
    """
    from onnx import TensorProto

    types = {n.op_type for n in model.nodes}
    if "QuantizeLinear" in types or any(t.startswith("QLinear") for t in types):
        for n in model.nodes:
            if n.op_type == "QuantizeLinear" and n.input[0] not in model.initializers:
                q = quant_of(model, n)
                if q is not None and q.dtype in ("int16", "uint16"):
                    return "int16x8"
        return "int8"
    if types & DYNAMIC_OPS or "DequantizeLinear" in types:
        return "dynamic"
    io = list(model.graph.input) + list(model.graph.output)
    if any(i.data_type == TensorProto.FLOAT16 for i in model.initializers.values()) or any(
        v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in io
    ):
        return "fp16"
    return "fp32"


@dataclass
class FloatOp:
    """A node that computes in floating point (see `float_ops`)."""

    name: str  # op type ('Conv')
    node: str  # node name (it carries the Keras layer scope)
    outputs: list
    converting: bool  # QuantizeLinear/DequantizeLinear: the float <-> integer edge


def float_ops(model):
    """Every node with a floating-point run-time input or output — the same rule as TFLite's.

    A QDQ graph writes an int8 op as DequantizeLinear -> op -> QuantizeLinear: a float tensor
    a DequantizeLinear produces, or one that only QuantizeLinear reads, is an integer tensor
    shown in float, so the op between them does not count. The QuantizeLinear/DequantizeLinear
    nodes count (`converting`) where they meet a float op or the graph's float inputs and
    outputs — the edges TFLite writes as QUANTIZE/DEQUANTIZE. Types come from ONNX shape
    inference; a tensor of unknown type counts as float.
    """
    from onnx import shape_inference

    try:
        graph = shape_inference.infer_shapes(model.proto).graph
    except Exception:  # a graph inference cannot type: its untyped tensors count as float
        graph = model.graph
    typed = [*graph.input, *graph.output, *graph.value_info]
    types = {v.name: dtype_name(v.type.tensor_type.elem_type) for v in typed}
    constants = model.constants()
    produced_by = {o: n for n in model.nodes for o in n.output}
    readers = {}
    for n in model.nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in model.graph.output}

    def is_float(name):
        return bool(name) and name not in constants and types.get(name, "float32") in ("float32", "float16", "float64")

    def dequantized(name):
        return name in produced_by and produced_by[name].op_type == "DequantizeLinear"

    def quantized_next(name):
        users = readers.get(name, [])
        return bool(users) and name not in graph_outputs and all(u.op_type == "QuantizeLinear" for u in users)

    computing = {
        id(n)
        for n in model.nodes
        if n.op_type not in CONVERTING_OPS
        and (
            any(is_float(i) and not dequantized(i) for i in n.input)
            or any(is_float(o) and not quantized_next(o) for o in n.output)
        )
    }

    def edge(n):
        if n.op_type == "DequantizeLinear":
            return any(o in graph_outputs or any(id(u) in computing for u in readers.get(o, [])) for o in n.output)
        source = produced_by.get(n.input[0]) if n.input else None
        return is_float(n.input[0]) and (source is None or id(source) in computing)

    return [
        FloatOp(op_name(n), n.name, list(n.output), n.op_type in CONVERTING_OPS)
        for n in model.nodes
        if id(n) in computing or (n.op_type in CONVERTING_OPS and edge(n))
    ]


def constraint_facts(path):
    """What target constraints read from an ONNX file: ops and the detected precision (ONNX has
    no TensorFlow select ops)."""
    model = read(path)
    return {"ops": sorted(model.op_counts), "select_ops": [], "precision": detect_precision(model)}
