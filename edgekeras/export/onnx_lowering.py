"""TensorFlow graphs that tf2onnx converts into ONNX graphs ONNX Runtime refuses, made convertible.

tf2onnx copies a TensorFlow op it has no handler for into the ONNX graph as it is, and ONNX
Runtime then refuses the file (INVALID_GRAPH, "No Op registered for ..."). Two such ops come
from Keras 3 itself (keras.applications' ConvNeXt has both):

- A grouped convolution (`Conv2D(groups > 1)`, ConvNeXt's depthwise convolutions) runs through
  a nested `tf.function(jit_compile=True)` because TensorFlow's CPU kernel cannot run it
  (keras/src/backend/tensorflow/nn.py). Traced, that is a StatefulPartitionedCall to a function
  marked `_XlaMustCompile` and `_noinline`, which TensorFlow's function inlining skips. With the
  two marks dropped from the frozen graph, grappler inlines it: a plain Conv2D, which tf2onnx
  writes as an ONNX Conv with `group`.
- Exact GELU (`keras.activations.gelu`, `approximate=False`) is `0.5 x erfc(-x/sqrt(2))`; tf2onnx
  has a handler for Erf but none for Erfc, so `Erfc(z)` is rewritten as `1 - Erf(z)` (`LOWERINGS`).

`convert_function` takes tf2onnx's usual route (`from_function`) for every graph without these,
and otherwise freezes, unmarks, inlines and lowers the graph first, then converts the result
with `from_graph_def` (same input/output names); both through `tf2onnx_lean`, so the weights
come back outside the protobuf. `unknown_ops` lists what a converted graph
still holds that ONNX does not define, so the exporter can name it instead of writing a file no
runtime loads.
"""

from __future__ import annotations

from edgekeras.export import tf2onnx_lean

NO_INLINE_MARKS = ("_XlaMustCompile", "_noinline")


def _lower_erfc(graph_def, node):
    """Erfc(z) -> Sub(1, Erf(z)), keeping the node's name (and so its consumers' inputs)."""
    import numpy as np
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(node.attr["T"].type)
    one = graph_def.node.add(name=f"{node.name}/one", op="Const")
    one.attr["dtype"].type = dtype.as_datatype_enum
    one.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(1, dtype.as_numpy_dtype)))
    erf = graph_def.node.add(name=f"{node.name}/erf", op="Erf", input=list(node.input))
    erf.attr["T"].CopyFrom(node.attr["T"])
    node.op = "Sub"
    del node.input[:]
    node.input.extend([one.name, erf.name])


# TensorFlow op -> rewrite(graph_def, node) into ops tf2onnx converts.
LOWERINGS = {"Erfc": _lower_erfc}


def needs_rewrite(graph_def):
    """Why `graph_def` (a traced, unfrozen function) needs this module's rewrites: a sorted list of
    op names in `LOWERINGS` and 'grouped convolution (XLA-compiled call)'; empty when it does not."""
    found = {n.op for n in graph_def.node if n.op in LOWERINGS}
    for function in graph_def.library.function:
        found |= {n.op for n in function.node_def if n.op in LOWERINGS}
        if any(function.attr[mark].b for mark in NO_INLINE_MARKS if mark in function.attr):
            found.add("XLA-compiled call")
    return sorted(found)


def _unmark(graph_def):
    """Drops the marks that keep TensorFlow's function inlining away from a call."""
    attributes = [n.attr for n in graph_def.node]
    for function in graph_def.library.function:
        attributes += [function.attr, *(n.attr for n in function.node_def)]
    for attr in attributes:
        for mark in NO_INLINE_MARKS:
            if mark in attr:
                del attr[mark]


def _lower(graph_def):
    for node in list(graph_def.node):
        if node.op in LOWERINGS:
            LOWERINGS[node.op](graph_def, node)


def convert_function(tf2onnx, fn, opset):
    """(ModelProto, {location: bytes}): the serving function `fn` converted with the (patched,
    imported) `tf2onnx` module, its large tensors outside the protobuf; raises whatever tf2onnx raises."""
    import tensorflow as tf
    from tf2onnx import tf_loader

    concrete = fn.get_concrete_function()
    if not needs_rewrite(concrete.graph.as_graph_def()):
        return tf2onnx_lean.convert_function(tf2onnx, fn, opset)
    # What tf2onnx.convert.from_function does, with the graph rewritten between freezing and
    # converting; frozen on the large-model route (no TensorFlow inlining copies: ConvNeXtTiny
    # 2.5 GB instead of 3.1), the weights set aside so grappler's pass, which inlines the
    # unmarked calls, runs over a graph without them.
    frozen, weights, inputs, outputs, renames = tf2onnx_lean.freeze(tf2onnx, concrete)
    _unmark(frozen)
    with tf.device("/cpu:0"), tf.Graph().as_default():  # grappler needs graph mode
        flat = tf_loader.tf_optimize(inputs, outputs, frozen)
    del frozen
    _lower(flat)
    return tf2onnx_lean.convert_graph_def(tf2onnx, flat, weights, inputs, outputs, opset, renames)


def unknown_ops(model):
    """{op type: [node names]} of nodes in the default ONNX domain that ONNX does not define:
    TensorFlow ops tf2onnx copied over unconverted (ONNX Runtime refuses to load the graph)."""
    import onnx

    found = {}
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            found.setdefault(node.op_type, []).append(node.name)
    return found
