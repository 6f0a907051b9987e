"""What a TFLite flatbuffer holds, read with the LiteRT schema: no interpreter, no TensorFlow.

    from edgekeras.readers import tflite
    model = tflite.read("model.tflite")        # or the converter's bytes
    tflite.detect_precision(model)             # "int8"
    model.op_counts["CONV_2D"], tflite.select_ops(model), tflite.float_ops(model)

Every subgraph is read (a recurrent model's WHILE body holds its weights and ops); `model.main`
is the serving subgraph, with tensors, ops and the signature's inputs/outputs by name. The
exporters read the artifacts they just wrote with it, `inspect` describes files with it, and
validation and the target constraints ask it for an artifact's precision and float ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekeras.errors import InputError
from edgekeras.readers.quant import make_quant
from edgekeras.readers.scopes import layer_pattern, scope_of

FORMAT = "tflite"
_IDENTIFIER = b"TFL3"
_NUMPY = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "INT32": "int32",
    "UINT8": "uint8",
    "INT64": "int64",
    "STRING": "str",
    "BOOL": "bool",
    "INT16": "int16",
    "INT8": "int8",
    "UINT64": "uint64",
    "UINT32": "uint32",
    "UINT16": "uint16",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "BFLOAT16": "bfloat16",
}
FLOATS = ("float32", "float16", "float64", "bfloat16")
CONVERTING_OPS = ("QUANTIZE", "DEQUANTIZE")  # the float <-> integer edges of a quantized graph


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_ops():
    """Names of every TFLite builtin operator (the rest are custom or Flex ops)."""
    return set(_enum(_schema().BuiltinOperator).values())


def _array(value):
    """Flatbuffers' `XAsNumpy()` returns 0 for an absent vector."""
    return value if isinstance(value, np.ndarray) else np.zeros(0)


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple  # the shape signature: None for a dynamic dimension
    dtype: str  # numpy dtype name
    quant: object  # readers.quant.Quant, or None for float/unquantized tensors
    constant: bool  # backed by a buffer (a weight), not computed at run time
    buffer: int = 0  # index of its buffer in the flatbuffer (0: none)
    sparse: bool = False  # stored sparse (sparsity parameters; a DENSIFY op expands it)

    @property
    def size(self):
        """Elements per sample-independent shape (dynamic dimensions counted as 1)."""
        return int(np.prod([d or 1 for d in self.shape])) if self.shape else 1


@dataclass
class Op:
    name: str  # builtin name ('CONV_2D'), custom code, or Flex op name
    inputs: tuple  # tensor indices in its subgraph (absent optional inputs dropped)
    outputs: tuple
    subgraph: int = 0
    options: dict = field(default_factory=dict)  # CONV_2D/DEPTHWISE_CONV_2D: stride, padding, dilation


@dataclass
class Subgraph:
    tensors: list
    ops: list

    def producers(self):
        """{tensor index: the op that computes it}."""
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self):
        """{tensor index: [ops reading it]}."""
        users = {}
        for op in self.ops:
            for i in op.inputs:
                users.setdefault(i, []).append(op)
        return users


@dataclass
class TFLiteModel:
    """Every subgraph of a TFLite model; `main` is the serving one."""

    subgraphs: list
    inputs: dict  # signature (Keras) input name -> tensor index in `main`
    outputs: dict
    description: str = ""
    metadata: dict = field(default_factory=dict)
    signature_keys: list = field(default_factory=list)
    raw: bytes = field(default=b"", repr=False)  # the flatbuffer, for reading constants on demand

    @property
    def main(self):
        return self.subgraphs[0]

    @property
    def tensors(self):
        return self.main.tensors

    @property
    def ops(self):
        return self.main.ops

    @property
    def all_ops(self):
        return [op for graph in self.subgraphs for op in graph.ops]

    @property
    def op_counts(self):
        """{op name: count} over every subgraph."""
        return Counter(op.name for op in self.all_ops)

    def producers(self):
        return self.main.producers()

    def consumers(self):
        return self.main.consumers()

    def constant(self, tensor):
        """The stored values of a constant `Tensor` as a flat numpy array (quantized integers
        as stored; a sparse tensor's non-zero block values only), or None when it has no data."""
        if not tensor.constant or not self.raw:
            return None
        buffer = _schema().Model.GetRootAs(self.raw, 0).Buffers(tensor.buffer)
        if buffer.Offset() > 1:  # models over 2 GiB keep buffers after the flatbuffer
            data = self.raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            data = _array(buffer.DataAsNumpy()).astype(np.uint8).tobytes()
        dtype = "uint16" if tensor.dtype == "bfloat16" else tensor.dtype
        return np.frombuffer(data, dtype=np.dtype(dtype))


