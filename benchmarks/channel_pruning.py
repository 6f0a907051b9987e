"""Does channel pruning make real networks faster at the same accuracy? Every figure from one run.

For each keras.applications network (weights=None): train it briefly on scikit-learn's digits
upscaled to SIZE x SIZE RGB with a random tint per image and channel (`edgekeras.coverage.
applications` draws the same task), remove 50 % of its FLOPs with `prune_channels`, fine-tune
the pruned model, then convert both with `ek.convert` to TFLite and ONNX at fp32 and int8 and
measure each artifact's p50 latency in its runtime (LiteRT, ONNX Runtime; batch 1, at every
--threads count side by side -- 1 thread is the edge-board setting that a shared machine does
not disturb with spinning thread pools --, a fresh runner process each, pruned and unpruned
interleaved, the median of per-round ratios).

Targets (issue 12): p50 pruned / unpruned <= 0.6 in each runtime at fp32 and int8; test
accuracy drop <= 1 point (Keras models; the int8 artifacts' accuracy is printed beside).

    python benchmarks/channel_pruning.py [--models MobileNetV2,ResNet50] [--size 64 | --size
        MobileNetV2=128,ResNet50=64] [--epochs 6] [--finetune-epochs 4] [--finetune-lr 5e-4]
        [--rounds 5] [--runs 50] [--threads 1,2] [--channel-multiple 1] [--keep-residual MODEL,...]
        [--exclude MODEL=REGEX ...]

`--epochs 0 --finetune-epochs 0` measures latency only (random weights, BN statistics set).
Fine-tuning starts at --finetune-lr and decays it to 0 (cosine). BatchNormalization statistics
are set from 256 images in chunks of 32 (one pass of 256 at 128x128 peaked near 9 GB).

Measured 2026-12-05 on a quiet machine (load under 1 before each run; the same 2-core VM,
Sapphire Rapids: AVX-512 VNNI), 50 % of FLOPs removed, importance l1, channel multiple 16, p50
pruned / unpruned in ONNX Runtime fp32, ONNX Runtime int8, LiteRT fp32, LiteRT int8:

    python benchmarks/channel_pruning.py --models MobileNetV2 --size 128 --epochs 3 \
        --finetune-epochs 5 --channel-multiple 16 --rounds 9 --threads 1,2 --keep-residual MobileNetV2
    python benchmarks/channel_pruning.py --models MobileNetV2,ResNet50 --size MobileNetV2=128,ResNet50=96 \
        --epochs 3 --finetune-epochs 5 --channel-multiple 16 --rounds 7 --threads 1,2 \
        --exclude 'MobileNetV2=.*_project(_BN)?'      # ResNet50's figures; MobileNetV2's second row

- MobileNetV2 @128, keep_residual=True (6 min): accuracy 95.2 -> 95.2 % (19.4 % right after
  pruning; drop 0.0: PASS); params 45.1 % left; 1 thread 0.517, 0.591, 0.534, 0.553 (all PASS);
  2 threads 0.639, 0.671, 0.786, 0.560.
- MobileNetV2 @128, every block's output (`.*_project`) excluded: 95.2 -> 96.2 %; 1 thread 0.518,
  0.586, 0.525, 0.546 (all PASS); 2 threads 0.568, 0.618, 0.533, 0.559.
- ResNet50 @96, importance alone (13 min): accuracy 94.2 -> 98.2 % (61.7 % right after pruning;
  drop -4.0: PASS); params 52.2 % left; 1 thread 0.501, 0.497, 0.542, 0.501; 2 threads 0.509,
  0.479, 0.504, 0.530 (all PASS).
- Latency only (`--epochs 0 --finetune-epochs 0`, random weights), MobileNetV2 pruned by
  importance alone, without keep_residual: @128 1 thread 0.532, 0.643, 0.539, 0.602; @224 0.521,
  0.633, 0.542, 0.607 -- int8 misses by a little in both runtimes at both sizes.
- 2 threads on this 2-core VM share the cores with the benchmark's own process: the pruned
  MobileNetV2 (0.3-0.6 ms) ran *slower* at 2 threads than at 1 in some rounds (ONNX Runtime fp32
  0.605 against 0.532 ms), so its 2-thread ratios move by 0.1-0.2 between runs; ResNet50 (2-8 ms)
  is stable at both counts. 1 thread is the figure to read.

Why keep_residual for MobileNetV2 int8 (`benchmarks/op_profile.py`, LiteRT/XNNPACK int8 at 128,
1 thread, quiet): depthwise layers take 164 of 491 us at about 0.04 MMAC/us, convolutions 313 us
at 0.17-0.38; ONNX Runtime's QLinearConv runs depthwise at 0.013 and 1 x 1 at about 0.07. A
block's expansion channels also run its depthwise convolution; the stream channels between blocks
only feed 1 x 1 convolutions. Ranked by importance alone, half the FLOPs come out of both, and the
int8 latency falls to 0.60-0.64; keeping the streams whole moves the same FLOPs into the blocks
(expansions) and the head (Conv1 and the first depthwise convolution, 66 us unpruned), and int8
falls to 0.55-0.59. Tried and not kept: ranking units by importance per weighted MAC saved (a
per-layer-type cost model, depthwise x 6): the streams, whose units each feed several blocks,
looked cheapest to cut per MAC and were cut to 16 channels -- the opposite of what the profile
asks.

The figures below were taken at load 5-7, where the unpruned fp32 models ran up to 3x slower
than quiet and the pruned ones did not: they flatter fp32 and ONNX Runtime, and the XNNPACK int8
"cost per output pixel" read from them (the stem at 161 us with 32 and with 16 channels) is not
what the quiet profile shows (stem 28 us, the 1 x 1 convolutions shrinking with their MACs).

Measured 2026-12-05 at load 5-7, one run of
    python benchmarks/channel_pruning.py --models MobileNetV2,ResNet50 \
        --size MobileNetV2=128,ResNet50=64 --epochs 3 --finetune-epochs 5 --channel-multiple 16 \
        --rounds 9 --threads 1,2
- MobileNetV2 @128: accuracy 95.7 -> 96.5 %; 1 thread 0.24, 0.27, 0.17, 0.70; 2 threads 0.11,
  0.36, 0.44, 0.56.
- ResNet50 @64: accuracy 95.2 -> 98.5 %; 1 thread 0.50, 0.38, 0.51, 0.66; 2 threads 0.59, 0.52,
  0.54, 0.66.

Measured 2026-12-04, 2 threads only, the same options (48 min):
- MobileNetV2 @128: accuracy 95.7 -> 96.7 % (drop -1.0: PASS); ratios 0.13, 0.68, 0.35, 0.65.
- ResNet50 @64: accuracy 95.2 -> 98.5 % (drop -3.3: PASS); params 52.6 % left; ratios 0.53,
  0.58, 0.54, 0.51.
- MobileNetV2 @64, 4+4 epochs at a constant rate dropped 3.0 points; @96, 3+5 epochs with the
  cosine rate it gained 3.8 (89.9 -> 93.7 %), ratios 0.36, 0.14, 0.38, 0.62.
- Multiple 16 (AVX-512 holds 16 floats, ONNX Runtime's NCHWc block here) vs 8, ResNet50 @64
  latency only, 3 rounds: ORT fp32 0.50 vs 0.73, ORT int8 0.62 vs 0.70, LiteRT fp32 0.66 vs
  0.51, LiteRT int8 0.19 vs 0.37 -- at load 6 a p50 moves by 30 % between runs, so only the ORT
  fp32 gain stands out.

Earlier figures (--channel-multiple 8, constant fine-tuning rate):
- MobileNetV2 @64, 4+4 epochs: accuracy 90.7 -> 87.7 % (drop 3.0: MISS, 4 fine-tuning epochs
  are too few); p50 ratio ORT fp32 0.49, ORT int8 0.54, LiteRT fp32 0.38, LiteRT int8 0.67.
  (3+2 epochs: 90.9 -> 80.6 %; ratios 0.59, 0.52, 0.49, 0.66.)
- ResNet50 @32, 3+2 epochs: accuracy 92.4 -> 91.9 % (drop 0.5: PASS); ratios 0.81, 0.71, 0.51,
  0.82 -- at 32x32 the last stage runs at 1x1 and streams weights, so latency follows params
  (56.8 % left), not FLOPs. At 96 (latency only): 0.48, 0.55, 0.40, 0.68; with
  --channel-multiple 16: 0.46, 0.50, 0.52, 0.58 (all four within 0.6).
- Without --channel-multiple (counts like 53, 109) ONNX Runtime fp32 ran *slower* pruned than
  unpruned (MobileNetV2 @64, random weights: median ratio 3.6 over 3 rounds, 1.07 at best;
  @32: 2.07); rounded to multiples of 8: 0.37, of 16: 0.31.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODULES = {"MobileNetV2": "mobilenet_v2", "ResNet50": "resnet50", "MobileNet": "mobilenet"}
TRAIN, CALIBRATION, BATCH, BN_BATCH, BN_CHUNK = 1400, 200, 32, 256, 32


def digits_task(size, module, seed=0):
    """(x_train, y_train, x_test, y_test): the 1797 digits at size x size RGB, tinted, shuffled,
    through the network's own preprocess_input."""
    import keras
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    gray = np.clip(zoom(digits.images[order] / 16.0, (1, size / 8, size / 8), order=1), 0.0, 1.0)
    tint = rng.uniform(0.5, 1.0, size=(len(order), 1, 1, 3))
    x = getattr(keras.applications, module).preprocess_input((gray[..., None] * tint * 255.0).astype(np.float32))
    y = digits.target[order]
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def compile_for(model, learning_rate):
    import keras

    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def fit(model, data, epochs, learning_rate, decay=False):
    """Trains `model` for `epochs` at `learning_rate` (cosine-decayed to 0 when `decay`: fine-tuning
    ends at a small rate instead of on one noisy step of a constant one)."""
    import keras

    from edgekeras.coverage.applications import set_batchnorm_statistics

    x, y, *_ = data
    if decay and epochs:
        steps = epochs * -(-len(x) // BATCH)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    compile_for(model, learning_rate)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True)
    # A few epochs leave BatchNormalization's moving statistics (momentum 0.99) far from the
    # data: set them exactly from a training batch, as tests/coverage/test_applications.py does.
    set_batchnorm_statistics(model, {"image": x[:BN_BATCH]}, batch_size=BN_CHUNK)
    return time.perf_counter() - start


def accuracy(model, data):
    *_, x, y = data
    return float(np.mean(np.argmax(model.predict(x, batch_size=128, verbose=0), axis=-1) == y))


def trained(name, size, epochs, data):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    model = getattr(keras.applications, name)(weights=None, input_tensor=inputs, classes=10, classifier_activation=None)
    seconds = fit(model, data, epochs, 1e-3)
    return model, seconds


def convert(model, data, out, stem):
    """{(format, precision): (path, test accuracy)} through ek.convert (int8 validation failures
    are reported, not fatal: the latency is what is measured here)."""
    import edgekeras as ek
    from edgekeras.conversion import ValidationFailed

    x_train, _, x_test, y_test = data
    try:
        arts = ek.convert(
            model,
            formats=["tflite", "onnx"],
            precisions=["fp32", "int8"],
            calibration={"image": x_train[:CALIBRATION]},
            data={"image": x_test, "y": y_test},
            out=out,
            name=stem,
        )
    except ValidationFailed as e:
        arts = e.artifacts
    found = {}
    for art in arts:
        found[art.format, art.precision] = (art.path, (art.manifest.get("validation") or {}).get("accuracy"))
    return found


def latencies(paths, rounds, runs, threads):
    """{(label, threads): [p50 ms per round]}: every artifact at every thread count once per
    round, the order rotated each round."""
    import edgekeras as ek

    labels = [(label, t) for label in paths for t in threads]
    samples = {key: [] for key in labels}
    for r in range(rounds):
        for label, t in labels[r % len(labels) :] + labels[: r % len(labels)]:
            result = ek.benchmark(paths[label], threads=t, runs=runs, warmup=10, save=False, progress=False)
            samples[label, t].append(result.latency_ms["p50"])
        print(f"  latency round {r + 1}/{rounds}", file=sys.stderr)
    return samples


def one_model(name, args, root):
    import keras

    from edgekeras.coverage.applications import set_batchnorm_statistics
    from edgekeras.pruning.channels import prune_channels

    size = args.size[name]
    data = digits_task(size, MODULES[name])
    model, train_s = trained(name, size, args.epochs, data)
    acc_before = accuracy(model, data)
    print(f"{name}: trained {args.epochs} epochs in {train_s:.0f} s, test accuracy {acc_before:.4f}", file=sys.stderr)
    result = prune_channels(
        model,
        flops=args.flops,
        importance=args.importance,
        channel_multiple=args.channel_multiple,
        exclude=args.exclude.get(name, ()),
        keep_residual=name in args.keep_residual,
    )
    pruned = result.model
    # Removed channels shifted what later layers see: re-measure BN statistics before anything.
    set_batchnorm_statistics(pruned, {"image": data[0][:BN_BATCH]}, batch_size=BN_CHUNK)
    acc_pruned = accuracy(pruned, data)
    tune_s = fit(pruned, data, args.finetune_epochs, args.finetune_lr, decay=True)
    acc_after = accuracy(pruned, data)
    print(f"{name}: pruned ({acc_pruned:.4f} before fine-tuning), fine-tuned in {tune_s:.0f} s", file=sys.stderr)
    artifacts = {
        "unpruned": convert(model, data, root / name / "unpruned", name.lower()),
        "pruned": convert(pruned, data, root / name / "pruned", f"{name.lower()}-pruned"),
    }
    paths = {(who, *key): path for who, found in artifacts.items() for key, (path, _) in found.items()}
    samples = latencies(paths, args.rounds, args.runs, args.threads)
    rows = []
    for t in args.threads:
        for fmt, precision in sorted(artifacts["pruned"]):
            if (fmt, precision) not in artifacts["unpruned"]:
                continue
            a, b = samples[("pruned", fmt, precision), t], samples[("unpruned", fmt, precision), t]
            ratio = statistics.median(x / y for x, y in zip(a, b))
            accs = artifacts["unpruned"][fmt, precision][1], artifacts["pruned"][fmt, precision][1]
            rows.append((fmt, precision, t, statistics.median(b), statistics.median(a), ratio, *accs))
    keras.backend.clear_session()
    gc.collect()
    return dict(result=result, acc=(acc_before, acc_pruned, acc_after), rows=rows, seconds=(train_s, tune_s))


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def report(name, figures):
    result, (before, pruned, after), rows = figures["result"], figures["acc"], figures["rows"]
    print(f"\n## {name}")
    print(
        f"params {result.params_before:,} -> {result.params_after:,} ({result.params_after / result.params_before:.1%}); "
        f"FLOPs (MACs) {result.flops_before:,} -> {result.flops_after:,} ({result.flops_after / result.flops_before:.1%})"
    )
    drop = 100 * (before - after)
    print(
        f"Keras test accuracy: unpruned {_pct(before)} %, pruned {_pct(pruned)} % before fine-tuning, "
        f"{_pct(after)} % after (drop {drop:+.1f} points; target <= 1) {'PASS' if drop <= 1 else 'MISS'}"
    )
    print(
        "| runtime | precision | threads | unpruned p50 ms | pruned p50 ms | ratio (target <= 0.6) | acc unpruned "
        "| acc pruned |"
    )
    print("|---|---|---|---|---|---|---|---|")
    runtime = {"tflite": "LiteRT", "onnx": "ONNX Runtime"}
    for fmt, precision, threads, base, mine, ratio, acc_a, acc_b in rows:
        verdict = "PASS" if ratio <= 0.6 else "MISS"
        print(
            f"| {runtime[fmt]} | {precision} | {threads} | {base:.3f} | {mine:.3f} | {ratio:.3f} {verdict} | {_pct(acc_a)} | {_pct(acc_b)} |"
        )


def sizes(text, models):
    """{model: input size} from "96" (every model) or "MobileNetV2=128,ResNet50=64"."""
    if "=" not in text:
        return dict.fromkeys(models, int(text))
    found = {name.strip(): int(value) for name, value in (item.split("=") for item in text.split(","))}
    missing = [name for name in models if name not in found]
    if missing:
        raise SystemExit(f"--size names no size for {', '.join(missing)}")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="MobileNetV2,ResNet50")
    parser.add_argument(
        "--size", default="64", help="input size: one for every model, or per model (MobileNetV2=128,ResNet50=64)"
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--flops", type=float, default=0.5, help="fraction of FLOPs to remove")
    parser.add_argument("--importance", default="l1")
    parser.add_argument(
        "--channel-multiple",
        type=int,
        default=1,
        help="kept channels rounded up to a multiple",
    )
    parser.add_argument(
        "--keep-residual", default="", help="MODEL,MODEL: prune those with keep_residual=True (streams kept whole)"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="MODEL=REGEX: layers of MODEL whose output channels are kept (prune_channels' exclude); repeatable",
    )
    parser.add_argument("--threads", default="1,2", help="runtime thread counts, each measured side by side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    args.size = sizes(args.size, [name.strip() for name in args.models.split(",")])
    args.threads = [int(t) for t in args.threads.split(",")]
    args.keep_residual = {name.strip() for name in args.keep_residual.split(",") if name.strip()}
    excluded: dict = {}
    for item in args.exclude:
        model_name, _, pattern = item.partition("=")
        excluded.setdefault(model_name.strip(), []).append(pattern)
    args.exclude = excluded
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    print(
        f"size {', '.join(f'{k} {v}' for k, v in args.size.items())}, {args.epochs}+{args.finetune_epochs} epochs, threads {args.threads}, {args.rounds} rounds, "
        f"importance {args.importance}, channel_multiple {args.channel_multiple}"
        + "".join(f", {name} excludes {patterns}" for name, patterns in args.exclude.items())
        + "".join(f", {name} keeps its residual streams" for name in sorted(args.keep_residual))
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            report(name, one_model(name.strip(), args, Path(tmp)))


if __name__ == "__main__":
    main()
