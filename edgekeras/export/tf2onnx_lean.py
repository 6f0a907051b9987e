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

With all three, ResNet50 converts at 1.3 GB, TensorFlow (0.6 GB) included, but VGG16 (537 MB)
still peaked at 6 GB: before tf2onnx builds its own graph it runs TensorFlow over the frozen
graph several times (function resolution, shape inference, constant folding in a session,
the node-list copy), and each pass materializes every weight again -- as zeros where the
large-model route emptied a constant, as a copy where it refills one. So the weights skip
TensorFlow altogether (`weights_outside_tensorflow`): after freezing, every large constant
becomes a placeholder of its shape and dtype, its bytes set aside, and it enters tf2onnx's
graph as the constant it was when the TensorFlow passes are done, before any handler, rewriter
or optimizer looks at it (they see what they always saw: conv kernels transposed in place,
batch norms folded, recurrent weights matched). VGG16: 6.0 -> 3.0 GB.

`convert` returns the model with its large tensors outside the protobuf (`{location: bytes}`),
which `onnx_files` writes out one tensor at a time.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import inspect
import math

from edgekeras.keras_lean_load import fingerprint

# What `lean_constants` replaces or relies on, as in tf2onnx 1.17.0: "qualified name" -> sha256
# (first 16 hex digits) of its source. `drift()` names what a tf2onnx upgrade changed
# (tests/conversion/test_tf2onnx_lean.py fails on it): re-read graph.Node.update_proto, then update.
TF2ONNX_VERSIONS = ("1.17.0",)
FINGERPRINTS = {
    "tf2onnx.graph.Node.update_proto": "cb558b8f3c2e6a71",
    "tf2onnx.graph.Node.is_const": "fec2b4e963287164",
    "tf2onnx.convert.from_function": "5f4d7530c6659760",
    "tf2onnx.convert.from_graph_def": "dca0ab755ad866a9",
    "tf2onnx.convert._convert_common": "ccb70745e5559af4",
    "tf2onnx.tfonnx.graphs_from_tf": "d8b01c235c943771",
    "tf2onnx.tf_utils.tensorflow_to_onnx": "bd44dba4396443ca",
}
# Keras' tf2onnx patch, whose Node.get_value_attr `external_value_attr` stands in for.
KERAS_FINGERPRINTS = {"keras.src.export.tf2onnx_lib:patch_tf2onnx": "4014475707b2585e"}
# Constants from this size on are weights to keep out of TensorFlow's passes (tf2onnx's own
# large-model route empties constants above 1000 bytes; smaller ones are shapes and axes that
# TensorFlow's shape inference and constant folding need to see).
WEIGHT_BYTES = 1000


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
    found += [name for name, expected in KERAS_FINGERPRINTS.items() if fingerprint(name) != expected]
    return tuple(found)


@contextlib.contextmanager
def lean_constants():
    """Within the block, tf2onnx's constant nodes no longer copy their value into their NodeProto
    (only on the tf2onnx it was written for: on another, tf2onnx runs as it is, with more memory)."""
    from unittest.mock import patch

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

    with patch.multiple(graph.Node, update_proto=update_proto, get_value_attr=external_value_attr):
        yield


def external_value_attr(node, external_tensor_storage=None):
    """What Keras' `patch_tf2onnx` makes `Node.get_value_attr` do on the large-model route (a
    constant above the storage's threshold becomes a reference to bytes in the storage), without
    its deep copy of the whole attribute first: that copy, data included, stayed referenced from
    the storage, so every weight was held once more until the model was written (Dense2G: 2 GB)."""
    from onnx import AttributeProto, TensorProto

    storage = external_tensor_storage
    attr = node._attr["value"]
    if storage is not None and node in storage.node_to_modified_value_attr:
        return storage.node_to_modified_value_attr[node]
    if storage is None or attr.type != AttributeProto.TENSOR:
        return attr
    if math.prod(attr.t.dims) <= storage.external_tensor_size_threshold:
        return attr
    name = f"{node.name.strip()}_{storage.name_counter}"
    for c in '~"#%&*:<>?/\\{|}':
        name = name.replace(c, "_")
    storage.name_counter += 1
    storage.name_to_tensor_data[name] = attr.t.raw_data
    lean = AttributeProto(name=attr.name, type=attr.type)
    lean.t.name, lean.t.data_type = attr.t.name, attr.t.data_type
    lean.t.dims.extend(attr.t.dims)
    lean.t.external_data.add(key="location", value=name)
    lean.t.data_location = TensorProto.EXTERNAL
    storage.node_to_modified_value_attr[node] = lean
    return lean


