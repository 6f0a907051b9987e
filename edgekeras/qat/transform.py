"""Where a quantization-aware model simulates 8-bit tensors: a `FakeQuant` after each Keras
layer whose output is an 8-bit tensor in the converted artifact.

What counts is what the runtimes keep as a tensor, stated as data (tfmot's registry idea):
- a convolution whose output goes only into BatchNormalization is one op at run time: the
  model gets it folded too (BatchNormalization is frozen while the model fine-tunes), so its
  kernel is the one the artifact quantizes and only the folded output is simulated;
- a convolution, Dense, BatchNormalization or Add followed only by ReLU/ReLU6 is fused with
  it, so only the activation's output is quantized;
- layers that move values without computing new ones (reshape, pooling by max, padding,
  dropout) keep their input's scale, so they need none of their own;
- any other activation inside a layer (`Conv2D(activation="swish")`) is a separate op after
  the layer's own output, so the layer is split in two, each output simulated; swish/silu is
  sigmoid times input (two ops, LOGISTIC and MUL), so it is built that way;
- sigmoid, softmax and tanh outputs sit on the fixed grid the runtimes' kernels use.
Every model input gets one too. Nested functional and Sequential models are walked into.
"""

from __future__ import annotations

from edgekeras.models.graph import graph_of as functional_graph
from edgekeras.models.layer_kinds import INFERENCE_IDENTITY, SPATIAL_SELECTING

# A layer that folds a following BatchNormalization: (axis of its kernel that holds the output
# channel, None for depthwise's (channels, multiplier); the kernel attribute that is scaled).
FOLD_AXES = {
    "Conv1D": (-1, "kernel"),
    "Conv2D": (-1, "kernel"),
    "Conv3D": (-1, "kernel"),
    "Conv1DTranspose": (-2, "kernel"),
    "Conv2DTranspose": (-2, "kernel"),
    "Conv3DTranspose": (-2, "kernel"),
    "DepthwiseConv1D": (None, "kernel"),
    "DepthwiseConv2D": (None, "kernel"),
    "SeparableConv1D": (-1, "pointwise_kernel"),
    "SeparableConv2D": (-1, "pointwise_kernel"),
}
FOLDS_INTO_BATCHNORM = frozenset(FOLD_AXES)
FUSES_RELU = FOLDS_INTO_BATCHNORM | {"Dense", "BatchNormalization", "Add"}
KEEPS_INPUT_SCALE = (
    frozenset({"InputLayer", "Reshape", "Flatten", "Permute", "RepeatVector", "FakeQuant"})
    | INFERENCE_IDENTITY
    | SPATIAL_SELECTING
)
RELU_ACTIVATIONS = frozenset({"relu", "relu6"})
LINEAR_ACTIVATIONS = frozenset({"linear", None})
SIGMOID_TIMES_INPUT = frozenset({"swish", "silu"})
# [min, max] of the int8 grid LiteRT's kernels fix for these outputs (scale 1/256 or 1/128).
FIXED_OUTPUT_RANGES = {"sigmoid": (0.0, 255 / 256), "softmax": (0.0, 255 / 256), "tanh": (-1.0, 127 / 128)}


def _activation_name(fn):
    import keras

    if fn is None:
        return None
    name = keras.activations.serialize(fn)
    return name if isinstance(name, str) else getattr(fn, "__name__", None)


def _inner_activation(layer):
    """The name of an activation `layer` applies inside itself that is an op of its own at run
    time (None for linear, fused ReLU/ReLU6, or an Activation layer)."""
    if type(layer).__name__ == "Activation" or not hasattr(layer, "activation"):
        return None
    name = _activation_name(layer.activation)
    return None if name in LINEAR_ACTIVATIONS or name in RELU_ACTIVATIONS else name


def _is_relu(layer):
    name = type(layer).__name__
    if name == "ReLU":
        config = layer.get_config()
        return (
            config.get("max_value") in (None, 6.0) and not config.get("negative_slope") and not config.get("threshold")
        )
    if name == "Activation":
        activation = layer.get_config().get("activation")
        return isinstance(activation, str) and activation in RELU_ACTIVATIONS
    return False


def graph_of(model):
    """The functional graph behind `model` (see `models.graph.graph_of`)."""
    return functional_graph(model, "quantization-aware training")


def consumers_of(model, found=None):
    """{id(layer): [consumer layers, or None for a model output]} over `model` and nested models."""
    import keras

    found = {} if found is None else found
    graph = graph_of(model)
    for depth_nodes in graph._nodes_by_depth.values():
        for node in depth_nodes:
            if node.is_input or node.operation is None:
                continue
            for tensor in node.input_tensors:
                producer = tensor._keras_history.operation
                found.setdefault(id(producer), []).append(node.operation)
            if isinstance(node.operation, keras.Model):
                consumers_of(node.operation, found)
    for tensor in graph.outputs:
        found.setdefault(id(tensor._keras_history.operation), []).append(None)
    return found


def _foldable(layer, users):
    """The BatchNormalization `layer` feeds alone and can be folded into, else None."""
    kind = type(layer).__name__
    if kind not in FOLD_AXES or len(users) != 1 or type(users[0]).__name__ != "BatchNormalization":
        return None
    norm = users[0]
    if _activation_name(getattr(layer, "activation", None)) not in LINEAR_ACTIVATIONS:
        return None
    try:
        rank = len(layer.output.shape)
    except (AttributeError, ValueError):  # a layer called more than once: no single output
        return None
    axis = norm.axis if isinstance(norm.axis, int) else (norm.axis[0] if len(norm.axis) == 1 else None)
    return norm if axis is not None and axis % rank == rank - 1 else None


