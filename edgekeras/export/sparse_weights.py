"""Whether a TFLite artifact stores its weights sparse (the converter's sparsity optimization).

`tf.lite.Optimize.EXPERIMENTAL_SPARSITY` stores each weight that is sparse enough (the
converter leaves weights with 30 % zeros dense) as its non-zero values plus indices, expanded
at load time by a DENSIFY op. Sparse file size / dense file size, measured on a 4 MB CNN
(28x28x1, two convolutions and two Dense layers, every kernel magnitude-pruned with numpy):

    zeros     40 %   50 %   60 %   70 %   80 %
    fp32      0.90   0.75   0.60   0.45   0.30
    fp16      1.20   1.00   0.80   0.60   0.40
    dynamic    -     1.49   1.20   0.90   0.60
    int8       -     1.49   1.20   0.90   0.61

gzip shrinks the dense file further than the sparse one at every level (gzip of sparse /
gzip of dense 1.08-1.56: zeros compress better than indices), so this pays for the
uncompressed file: what a device maps into memory (Android keeps .tflite files uncompressed
in the APK) and what XNNPACK's sparse path needs.

`auto` turns it on when the model's kernels hold at least `THRESHOLDS[precision]` zeros.
The exporter then runs the artifact once: ai-edge-litert 2.3.0's XNNPACK cannot prepare an
int8 FULLY_CONNECTED with sparse weights, and such an artifact is written dense instead
(`export/tflite.py: _sparse_runs`).
"""

from __future__ import annotations

# The lowest measured level (table above) where the file shrinks, per precision; int16x8 stores
# int8 weights like int8.
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