def detach_weights(graph_def, aside=()):
    """(GraphDef, {node name: (dtype enum, shape, bytes or contiguous array)}): `graph_def` with each
    constant of `WEIGHT_BYTES` or more replaced by a placeholder of its dtype and shape, and those
    values; a constant `weights_aside` marked takes its value from `aside`.
    The returned GraphDef is a new message: once the caller drops `graph_def`, its copy of the
    weights is freed (clearing a field of a upb message does not shrink its arena)."""
    weights = {}
    for node in graph_def.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        marked = _marked(tensor)
        if marked is None and len(tensor.tensor_content) < WEIGHT_BYTES:
            continue
        blob = tensor.tensor_content if marked is None else aside[marked]
        weights[node.name] = (tensor.dtype, [d.size for d in tensor.tensor_shape.dim], blob)
        node.op = "Placeholder"
        node.attr["shape"].shape.CopyFrom(tensor.tensor_shape)
        del node.attr["value"]
    return type(graph_def).FromString(graph_def.SerializeToString()), weights


# A TensorProto `weights_aside` wrote: no content, this prefix and an index into its list.
_MARK = b"edgekeras-weight-aside:"


def _marked(tensor):
    if len(tensor.string_val) == 1 and tensor.string_val[0].startswith(_MARK):
        return int(tensor.string_val[0][len(_MARK) :])
    return None


@contextlib.contextmanager
def weights_aside(aside):
    """While TensorFlow freezes a function, each variable's value of `WEIGHT_BYTES` or more goes
    into the GraphDef as a TensorProto of its dtype and shape alone, marked with its index in
    `aside`, which keeps the array TensorFlow read: the frozen graph never holds a second copy
    of the weights. `detach_weights` takes them from there."""
    from unittest.mock import patch

    import numpy as np
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.python.framework import dtypes, tensor_shape, tensor_util

    original = tensor_util.make_tensor_proto

    def make_tensor_proto(values, dtype=None, shape=None, verify_shape=False, allow_broadcast=False):
        if (
            isinstance(values, np.ndarray)
            and values.dtype.kind in "fiub"
            and values.nbytes >= WEIGHT_BYTES
            and (shape is None or tuple(shape) == values.shape)
        ):
            proto = tensor_pb2.TensorProto(
                dtype=dtypes.as_dtype(dtype if dtype is not None else values.dtype).as_datatype_enum,
                tensor_shape=tensor_shape.as_shape(values.shape).as_proto(),
                string_val=[_MARK + str(len(aside)).encode()],
            )
            aside.append(np.ascontiguousarray(values))
            return proto
        return original(values, dtype, shape, verify_shape, allow_broadcast)

    with patch.object(tensor_util, "make_tensor_proto", make_tensor_proto):
        yield


# Never evaluated ahead (as in tf2onnx's TensorFlow constant folding): inputs, control flow,
# random draws, and quantization ops tf2onnx converts into Q/DQ pairs itself.
NOT_FOLDED = frozenset(
    {"Placeholder", "PlaceholderWithDefault", "Enter", "Switch", "Merge", "NextIteration", "Exit"}
    | {f"QuantizeAndDequantizeV{v}" for v in (2, 3, 4)}
)
HUGE, SMALL = 1_000_000, 1000  # elements: a huge result of small inputs (a Fill) stays an op