def fold_batchnorm(layer, norm, input_shape):
    """A new layer computing `layer` followed by the (inference-mode) BatchNormalization `norm`."""
    import numpy as np

    axis, attribute = FOLD_AXES[type(layer).__name__]
    config = {**layer.get_config(), "use_bias": True}
    folded = type(layer).from_config(config)
    folded.build(input_shape)
    variance = np.asarray(norm.moving_variance.numpy(), dtype=np.float64)
    factor = (np.asarray(norm.gamma.numpy()) if norm.scale else 1.0) / np.sqrt(variance + norm.epsilon)
    shift = (np.asarray(norm.beta.numpy()) if norm.center else 0.0) - np.asarray(norm.moving_mean.numpy()) * factor
    kernel = np.asarray(getattr(layer, attribute).numpy(), dtype=np.float64)
    if axis is None:  # depthwise: (..., channels, multiplier) flattened is the output channel
        scaled = kernel * factor.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        shape = [1] * kernel.ndim
        shape[axis] = -1
        scaled = kernel * factor.reshape(shape)
    bias = np.asarray(layer.bias.numpy(), dtype=np.float64) if layer.use_bias else 0.0
    values = {attribute: scaled, "bias": bias * factor + shift}
    for variable in folded.weights:  # e.g. a separable conv's depthwise kernel stays as it was
        name = variable.path.split("/")[-1]
        value = values[name] if name in values else getattr(layer, name).numpy()
        variable.assign(np.asarray(value, dtype=np.float32))
    return folded


def needs_fake_quant(layer, consumers):
    """True when `layer`'s output is a tensor of its own in a quantized artifact."""
    kind = type(layer).__name__
    if kind in KEEPS_INPUT_SCALE:
        return False
    users = consumers.get(id(layer), [])
    if users and None not in users:
        if kind in FOLDS_INTO_BATCHNORM and all(type(u).__name__ == "BatchNormalization" for u in users):
            return False
        if kind in FUSES_RELU and all(_is_relu(u) for u in users):
            return False
    return True


def insert_fake_quant(model, decay):
    """A new functional model computing `model` with `FakeQuant` layers where `needs_fake_quant`
    says. It shares `model`'s layers (and so its weights); layers with an inner activation
    lose it to an Activation layer of their own, so pass a copy."""
    import keras
    from keras import tree

    from edgekeras.qat.fake_quant import FakeQuant  # a Keras layer: its module imports Keras

    consumers = consumers_of(model)
    names = {layer.name for layer in model._flatten_layers()}

    def unique(name):
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{name}_{n}"
        names.add(candidate)
        return candidate

    def fake_quant(tensor, after, activation=None):
        if not keras.backend.is_float_dtype(tensor.dtype):
            return tensor
        return FakeQuant(decay=decay, fixed_range=FIXED_OUTPUT_RANGES.get(activation), name=unique(f"{after}_quant"))(
            tensor
        )

    def activate(tensor, activation, after):
        """`activation` applied to `tensor` as the runtimes compute it, every output simulated."""
        if activation in SIGMOID_TIMES_INPUT:
            gate = keras.layers.Activation("sigmoid", name=unique(f"{after}_sigmoid"))(tensor)
            gate = fake_quant(gate, gate._keras_history.operation.name, "sigmoid")
            product = keras.layers.Multiply(name=unique(f"{after}_swish"))([tensor, gate])
            return fake_quant(product, product._keras_history.operation.name)
        out = keras.layers.Activation(activation, name=unique(f"{after}_{activation}"))(tensor)
        return fake_quant(out, out._keras_history.operation.name, activation)

    folded = set()

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.Model):  # walk into nested models: their layers get their own
            inner = tree.flatten(args[0] if len(args) == 1 else args)
            return graph_of(layer)._run_through_graph(inner, call_fn=call)
        if id(layer) in folded:  # a BatchNormalization already folded into the layer before it
            return args[0]
        norm = _foldable(layer, consumers.get(id(layer), []))
        if norm is not None:
            folded.add(id(norm))
            outputs = fold_batchnorm(layer, norm, args[0].shape)(*args, **kwargs)
            return outputs if not needs_fake_quant(norm, consumers) else fake_quant(outputs, norm.name)
        kind = type(layer).__name__
        if kind == "Activation" and _activation_name(layer.activation) in SIGMOID_TIMES_INPUT:
            return activate(args[0], _activation_name(layer.activation), layer.name)
        inner = _inner_activation(layer)
        if inner is not None:
            layer.activation = keras.activations.get("linear")
            outputs = fake_quant(layer(*args, **kwargs), layer.name)
            return activate(outputs, inner, layer.name)
        outputs = layer(*args, **kwargs)
        if not needs_fake_quant(layer, consumers):
            return outputs
        fixed = (
            _activation_name(layer.activation) if kind == "Activation" else ("softmax" if kind == "Softmax" else None)
        )
        return tree.map_structure(lambda t: fake_quant(t, layer.name, fixed), outputs)

    graph = graph_of(model)
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in graph.inputs]
    quantized = [fake_quant(t, t.name) for t in inputs]
    outputs = graph._run_through_graph(quantized, call_fn=call)
    for before, after in zip(tree.flatten(graph.outputs), tree.flatten(outputs)):
        # The model's outputs keep the user's names (artifacts and validation go by them): the
        # last FakeQuant takes the name, the layer it follows becomes `<name>_float`.
        layer, final = before._keras_history.operation, after._keras_history.operation
        if final is not layer and final.name != layer.name:
            name = layer.name
            layer.name = unique(f"{name}_float")
            final.name = name
    structured = tree.pack_sequence_as(graph._inputs_struct, inputs)
    return keras.Model(structured, outputs, name=f"{model.name}_qat")
