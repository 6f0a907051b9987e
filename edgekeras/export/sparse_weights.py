"""Whether a TFLite artifact stores its weights sparse (the converter's sparsity optimization).

`tf.lite.Optimize.EXPERIMENTAL_SPARSITY` stores each weight that is sparse enough as its
non-zero values plus indices, expanded at load time by a DENSIFY op. An index costs about two
bytes per stored value, so it shrinks the file only where zeros outnumber what the indices
cost: measured on the digits CNN (magnitude-pruned with numpy), fp32 at 50 % zeros 0.75x the
dense file and 0.30x at 80 %; int8 at 50 % 1.49x (larger) and 0.61x at 80 %. gzip shrinks
the dense file further than the sparse one at every level (zeros compress better than
indices), so this pays for the uncompressed file: what a device maps into memory (Android
keeps .tflite files uncompressed in the APK) and what XNNPACK's sparse path needs.

`auto` turns it on when the model's kernels hold at least `THRESHOLDS[precision]` zeros.
The exporter then runs the artifact once: ai-edge-litert 2.3.0's XNNPACK cannot prepare an
int8 FULLY_CONNECTED with sparse weights, and such an artifact is written dense instead
(`export/tflite.py: _sparse_runs`).
"""

from __future__ import annotations

# Break-even with a ~2-byte index per stored value: fp32 stores 4 bytes a value (pays above
# ~1/3 zeros), fp16 2 (above 1/2), the int8 weights of dynamic/int8/int16x8 1 (above 2/3).
# Each threshold sits a margin above its break-even (measured figures in the docstring).
THRESHOLDS = {"fp32": 0.4, "fp16": 0.6, "dynamic": 0.7, "int8": 0.7, "int16x8": 0.7}


def kernel_sparsity(model):
    """Zeros over every element of the model's kernels (weights named '*kernel' with 2 or
    more dimensions: Dense, Conv*, DepthwiseConv2D, SeparableConv2D, recurrent kernels)."""
    import numpy as np

    zeros = total = 0
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name.endswith("kernel") and len(weight.shape) >= 2:
            values = np.asarray(weight.numpy())
            zeros += int(np.count_nonzero(values == 0))
            total += values.size
    return zeros / total if total else 0.0


def decide(setting, precision, sparsity):
    """The manifest's `sparse_weights` record before conversion: {setting, requested,
    kernel_sparsity, threshold}; `requested` says whether the optimization is asked for."""
    threshold = THRESHOLDS.get(precision)
    requested = {"on": True, "off": False}.get(setting)
    if requested is None:
        requested = threshold is not None and sparsity >= threshold
    return {
        "setting": setting,
        "requested": requested,
        "kernel_sparsity": round(sparsity, 4),
        "threshold": threshold,
    }