def fold_weights(graph_def, weights, outputs):
    """Evaluates, one node at a time, every node computed from weights and small constants only
    (a weight's Identity, a Cast to float16, Keras' batch-norm arithmetic on its statistics):
    what tf2onnx's TensorFlow constant folding did while the weights were constants. Each result
    joins `weights` under its node's name and the node becomes a placeholder; weights nothing
    reads any more are dropped. `outputs`: the graph's output tensors (never folded)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    def value(name):
        dtype, shape, blob = weights[name]
        return np.frombuffer(blob, tf.dtypes.as_dtype(dtype).as_numpy_dtype).reshape(shape)

    nodes = {node.name: node for node in graph_def.node}
    small = {name: tensor_util.MakeNdarray(n.attr["value"].tensor) for name, n in nodes.items() if n.op == "Const"}
    kept = {name.split(":")[0] for name in outputs}
    progress = True
    while progress:
        progress = False
        for node in graph_def.node:
            data = [i for i in node.input if not i.startswith("^")]
            sources = [i.split(":")[0] for i in data]
            if (
                node.op in NOT_FOLDED
                or node.op.startswith("Random")
                or node.name in kept
                or not any(s in weights for s in sources)
                or not all(s in weights or s in small for s in sources)
                or any(":" in i and not i.endswith(":0") for i in data)  # a second output of its source
            ):
                continue
            if node.op == "Identity" and sources[0] in weights:  # a variable read: the same values, no copy
                weights[node.name] = weights[sources[0]]
                _as_placeholder(node, *weights[node.name][:2])
                progress = True
                continue
            feeds = [value(s) if s in weights else small[s] for s in sources]
            result = _evaluate(node, feeds)
            if result is None or (result.size >= HUGE and all(f.size <= SMALL for f in feeds)):
                continue
            result = np.ascontiguousarray(result)
            weights[node.name] = (tf.dtypes.as_dtype(result.dtype).as_datatype_enum, list(result.shape), result)
            _as_placeholder(node, weights[node.name][0], result.shape)
            progress = True
    used = {i.split(":")[0].lstrip("^") for node in graph_def.node for i in node.input} | kept
    for name in [name for name in weights if name not in used]:
        del weights[name]
        graph_def.node.remove(nodes[name])


def _evaluate(node, feeds):
    """The single output of `node` on `feeds` (one array per data input), or None when
    TensorFlow cannot evaluate it alone (or it has several outputs)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        names = [f"edgekeras_feed_{i}" for i in range(len(feeds))]
        for name, feed in zip(names, feeds):
            tf.compat.v1.placeholder(tf.dtypes.as_dtype(feed.dtype), feed.shape, name=name)
        mini = graph.as_graph_def()
        copy = mini.node.add()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(names)
    with tf.Graph().as_default() as run, tf.compat.v1.Session(graph=run) as session:
        try:
            tf.import_graph_def(mini, name="")
            op = run.get_operation_by_name(node.name)
            if len(op.outputs) != 1:
                return None
            return session.run(op.outputs[0], {f"{name}:0": feed for name, feed in zip(names, feeds)})
        except Exception:  # as tf2onnx: a node TensorFlow cannot run alone stays an op
            return None


def _as_placeholder(node, dtype, shape):
    from tensorflow.core.framework import tensor_shape_pb2

    node.op = "Placeholder"
    del node.input[:]
    node.attr.clear()
    node.attr["dtype"].type = dtype
    node.attr["shape"].shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in shape]))


