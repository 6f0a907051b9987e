"""Affine quantization of one tensor, as TFLite and ONNX store it: scale, zero point, axis.

`Quant` (de)quantizes with one scale/zero point, or one per channel along `axis`; readers
build it with `make_quant` from what the file says, inspection uses it to put float values
on an artifact tensor's own integer grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quant:
    """Affine quantization of one tensor: one scale/zero point, or one per channel on `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    dtype: str

    @property
    def per_channel(self):
        return self.scale.size > 1

    def _shaped(self, values, ndim):
        if not self.per_channel:
            return values.reshape(())
        shape = [1] * ndim
        shape[self.axis] = -1
        return values.reshape(shape)

    def dequantize(self, q):
        q = np.asarray(q, np.float64)
        return (q - self._shaped(self.zero_point, q.ndim)) * self._shaped(self.scale, q.ndim)

    def quantize(self, x):
        x = np.asarray(x, np.float64)
        info = np.iinfo(self.dtype)
        q = np.round(x / self._shaped(self.scale, x.ndim) + self._shaped(self.zero_point, x.ndim))
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def float_range(self):
        """The float interval a per-tensor quantized value can represent."""
        info = np.iinfo(self.dtype)
        s, z = float(self.scale.item()), float(self.zero_point.item())
        return (info.min - z) * s, (info.max - z) * s

    def to_dict(self):
        """{"scale", "zero_point"} of a per-tensor quantization (None when per channel)."""
        if self.per_channel:
            return None
        return {"scale": float(self.scale.item()), "zero_point": int(self.zero_point.item())}


def make_quant(scale, zero_point, axis, dtype):
    """A `Quant` when `dtype` is an integer type with a positive scale, else None."""
    scale = np.atleast_1d(np.asarray(scale, np.float64)).ravel()
    if not np.issubdtype(np.dtype(dtype), np.integer) or scale.size == 0 or not np.all(scale > 0):
        return None
    zero = np.atleast_1d(np.asarray(zero_point, np.float64)).ravel()
    if zero.size == 0:
        zero = np.zeros_like(scale)
    return Quant(scale, zero, int(axis), np.dtype(dtype).name)
