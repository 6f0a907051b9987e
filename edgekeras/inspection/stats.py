"""Error statistics of one artifact tensor against its float partner, and affine quantization.

`ErrorStats` keeps running sums, so batches of activations need not stay in memory;
`Quant` (de)quantizes with one scale/zero point, or one per channel.
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


def make_quant(scale, zero_point, axis, dtype):
    """A `Quant` when `dtype` is an integer type with a positive scale, else None."""
    scale = np.atleast_1d(np.asarray(scale, np.float64)).ravel()
    if not np.issubdtype(np.dtype(dtype), np.integer) or scale.size == 0 or not np.all(scale > 0):
        return None
    zero = np.atleast_1d(np.asarray(zero_point, np.float64)).ravel()
    if zero.size == 0:
        zero = np.zeros_like(scale)
    return Quant(scale, zero, int(axis), np.dtype(dtype).name)


class ErrorStats:
    """Running sums for one tensor pair, so batches need not be kept in memory."""

    def __init__(self, quant=None):
        self.quant = quant
        self.n = 0
        self.sum_d2 = self.sum_q2 = self.sum_g = self.sum_g2 = self.sum_f2 = self.sum_a2 = self.sum_af = 0.0
        self.shift = None
        self.grid_known = quant is not None
        self.max_abs = 0.0
        self.clipped = 0

    def update(self, artifact, reference):
        a = np.asarray(artifact, np.float64).ravel()
        f = np.asarray(reference, np.float64).ravel()
        if a.size != f.size:
            raise ValueError(f"{a.size} elements in the artifact, {f.size} in the float reference")
        d = a - f
        self.n += a.size
        self.sum_d2 += float(d @ d)
        if self.quant is not None:
            shaped = np.asarray(reference, np.float64)
            if self.quant.per_channel and shaped.ndim <= self.quant.axis:
                self.grid_known = False  # flattened per-channel values: the channels are lost
            else:  # the float tensor rounded to the artifact tensor's own grid
                own = (self.quant.dequantize(self.quant.quantize(shaped)) - shaped).ravel()
                self.sum_q2 += float(own @ own)
        self.max_abs = max(self.max_abs, float(np.abs(d).max(initial=0.0)))
        if self.shift is None:
            self.shift = float(f.mean()) if f.size else 0.0
        g = f - self.shift  # shifted sums keep the variance accurate when |mean| >> std
        self.sum_g += float(g.sum())
        self.sum_g2 += float(g @ g)
        self.sum_f2 += float(f @ f)
        self.sum_a2 += float(a @ a)
        self.sum_af += float(a @ f)
        if self.quant is not None and not self.quant.per_channel:
            lo, hi = self.quant.float_range()
            half = float(self.quant.scale.item()) / 2
            self.clipped += int(np.count_nonzero((f < lo - half) | (f > hi + half)))

    def metrics(self):
        n = max(self.n, 1)
        rmse = (self.sum_d2 / n) ** 0.5
        mean_g = self.sum_g / n
        std = max(self.sum_g2 / n - mean_g * mean_g, 0.0) ** 0.5
        rms = (self.sum_f2 / n) ** 0.5
        denom = std if std > 1e-12 else rms
        relative = _relative(rmse, denom)
        quant_error = _relative((self.sum_q2 / n) ** 0.5, denom) if self.grid_known else None
        norms = (self.sum_a2 * self.sum_f2) ** 0.5
        cosine = self.sum_af / norms if norms > 0 else (1.0 if self.sum_d2 == 0 else 0.0)
        clipped = self.clipped / n if self.quant is not None and not self.quant.per_channel else None
        return {
            "rmse": rmse,
            "max_abs_error": self.max_abs,
            "relative_rmse": relative,
            "cosine": float(np.clip(cosine, -1.0, 1.0)),
            "quant_error": quant_error,
            "clipped": clipped,
        }


def _relative(rmse, denom):
    if denom > 1e-12:
        return rmse / denom
    return 0.0 if rmse == 0 else None  # an all-zero float tensor: undefined unless both are zero