@contextlib.contextmanager
def weights_outside_tensorflow(weights):
    """Within the block, tf2onnx turns the placeholders `detach_weights` made back into constants
    holding `weights` as it builds its graph from TensorFlow's node list; `weights` is emptied
    as they go in, so each tensor's bytes are held once."""
    from unittest.mock import patch

    from onnx import AttributeProto, NodeProto
    from tf2onnx import tf_utils, tfonnx

    original = tfonnx.tensorflow_to_onnx

    def tensorflow_to_onnx(graph, *args, **kwargs):
        nodes, *rest = original(graph, *args, **kwargs)
        for i, node in enumerate(nodes):
            if node.op_type == "Placeholder" and node.name in weights:
                dtype, shape, blob = weights.pop(node.name)
                const = NodeProto(name=node.name, op_type="Const", output=node.output)
                attr = const.attribute.add(name="value", type=AttributeProto.TENSOR)
                attr.t.name, attr.t.data_type = node.output[0], tf_utils.map_tf_dtype(dtype)
                attr.t.dims.extend(shape)
                # copied into the node's arena once; `blob` goes with this loop
                attr.t.raw_data = blob if isinstance(blob, bytes) else blob.tobytes()
                nodes[i] = const
                del blob
        return (nodes, *rest)

    with patch.object(tfonnx, "tensorflow_to_onnx", tensorflow_to_onnx):
        yield


def tensors(external_tensor_storage):
    """{location: bytes} of tf2onnx's `ExternalTensorStorage` (empty when it is None)."""
    return dict(external_tensor_storage.name_to_tensor_data) if external_tensor_storage is not None else {}


def freeze(tf2onnx, concrete):
    """(GraphDef, weights, input names, output names, renames) of the concrete function, frozen
    as tf2onnx's `from_function` freezes it on its large-model route, weights detached."""
    import tensorflow as tf
    from tf2onnx import tf_loader

    inputs = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)
    if drift():  # another tf2onnx: `weights_outside_tensorflow` may not hold there
        with tf.device("/cpu:0"):
            graph_def = tf_loader.from_function(concrete, inputs, outputs, large_model=True)
        return graph_def, {}, inputs, outputs, renames
    aside = []
    with tf.device("/cpu:0"), weights_aside(aside):
        graph_def = tf_loader.from_function(concrete, inputs, outputs, large_model=True)
    graph_def, weights = detach_weights(graph_def, aside)
    del aside
    gc.collect()
    fold_weights(graph_def, weights, outputs)
    return graph_def, weights, inputs, outputs, renames


def convert_function(tf2onnx, fn, opset):
    """(ModelProto, {location: bytes}) of the `tf.function` `fn` through tf2onnx's large-model
    route, the weights kept out of TensorFlow's passes (what `from_function` does, step by step)."""
    import tensorflow as tf

    if drift():
        with lean_constants():
            model, storage = tf2onnx.convert.from_function(
                fn, input_signature=fn.input_signature, opset=opset, large_model=True
            )
        return model, tensors(storage)
    concrete = fn.get_concrete_function()
    graph_def, weights, inputs, outputs, renames = freeze(tf2onnx, concrete)
    with tf.device("/cpu:0"), lean_constants(), weights_outside_tensorflow(weights):
        model, storage = tf2onnx.convert._convert_common(
            graph_def,
            name=concrete.name,
            continue_on_error=True,
            opset=opset,
            input_names=inputs,
            output_names=outputs,
            large_model=True,
            tensors_to_rename=renames,
        )
    found = tensors(storage)
    del storage
    gc.collect()  # tf2onnx's graph is full of reference cycles; its copy of the weights goes now
    return _compact(model), found


def convert_graph_def(tf2onnx, graph_def, weights, inputs, outputs, opset, renames):
    """(ModelProto, {location: bytes}) of a frozen GraphDef whose `weights` `detach_weights`
    set aside, through tf2onnx's large-model route."""
    with lean_constants(), weights_outside_tensorflow(weights):
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
    return _compact(model), found


def _compact(model):
    """`model` parsed anew from its bytes: tf2onnx moved the large tensors out to its storage by
    clearing their fields, which does not shrink the message's upb arena (one more copy of every
    weight held until the model is dropped); the new message holds the graph alone."""
    return type(model).FromString(model.SerializeToString())
