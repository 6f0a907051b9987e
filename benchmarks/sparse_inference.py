"""Does XNNPACK's sparse path pay? A MobileNet-like model that qualifies for it (a 3x3 stride-2
convolution over 3 channels first, 3x3 depthwise + 1x1 blocks, a spatial mean last, explicit
padding), its 1x1 kernels magnitude-pruned with numpy to 80 % zeros, converted by edgekeras to
fp32 TFLite twice, dense (`sparse_weights: off`) and sparse (`on`), and measured in the same run:
p50 sparse / dense with 1 and 2 threads (interleaved rounds, median of the rounds' p50s), with
the sizes, gzip sizes and `edgekeras.xnnpack_sparse`'s verdict. Two variants that the verdict
says do not qualify (a stride-1 depthwise, which TFLite always pads SAME; SAME padding on the
first convolution) check that the runtime agrees: their sparse / dense ratio should stay ~1.

    python benchmarks/sparse_inference.py [--rounds 5] [--runs 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

SIZE, CLASSES, ZEROS = 96, 10, 0.8
STAGES = [64, 128, 256, 512]  # each: two 1x1 convolutions, then (but for the last) a 3x3 stride-2 depthwise
# name: (first convolution padded explicitly, a 3x3 stride-1 depthwise in each stage)
VARIANTS = {
    "qualifies": (True, False),
    "+ stride-1 depthwise": (True, True),
    "SAME first conv": (False, False),
}


def build(explicit_first=True, stride1_depthwise=False, seed=0):
    """The MobileNet-like model. Padding is explicit (ZeroPadding2D + 'valid') where XNNPACK's
    sparse path needs it; a 3x3 stride-1 depthwise is converted with SAME padding whatever
    Keras says (the converter folds an equivalent PAD into it)."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    if explicit_first:
        x = layers.Conv2D(16, 3, strides=2, activation="relu")(layers.ZeroPadding2D(1)(inputs))
    else:
        x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    for i, filters in enumerate(STAGES):
        if stride1_depthwise:
            x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 1, activation="relu")(x)
        x = layers.Conv2D(filters, 1, activation="relu")(x)
        if i < len(STAGES) - 1:
            x = layers.DepthwiseConv2D(3, strides=2, activation="relu")(layers.ZeroPadding2D(1)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(CLASSES, activation="softmax", name="label")(x))


def prune_1x1(model, zeros=ZEROS):
    """Zeroes the smallest-magnitude `zeros` fraction of every 1x1 Conv2D kernel."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1):
            kernel = layer.kernel.numpy()
            cut = np.quantile(np.abs(kernel), zeros)
            layer.kernel.assign(np.where(np.abs(kernel) <= cut, 0.0, kernel))
    return model


def convert(model, out, name, sparse):
    import edgekeras as ek

    recipe = {"name": f"fp32-sparse-{sparse}", "precision": "fp32", "sparse_weights": sparse}
    (artifact,) = ek.convert(
        model, formats=["tflite"], precisions=["fp32"], recipe=recipe, out=out, name=name, force=True
    )
    return artifact


def p50s(artifacts, threads, rounds, runs):
    """{artifact: median p50 over interleaved rounds} (the order alternates each round), and
    {artifact: bench's XNNPACK sparse-path verdict on this machine}."""
    import edgekeras as ek

    seen, verdicts = {a.path: [] for a in artifacts}, {}
    for r in range(rounds):
        for a in artifacts if r % 2 == 0 else artifacts[::-1]:
            result = ek.benchmark(a, runtime="litert", threads=threads, runs=runs, warmup=10, progress=False)
            seen[a.path].append(result.p50)
            verdicts[a.path] = result.details["xnnpack_sparse"]
    return {path: statistics.median(v) for path, v in seen.items()}, verdicts


def _short(v):
    return v["path"] if v["path"] == "sparse" else f"dense ({v['rule']})"


def _verdict(v):
    return v["path"] if v["path"] == "sparse" else f"dense ({v['rule']}: {v['reason']})"


def main(argv=None):
    from edgekeras.units import format_size

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="sparse-inference-"))
    rows, notes = [], []
    for i, (label, variant) in enumerate(VARIANTS.items()):
        model = prune_1x1(build(*variant))
        stem = f"mobile-{i}"
        dense, sparse = convert(model, out, f"{stem}-dense", "off"), convert(model, out, f"{stem}-sparse", "on")
        timings, here = {}, {}
        for t in (1, 2):
            timings[t], here = p50s([dense, sparse], t, args.rounds, args.runs)
        rows.append(
            [
                label,
                f"{format_size(dense.manifest['size_bytes'])} / {format_size(sparse.manifest['size_bytes'])}",
                f"{format_size(dense.manifest['gzip_size_bytes'])} / {format_size(sparse.manifest['gzip_size_bytes'])}",
                *(
                    f"{timings[t][dense.path]:.3f} / {timings[t][sparse.path]:.3f} = "
                    f"{timings[t][sparse.path] / timings[t][dense.path]:.2f}"
                    for t in (1, 2)
                ),
                _short(sparse.manifest["xnnpack_sparse"]),
                _short(here[sparse.path]),
            ]
        )
        notes.append(f"{label}: the artifact: {_verdict(sparse.manifest['xnnpack_sparse'])}")
        notes.append(f"{label}: on this machine: {_verdict(here[sparse.path])}")
    from edgekeras.reporting import text_table

    print(f"1x1 kernels {ZEROS:.0%} zeros, {SIZE}x{SIZE}x3 input, fp32 TFLite, ai-edge-litert XNNPACK")
    columns = [
        "model",
        "size dense / sparse",
        "gzip dense / sparse",
        "p50 ms 1 thread",
        "p50 ms 2 threads",
        "artifact",
        "here",
    ]
    print(text_table(rows, columns))
    print("\n".join(notes))
    print(f"artifacts in {out}")


if __name__ == "__main__":
    main()
