"""Reading a TFLite flatbuffer: the ops it uses, its constant tensors' types, op output names.

Used to check what a conversion really produced (dynamic-range quantization that quantized
nothing, TensorFlow select ops) and to find the tensors that belong to a Keras layer.
"""

from __future__ import annotations

import re


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _model(flatbuffer):
    return _schema().Model.GetRootAsModel(bytearray(flatbuffer), 0)


def _op_names(model):
    from tensorflow.lite.python.schema_util import get_builtin_code_from_operator_code

    schema = _schema()
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        b = get_builtin_code_from_operator_code(code)
        names.append(code.CustomCode().decode() if b == schema.BuiltinOperator.CUSTOM else builtin[b])
    return names


class _Op:
    """One operator: its name and its input/output tensors (absent optional inputs dropped)."""

    def __init__(self, model, graph, op, names):
        self.name = names[op.OpcodeIndex()]
        self.inputs = [graph.Tensors(op.Inputs(k)) for k in range(op.InputsLength()) if op.Inputs(k) >= 0]
        self.outputs = [graph.Tensors(op.Outputs(k)) for k in range(op.OutputsLength())]
        self.output_names = [t.Name().decode() for t in self.outputs]
        self.constants = [t for t in self.inputs if _is_constant(model, t)]


def _operators(flatbuffer):
    """Every operator of every subgraph, as `_Op`s."""
    model = _model(flatbuffer)
    names = _op_names(model)
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for j in range(graph.OperatorsLength()):
            yield _Op(model, graph, graph.Operators(j), names)


def ops_used(flatbuffer):
    """Sorted op names of every operator in every subgraph (builtins by name, custom/Flex by code)."""
    return sorted({op.name for op in _operators(flatbuffer)})


def select_ops(flatbuffer):
    """The TensorFlow (Flex) ops the model needs, e.g. ['FlexMatrixInverse']."""
    return [op for op in ops_used(flatbuffer) if op.startswith("Flex")]


def quantized_constants(flatbuffer):
    """How many constant (weight) tensors are stored as int8/uint8/int16."""
    schema = _schema()
    integer = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}
    model = _model(flatbuffer)
    count = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            if tensor.Type() in integer and _is_constant(model, tensor):
                count += 1
    return count


def float_ops(flatbuffer):
    """[(op name, [output names], weighted)] for every op that computes in float32 (QUANTIZE and
    DEQUANTIZE, the int8 model's boundaries, excluded); `weighted` when a float constant with
    more than one element (a weight left unquantized) feeds it."""
    float32 = _schema().TensorType.FLOAT32
    found = []
    for op in _operators(flatbuffer):
        if op.name in ("QUANTIZE", "DEQUANTIZE") or all(t.Type() != float32 for t in op.inputs + op.outputs):
            continue
        weighted = any(t.Type() == float32 and _elements(t) > 1 for t in op.constants)
        found.append((op.name, op.output_names, weighted))
    return found


def _is_constant(model, tensor):
    buffer = model.Buffers(tensor.Buffer())
    return buffer.DataLength() > 0 or buffer.Size() > 0


def _elements(tensor):
    count = 1
    for i in range(tensor.ShapeLength()):
        count *= max(tensor.Shape(i), 1)
    return count


def op_outputs(flatbuffer):
    """[(op name, [output tensor names])] for every operator in every subgraph."""
    return [(op.name, op.output_names) for op in _operators(flatbuffer)]


def layer_nodes(flatbuffer, layers):
    """{layer: [output names of its ops]} (what the quantizer's denylist matches). An op
    belongs to a layer when its output or one of its constants (weights, bias) is named in
    the layer's scope: a model's last op outputs a tensor named after the signature
    ('StatefulPartitionedCall_1:0'), not after its layer."""
    ops = [(op.output_names, [t.Name().decode() for t in op.constants]) for op in _operators(flatbuffer)]
    found = {}
    for layer in layers:
        pattern = layer_pattern(layer)
        found[layer] = [
            name
            for outputs, constants in ops
            if any(pattern.search(n) for n in outputs + constants)
            for name in outputs
        ]
    return found


def layer_pattern(layer):
    """Matches a Keras layer's name scope in TensorFlow-derived names ('model/dense_1/MatMul').

    Keras 3 on TensorFlow may add a `_N` suffix to the scope of a layer called `dense`.
    """
    return re.compile(rf"(^|/){re.escape(layer)}(_\d+)?(/|;|$)")


def names_in_layers(names, layers):
    """{layer: [names in its scope]} for each layer name."""
    return {layer: [n for n in names if layer_pattern(layer).search(n)] for layer in layers}


def layers_in_names(names, layer_names):
    """The Keras layers whose scope appears in any of `names` (for error messages)."""
    found = []
    for layer in layer_names:
        if any(layer_pattern(layer).search(n) for n in names) and layer not in found:
            found.append(layer)
    return found
