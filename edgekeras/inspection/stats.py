"""Error statistics of one artifact tensor against its float partner.

`ErrorStats` keeps running sums, so batches of activations need not stay in memory; a
quantized tensor's own grid (`readers.quant.Quant`) gives its `quant_error` and `clipped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from edgekeras.readers.quant import Quant


class Metrics(TypedDict):
    """What `ErrorStats.metrics` returns: one tensor pair's error (see `inspection.layers`)."""

    rmse: float
    max_abs_error: float
    relative_rmse: float | None
    cosine: float
    quant_error: float | None
    clipped: float | None


class ErrorStats:
    """Running sums for one tensor pair, so batches need not be kept in memory."""

    def __init__(self, quant: Quant | None = None) -> None:
        self.quant = quant
        self.n = 0
        self.sum_d2 = self.sum_q2 = self.sum_g = self.sum_g2 = self.sum_f2 = self.sum_a2 = self.sum_af = 0.0
        self.shift: float | None = None
        self.grid_known = quant is not None
        self.max_abs = 0.0
        self.clipped = 0

    def update(self, artifact: np.ndarray, reference: np.ndarray) -> None:
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

    def metrics(self) -> Metrics:
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


def _relative(rmse: float, denom: float) -> float | None:
    if denom > 1e-12:
        return rmse / denom
    return 0.0 if rmse == 0 else None  # an all-zero float tensor: undefined unless both are zero