def read(source):
    """A `TFLiteModel` from a `.tflite` path or the converter's bytes; anything that is not a
    TFLite flatbuffer is an `InputError`."""
    if isinstance(source, (bytes, bytearray)):
        where, buf = "the converted flatbuffer", bytes(source)
    else:
        where, buf = f"'{source}'", Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise InputError(
            f"Expected a TFLite flatbuffer (file identifier 'TFL3'). Received: {where}, which is not one "
            "(truncated, corrupt, or another format renamed to .tflite). Re-export it with 'edgekeras convert'."
        )
    try:
        return _parse(buf)
    except Exception as e:  # flatbuffers raises struct/index errors on damaged files
        raise InputError(
            f"Could not read {where} as a TFLite model: {type(e).__name__}: {e}. The file is damaged; re-export it."
        ) from None


def _parse(buf):
    s = _schema()
    model = s.Model.GetRootAs(buf, 0)
    builtin, types = _enum(s.BuiltinOperator), _enum(s.TensorType)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # old files use the deprecated field
        name = builtin.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = (oc.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
        codes.append(name)
    subgraphs = []
    for g in range(model.SubgraphsLength()):
        sub = model.Subgraphs(g)
        tensors = [_tensor(model, sub.Tensors(i), i, types) for i in range(sub.TensorsLength())]
        ops = [
            Op(
                codes[op.OpcodeIndex()],
                tuple(int(i) for i in _array(op.InputsAsNumpy()) if i >= 0),
                tuple(int(i) for i in _array(op.OutputsAsNumpy())),
                g,
                _options(s, codes[op.OpcodeIndex()], op),
            )
            for op in (sub.Operators(j) for j in range(sub.OperatorsLength()))
        ]
        subgraphs.append(Subgraph(tensors, ops))
    inputs, outputs, keys = _signature(model, subgraphs[0].tensors)
    metadata = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() == b"min_runtime_version":
            data = model.Buffers(md.Buffer()).DataAsNumpy()
            metadata["min_runtime_version"] = bytes(_array(data).astype(np.uint8)).rstrip(b"\0").decode()
    return TFLiteModel(
        subgraphs, inputs, outputs, (model.Description() or b"").decode("utf-8", "replace"), metadata, keys, buf
    )


# Ops whose builtin options are read (their schema class), for the rules that need geometry.
_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions"}


def _options(s, name, op):
    """{stride, padding, dilation[, depth_multiplier]} of a convolution; {} for other ops."""
    cls = _OPTIONS.get(name)
    table = op.BuiltinOptions() if cls else None
    if table is None:
        return {}
    o = getattr(s, cls)()
    o.Init(table.Bytes, table.Pos)
    out = {
        "stride": (o.StrideH(), o.StrideW()),
        "padding": "SAME" if o.Padding() == s.Padding.SAME else "VALID",
        "dilation": (o.DilationHFactor(), o.DilationWFactor()),
    }
    if name == "DEPTHWISE_CONV_2D":
        out["depth_multiplier"] = o.DepthMultiplier()
    return out


def _tensor(model, t, index, types):
    dtype = _NUMPY.get(types.get(t.Type(), ""), types.get(t.Type(), "unknown").lower())
    shape = _array(t.ShapeSignatureAsNumpy())
    if shape.size == 0:
        shape = _array(t.ShapeAsNumpy())
    q = t.Quantization()
    quant = None
    if q is not None and dtype in _NUMPY.values() and not dtype.startswith(("float", "bfloat", "complex", "str")):
        quant = make_quant(_array(q.ScaleAsNumpy()), _array(q.ZeroPointAsNumpy()), q.QuantizedDimension(), dtype)
    buffer = model.Buffers(t.Buffer()) if t.Buffer() > 0 else None
    constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    return Tensor(
        index,
        (t.Name() or b"").decode("utf-8", "replace"),
        tuple(None if int(d) < 0 else int(d) for d in shape),
        dtype,
        quant,
        constant,
        int(t.Buffer()),
        t.Sparsity() is not None,
    )


def _signature(model, tensors):
    """{name: tensor index} for inputs and outputs, through the serving signature by name."""
    keys = [(model.SignatureDefs(i).SignatureKey() or b"").decode() for i in range(model.SignatureDefsLength())]
    for i, key in enumerate(keys):
        sig = model.SignatureDefs(i)
        if sig.SubgraphIndex() == 0 and (key == "serving_default" or i == len(keys) - 1):
            ins = {sig.Inputs(j).Name().decode(): sig.Inputs(j).TensorIndex() for j in range(sig.InputsLength())}
            outs = {sig.Outputs(j).Name().decode(): sig.Outputs(j).TensorIndex() for j in range(sig.OutputsLength())}
            return ins, outs, keys
    main = model.Subgraphs(0)
    ins = {tensors[int(i)].name: int(i) for i in _array(main.InputsAsNumpy())}
    outs = {tensors[int(i)].name: int(i) for i in _array(main.OutputsAsNumpy())}
    return ins, outs, keys


# ------------------------------------------------------------------ facts


def detect_precision(model):
    """fp32, fp16, dynamic, int8 or int16x8, from the tensor types of every subgraph.

    Quantized activations (op outputs other than DEQUANTIZE's) decide int8/int16x8; else
    float16 weights mean fp16 and quantized integer weights dynamic-range.
    """
    activations, constants = set(), []
    for graph in model.subgraphs:
        produced = {o for op in graph.ops if op.name != "DEQUANTIZE" for o in op.outputs}
        activations |= {graph.tensors[i].dtype for i in produced if graph.tensors[i].quant is not None}
        constants += [t for t in graph.tensors if t.constant]
    if "int16" in activations:
        return "int16x8"
    if activations & {"int8", "uint8"}:
        return "int8"
    if any(t.dtype == "float16" for t in constants):
        return "fp16"
    if any(t.dtype in ("int8", "uint8") and t.quant is not None for t in constants):
        return "dynamic"
    return "fp32"


@dataclass
class FloatOp:
    """An op that computes in floating point (see `float_ops`)."""

    name: str
    outputs: list  # output tensor names (they carry the Keras layer scopes)
    weighted: bool  # a float weight (constant of more than one element) feeds it
    converting: bool  # QUANTIZE/DEQUANTIZE: the float <-> integer edge of a quantized graph


def float_ops(model):
    """Every op, in every subgraph, with a floating-point run-time input or output.

    The one rule for "computes in float": a non-constant tensor it reads or writes is a
    float. Whether the QUANTIZE/DEQUANTIZE edges of a float-I/O int8 model count is the
    caller's choice (`FloatOp.converting`): an int8-only target counts them, the int8
    exporter's check for ops left in float does not.
    """
    found = []
    for graph in model.subgraphs:
        for op in graph.ops:
            tensors = [graph.tensors[i] for i in (*op.inputs, *op.outputs)]
            if not any(t.dtype in FLOATS and not t.constant for t in tensors):
                continue
            weighted = any(t.constant and t.dtype in FLOATS and t.size > 1 for t in tensors)
            outputs = [graph.tensors[i].name for i in op.outputs]
            found.append(FloatOp(op.name, outputs, weighted, op.name in CONVERTING_OPS))
    return found


def quantized_constants(model):
    """How many constant (weight) tensors, in every subgraph, are stored as int8/uint8/int16."""
    integer = ("int8", "uint8", "int16")
    return sum(1 for graph in model.subgraphs for t in graph.tensors if t.constant and t.dtype in integer)


def sparse_storage(model):
    """{"densify_ops", "sparse_tensors"}: how many DENSIFY ops and sparse-stored constants the
    model holds (what the converter's EXPERIMENTAL_SPARSITY optimization writes)."""
    return {
        "densify_ops": model.op_counts.get("DENSIFY", 0),
        "sparse_tensors": sum(1 for graph in model.subgraphs for t in graph.tensors if t.constant and t.sparse),
    }


# Ops a weight passes through between its stored constant and the op that uses it.
WEIGHT_PASSTHROUGH = ("DENSIFY", "DEQUANTIZE")


def weight_source(graph, index, producers=None):
    """The constant tensor behind input `index` of `graph`, through DENSIFY (sparse storage)
    and DEQUANTIZE (fp16/int8 storage) ops; None when the input is computed at run time."""
    producers = graph.producers() if producers is None else producers
    for _ in range(4):
        tensor = graph.tensors[index]
        if tensor.constant:
            return tensor
        op = producers.get(index)
        if op is None or op.name not in WEIGHT_PASSTHROUGH:
            return None
        index = op.inputs[0]
    return None


def select_ops(model):
    """The TensorFlow (Flex) ops the model needs, sorted, e.g. ['FlexMatrixInverse']."""
    return sorted(op for op in model.op_counts if op.startswith("Flex"))


def custom_ops(model):
    """Ops that are neither builtins nor Flex ops (custom codes), sorted."""
    builtin = builtin_ops()
    return sorted(op for op in model.op_counts if op not in builtin and not op.startswith("Flex"))


def op_outputs(model):
    """[(op name, [output tensor names])] for every operator in every subgraph."""
    return [(op.name, [model.subgraphs[op.subgraph].tensors[i].name for i in op.outputs]) for op in model.all_ops]


def layer_nodes(model, layers):
    """{layer: [output names of its ops]} (what the quantizer's denylist matches). An op
    belongs to a layer when its output or one of its constants (weights, bias) is named in
    the layer's scope. An op with no scoped name at all -- a model's last op outputs a tensor
    named after the signature ('StatefulPartitionedCall_1:0'), e.g. a Dense layer's SOFTMAX --
    belongs to the layers of the ops that feed it."""
    ops, by_tensor = [], {}
    for op in model.all_ops:
        tensors = model.subgraphs[op.subgraph].tensors
        outputs = [tensors[i].name for i in op.outputs]
        names = outputs + [tensors[i].name for i in op.inputs if tensors[i].constant]
        if not any(scope_of(n) for n in names):
            names += [n for i in op.inputs if not tensors[i].constant for n in by_tensor.get(tensors[i].name, ())]
        for name in outputs:
            by_tensor[name] = [n for n in names if scope_of(n)]
        ops.append((outputs, names))
    found = {}
    for layer in layers:
        pattern = layer_pattern(layer)
        found[layer] = [name for outputs, names in ops if any(pattern.search(n) for n in names) for name in outputs]
    return found


def arena_kb(model):
    """The peak activation arena in KiB, from the flatbuffer (no interpreter): over the ops in
    execution order, the bytes of every non-constant tensor that is live (produced and still to
    be consumed), batch taken as 1 — what TFLite Micro's greedy planner needs at least."""
    graph = model  # the main subgraph's tensors and ops, its signature's inputs and outputs
    tensors = graph.tensors
    last_use, first_def = {}, dict.fromkeys(graph.inputs.values(), -1)
    for step, op in enumerate(graph.ops):
        for i in op.inputs:
            last_use[i] = step
        for i in op.outputs:
            first_def.setdefault(i, step)
    for i in graph.outputs.values():
        last_use[i] = len(graph.ops)

    def nbytes(t):
        dims = [1 if d is None or d < 0 else d for d in t.shape]
        return int(np.prod(dims)) * (np.dtype(t.dtype).itemsize if t.dtype != "unknown" else 4)

    peak = 0
    for step in range(len(graph.ops)):
        live = sum(
            nbytes(tensors[i])
            for i, start in first_def.items()
            if not tensors[i].constant and start <= step <= last_use.get(i, start)
        )
        peak = max(peak, live)
    return peak / 1024


def constraint_facts(path):
    """What target constraints read from a TFLite file: ops, select ops, detected precision,
    ops computing in float (QUANTIZE/DEQUANTIZE included: an int8-only device runs neither) and
    the activation arena."""
    model = read(path)
    return {
        "ops": sorted(model.op_counts),
        "select_ops": select_ops(model),
        "precision": detect_precision(model),
        "float_ops": sorted({op.name for op in float_ops(model)}),
        "arena_kb": arena_kb(model),
    }
