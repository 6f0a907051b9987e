"""Kernels snapped to the int8 grid the converters put them on, so a quantization-aware model
computes with the weights its int8 artifact holds.

Both converters store a convolution or Dense kernel as int8 with one scale per output channel,
symmetric over [-127, 127]: scale = max |w| / 127 per channel. Snapping each channel to that
grid makes the conversion exact, also after BatchNormalization is folded in: folding multiplies
a channel by one factor, which scales its grid with it.

Which kernels, and which axes hold the output channel, is the table below: a layer missing from
it keeps float weights and its artifact quantizes them as usual.
"""

from __future__ import annotations

import numpy as np

LEVELS = 127  # symmetric narrow range [-127, 127]

# layer class: ((kernel attribute, axes that index one output channel), ...)
CHANNEL_AXES = {
    "Dense": (("kernel", (-1,)),),
    "Conv1D": (("kernel", (-1,)),),
    "Conv2D": (("kernel", (-1,)),),
    "Conv3D": (("kernel", (-1,)),),
    "Conv1DTranspose": (("kernel", (-2,)),),
    "Conv2DTranspose": (("kernel", (-2,)),),
    "Conv3DTranspose": (("kernel", (-2,)),),
    "DepthwiseConv1D": (("kernel", (-2, -1)),),
    "DepthwiseConv2D": (("kernel", (-2, -1)),),
    "SeparableConv1D": (("depthwise_kernel", (-2, -1)), ("pointwise_kernel", (-1,))),
    "SeparableConv2D": (("depthwise_kernel", (-2, -1)), ("pointwise_kernel", (-1,))),
}


def snap(kernel, channel_axes):
    """`kernel` rounded to a symmetric 8-bit grid with one scale per output channel."""
    kernel = np.asarray(kernel, dtype=np.float32)
    axes = tuple(a % kernel.ndim for a in channel_axes)
    reduce = tuple(a for a in range(kernel.ndim) if a not in axes)
    scale = np.max(np.abs(kernel), axis=reduce, keepdims=True) / LEVELS
    safe = np.where(scale > 0, scale, 1.0)
    return (np.round(kernel / safe) * safe).astype(np.float32)


def snap_weights(model):
    """Snaps every kernel `CHANNEL_AXES` names in `model` (nested models too); returns the count."""
    count = 0
    for layer in model._flatten_layers(include_self=False):
        for attribute, axes in CHANNEL_AXES.get(type(layer).__name__, ()):
            variable = getattr(layer, attribute, None)
            if variable is None:
                continue
            variable.assign(snap(variable.numpy(), axes))
            count += 1
    return count
