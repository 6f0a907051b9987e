"""One int8 scale per Dense kernel instead of one per output channel, where pruning made it free.

TFLite's converter gives every FULLY_CONNECTED weight per-channel scales by default: each
output channel's largest weight maps to ±127, which keeps a channel of small weights from
rounding to zero. A magnitude-pruned kernel has no small weights left: every survivor is at
least the pruning threshold, so one scale for the whole kernel quantizes each of them almost as
finely. Measured on the digits CNN pruned to 80 % (`benchmarks/pruning.py`): the largest
relative rounding error of a surviving Dense weight is 2.1 % with one scale per kernel and 1.7 %
per channel (unpruned: 100 % either way, some small weights round to zero), the int8 artifact's
test accuracy is the same, and gzip of the artifact is 7 % smaller (per-kernel values use fewer
of the 255 levels, and 2 x 74 float scales are gone): gzip(int8) / fp32 0.093 instead of 0.101.

`auto` (the quantize recipes' default, `dense_per_channel`) therefore gives Dense kernels one
scale when every Dense kernel of the model is at least `THRESHOLD` zeros, and per-channel
scales otherwise; `on`/`off` force either. Convolutions keep per-channel scales (the converter
switches Dense layers only), and so does a quantization-aware model under `auto` (its kernels
are snapped to per-channel grids). The manifest's `dense_scales` says what was decided and why.
"""

from __future__ import annotations

from typing import Any

THRESHOLD = 0.7  # every Dense kernel at least this sparse: survivors are the kernel's large weights


def dense_sparsity(model: Any) -> float | None:
    """The smallest zero fraction over the kernels of `model`'s Dense and EinsumDense layers
    (the ones that can become FULLY_CONNECTED; nested models included), or None without any."""
    import keras
    import numpy as np

    fractions = [
        float(np.mean(np.asarray(layer.kernel) == 0))
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
        and getattr(layer, "kernel", None) is not None
    ]
    return min(fractions) if fractions else None


def decide(setting: str, per_channel: bool, sparsity: float | None, quantization_aware: bool = False) -> dict[str, Any]:
    """The manifest's `dense_scales` record: {setting, per_channel, dense_sparsity, threshold,
    reason}; `per_channel` says whether Dense kernels get per-channel scales. A recipe without
    per-channel scales (`per_channel: false`) has one scale per kernel everywhere already; a
    quantization-aware model keeps per-channel scales under `auto`, the grid `qat/weights.py`
    snapped its kernels to (its artifact then computes exactly what it did)."""
    if not per_channel:
        chosen, reason = False, "the recipe has per-tensor scales (per_channel: false)"
    elif setting != "auto":
        chosen, reason = setting == "on", f"the recipe's dense_per_channel: {setting}"
    elif quantization_aware:
        chosen, reason = True, "a quantization-aware model: its kernels are snapped to per-channel grids"
    elif sparsity is None:
        chosen, reason = True, "no Dense kernel"
    else:
        chosen = sparsity < THRESHOLD
        relation = "below" if chosen else "at least"
        reason = f"the least sparse Dense kernel is {sparsity:.0%} zeros, {relation} {THRESHOLD:.0%}"
    return {
        "setting": setting,
        "per_channel": chosen,
        "dense_sparsity": None if sparsity is None else round(sparsity, 4),
        "threshold": THRESHOLD if setting == "auto" else None,
        "reason": reason,
    }
