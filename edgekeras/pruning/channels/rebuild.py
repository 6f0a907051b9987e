"""A new, smaller plain Keras model: every layer re-made from its config with fewer channels
(`CHANNEL_CONFIG`), its weights copied and sliced along the axes `WEIGHT_AXES` names.

Masks say which positions of a layer's input ("in") and output ("out") channel axis stay;
"middle" is a separable convolution's depthwise output (its input repeated by the multiplier).
Weights of layers not in the table (none of a channelwise layer's are per channel except
BatchNormalization's) are copied whole.
"""

from __future__ import annotations

import numpy as np

from edgekeras.models.graph import graph_of, input_name
from edgekeras.pruning.channels.dependencies import Dependencies

_CONV = {"kernel": {-2: "in", -1: "out"}, "bias": {0: "out"}}
_TRANSPOSE = {"kernel": {-2: "out", -1: "in"}, "bias": {0: "out"}}
_DEPTHWISE = {"kernel": {-2: "in"}, "bias": {0: "out"}}
_SEPARABLE = {"depthwise_kernel": {-2: "in"}, "pointwise_kernel": {-2: "middle", -1: "out"}, "bias": {0: "out"}}
_PER_CHANNEL = {name: {0: "in"} for name in ("gamma", "beta", "moving_mean", "moving_variance")}

# layer type -> {weight name: {axis: mask}}
WEIGHT_AXES = {
    **dict.fromkeys(("Conv1D", "Conv2D", "Conv3D", "Dense"), _CONV),
    **dict.fromkeys(("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"), _TRANSPOSE),
    **dict.fromkeys(("DepthwiseConv1D", "DepthwiseConv2D"), _DEPTHWISE),
    **dict.fromkeys(("SeparableConv1D", "SeparableConv2D"), _SEPARABLE),
    "BatchNormalization": _PER_CHANNEL,
}
# layer type -> the config key holding its output channel count
CHANNEL_CONFIG = {kind: "filters" for kind in WEIGHT_AXES if "Conv" in kind and "Depthwise" not in kind} | {
    "Dense": "units"
}


def _masks(deps: Dependencies, gone, layer):
    def keep(labels):
        if labels is None:
            return None
        return np.array([a < 0 or not gone[a] for a in labels.tolist()], dtype=bool)

    masks = {"in": keep(deps.inputs.get(id(layer))), "out": keep(deps.outputs.get(id(layer)))}
    if masks["in"] is not None and hasattr(layer, "depth_multiplier"):
        masks["middle"] = np.repeat(masks["in"], layer.depth_multiplier)
    return masks


def _config(layer, masks):
    config = layer.get_config()
    kind = type(layer).__name__
    if kind in CHANNEL_CONFIG and masks["out"] is not None:
        config[CHANNEL_CONFIG[kind]] = int(masks["out"].sum())
    if kind == "Reshape" and masks["out"] is not None:
        config["target_shape"] = (*config["target_shape"][:-1], int(masks["out"].sum()))
    return config


def _sliced(layer, masks):
    axes = WEIGHT_AXES.get(type(layer).__name__, {})
    out = []
    for variable in layer.weights:
        value = np.asarray(variable.numpy())
        for axis, which in axes.get(variable.name, {}).items():
            if masks.get(which) is not None and len(masks[which]) == value.shape[axis]:
                value = np.compress(masks[which], value, axis=axis % value.ndim)
        out.append(value)
    return out


def rebuild(graph, deps: Dependencies, gone, name=None):
    """A new functional model computing `graph` without the channels `gone` marks (per atom)."""
    import keras
    from keras import tree

    graph = graph_of(graph)
    made: dict[int, object] = {}

    def call(layer, *args, **kwargs):
        if id(layer) not in made:
            masks = _masks(deps, gone, layer)
            new = type(layer).from_config(_config(layer, masks))
            made[id(layer)] = new
            outputs = new(*args, **kwargs)
            new.set_weights(_sliced(layer, masks))
            return outputs
        return made[id(layer)](*args, **kwargs)

    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=input_name(t)) for t in graph.inputs]
    outputs = graph._run_through_graph(inputs, call_fn=call)
    structured = tree.pack_sequence_as(graph._inputs_struct, inputs)
    return keras.Model(structured, outputs, name=name or graph.name)
