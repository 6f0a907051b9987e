"""tf2onnx with the weights held about once, not once per optimizer pass.

Measured on ResNet50 (94 MB of weights), `tf2onnx.convert.from_function` peaked at 6.5 GB.
Three things multiply the weights there:

- freezing: `convert_variables_to_constants_v2` builds a new concrete function from the frozen
  graph and grappler then copies it through a MetaGraph, each time with every weight in it
  (0.8 GB -> 2.6 GB). tf2onnx's `large_model` route freezes without either, and strips the
  weights out of the graph TensorFlow imports for shape inference;
- `optimize_graph` deep-copies the whole graph, weights included, before each of its ~24
  optimizer passes so it can roll a failing one back (`catch_errors`; the `large_model` route
  turns it off: a failing optimizer is then a conversion error);
- every pass ends with `Node.update_proto`, which copies each constant's value into the node's
  NodeProto. With protobuf's upb backend a message's memory lives in an arena that clearing a
  field does not shrink, so each pass leaves another copy of every weight behind. A constant's
  NodeProto is never used for the model (`Graph.make_graph` writes constants as initializers
  from their value attribute), so `lean_constants` gives it a fresh, attribute-less NodeProto
  instead.

With all three, ResNet50 converts at 1.3 GB, TensorFlow (0.6 GB) included. `convert` returns
the model with its large tensors outside the protobuf (`{location: bytes}`), which
`onnx_files` writes out one tensor at a time.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import inspect

# What `lean_constants` replaces or relies on, as in tf2onnx 1.17.0: "qualified name" -> sha256
# (first 16 hex digits) of its source. `drift()` names what a tf2onnx upgrade changed
# (tests/conversion/test_tf2onnx_lean.py fails on it): re-read graph.Node.update_proto, then update.
TF2ONNX_VERSIONS = ("1.17.0",)
FINGERPRINTS = {
    "tf2onnx.graph.Node.update_proto": "cb558b8f3c2e6a71",
    "tf2onnx.graph.Node.is_const": "fec2b4e963287164",
    "tf2onnx.convert.from_function": "5f4d7530c6659760",
    "tf2onnx.convert.from_graph_def": "dca0ab755ad866a9",
}


def drift() -> list[str]:
    """What differs from the tf2onnx this module was written against (empty: nothing)."""
    return list(_drift())


@functools.cache  # the installed tf2onnx does not change while a process runs; each conversion asks
def _drift() -> tuple[str, ...]:
    import importlib

    import tf2onnx

    found = [] if tf2onnx.__version__ in TF2ONNX_VERSIONS else [f"tf2onnx {tf2onnx.__version__}"]
    for name, expected in FINGERPRINTS.items():
        module, _, attribute = name.removeprefix("tf2onnx.").partition(".")
        target = importlib.import_module(f"tf2onnx.{module}")
        for part in attribute.split("."):
            target = getattr(target, part)
        if hashlib.sha256(inspect.getsource(target).encode()).hexdigest()[:16] != expected:
            found.append(name)
    return tuple(found)


@contextlib.contextmanager
def lean_constants():
    """Within the block, tf2onnx's constant nodes no longer copy their value into their NodeProto
    (only on the tf2onnx it was written for: on another, tf2onnx runs as it is, with more memory)."""
    from onnx import NodeProto
    from tf2onnx import graph

    if drift():
        yield
        return

    original = graph.Node.update_proto

    def update_proto(node, external_tensor_storage=None):
        if not node.is_const():
            return original(node, external_tensor_storage)
        old = node.op
        fresh = NodeProto(name=old.name, op_type=old.op_type, domain=old.domain)
        fresh.input.extend(node.input)
        fresh.output.extend(node.output)
        node._op = fresh  # the old proto (and the arena holding stale weight copies) is released
        return None

    graph.Node.update_proto = update_proto
    try:
        yield
    finally:
        graph.Node.update_proto = original


def tensors(external_tensor_storage):
    """{location: bytes} of tf2onnx's `ExternalTensorStorage` (empty when it is None)."""
    return dict(external_tensor_storage.name_to_tensor_data) if external_tensor_storage is not None else {}


def convert_function(tf2onnx, fn, opset):
    """(ModelProto, {location: bytes}) of the `tf.function` `fn` through tf2onnx's large-model route."""
    with lean_constants():
        model, storage = tf2onnx.convert.from_function(
            fn, input_signature=fn.input_signature, opset=opset, large_model=True
        )
    found = tensors(storage)
    del storage
    gc.collect()  # tf2onnx's graph is full of reference cycles; its copy of the weights goes now
    return model, found


def convert_graph_def(tf2onnx, graph_def, inputs, outputs, opset, renames):
    """(ModelProto, {location: bytes}) of a frozen GraphDef through tf2onnx's large-model route."""
    with lean_constants():
        model, storage = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            tensors_to_rename=renames,
            large_model=True,
        )
    found = tensors(storage)
    del storage
    gc.collect()
    return model, found
