"""Parameters and FLOPs of a Keras model, per layer, at batch 1.

FLOPs here are multiply-accumulates (MACs), the unit pruning papers and most model zoos quote
("ResNet50: 4.1 GFLOPs" at 224): a convolution's cost is output positions x output channels x
kernel taps x input channels per group. Bias adds, activations and pooling are not counted;
BatchNormalization counts one MAC per element (what is left of it once folded into a scale
and shift). Which layers cost what is the `MACS` table; any other layer costs 0.

Shapes come from the model's own symbolic graph, so every non-batch dimension must be known:
give `input_shape` for a model built with free spatial dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgekeras.errors import InputError
from edgekeras.models.graph import LayerCall, layer_calls, working_graph


@dataclass
class LayerCost:
    """One layer's parameters and multiply-accumulates (summed over its calls)."""

    name: str
    type: str
    params: int
    flops: int


@dataclass
class ModelCost:
    """A model's parameters and multiply-accumulates at batch 1, with the layers that have them."""

    params: int
    flops: int
    per_layer: list[LayerCost] = field(default_factory=list)


def _channel_axis(layer):
    return 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def _spatial(shape, layer):
    """The positions of a (batch, ..., channels) shape: product of the dimensions between."""
    dims = shape[2:] if _channel_axis(layer) == 1 else shape[1:-1]
    return math.prod(dims)


def _conv(layer, ins, outs):
    axis = _channel_axis(layer)
    taps = math.prod(layer.kernel_size)
    return _spatial(outs[0], layer) * outs[0][axis] * taps * ins[0][axis] // getattr(layer, "groups", 1)


def _transpose(layer, ins, outs):
    axis = _channel_axis(layer)
    taps = math.prod(layer.kernel_size)
    return _spatial(ins[0], layer) * ins[0][axis] * taps * outs[0][axis] // getattr(layer, "groups", 1)


def _depthwise(layer, ins, outs):
    return _spatial(outs[0], layer) * outs[0][_channel_axis(layer)] * math.prod(layer.kernel_size)


def _separable(layer, ins, outs):
    axis = _channel_axis(layer)
    middle = ins[0][axis] * layer.depth_multiplier
    positions = _spatial(outs[0], layer)
    return positions * middle * (math.prod(layer.kernel_size) + outs[0][axis])


def _dense(layer, ins, outs):
    return math.prod(ins[0][1:]) * outs[0][-1]


def _elementwise(layer, ins, outs):
    return math.prod(outs[0][1:])


# layer type -> MACs(layer, input shapes, output shapes), batch dimension included in the shapes.
MACS = {
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv3D": _conv,
    "Conv1DTranspose": _transpose,
    "Conv2DTranspose": _transpose,
    "Conv3DTranspose": _transpose,
    "DepthwiseConv1D": _depthwise,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable,
    "SeparableConv2D": _separable,
    "Dense": _dense,
    "BatchNormalization": _elementwise,
}


def layer_macs(call: LayerCall, ins=None, outs=None) -> int:
    """The MACs of one layer call; `ins`/`outs` replace its shapes (a pruning plan's estimate)."""
    fn = MACS.get(type(call.layer).__name__)
    if fn is None:
        return 0
    return int(fn(call.layer, ins or call.input_shapes, outs or call.output_shapes))


def check_static(calls: list[LayerCall]) -> None:
    """InputError unless every shape a costed layer sees is known."""
    for call in calls:
        if type(call.layer).__name__ not in MACS:
            continue
        for shape in (*call.input_shapes, *call.output_shapes):
            if any(d is None for d in shape[1:]):
                raise InputError(
                    f"Expected a model whose layers have known shapes to count FLOPs. Received: layer "
                    f"'{call.layer.name}' sees shape {tuple(shape)}. Pass input_shape (without the batch "
                    "dimension, e.g. (224, 224, 3)) to count at that size."
                )


def count(model, input_shape=None) -> ModelCost:
    """Parameters and multiply-accumulates of `model` at batch 1 (see the module docstring).

    `input_shape`: the input's shape without batch (a list of them for several inputs) for a
    model whose spatial dimensions are free. Nested models are counted layer by layer.
    """
    calls = layer_calls(working_graph(model, input_shape))
    check_static(calls)
    per_layer: dict[int, LayerCost] = {}
    for call in calls:
        layer = call.layer
        cost = per_layer.setdefault(id(layer), LayerCost(layer.name, type(layer).__name__, layer.count_params(), 0))
        cost.flops += layer_macs(call)
    layers = list(per_layer.values())
    return ModelCost(params=int(model.count_params()), flops=sum(c.flops for c in layers), per_layer=layers)
