"""What `--precision auto --min-cosine C` reverts on keras.applications networks whose plain int8
misses parity, and what it costs in size and speed. Prints, per network, format and revert
(`--revert-to`: float32, int16x8 for TFLite): the fp32 size, the auto artifact's size and its ratio
to fp32, the int8 start's cosine, the final cosine, whether the budget was met, the LiteRT / ONNX
Runtime p50 latency of fp32, plain int8 and the auto mix (2 threads, measured interleaved, the
median of --rounds rounds), the search's wall time and steps, and the layers reverted.

The networks are built with weights=None (no download) and made realistic the way the
applications coverage table does (`edgekeras.coverage.applications`): inputs are the embedded
digits upscaled and tinted into RGB through the architecture's own preprocess_input, and every
BatchNormalization's statistics come from one training-mode pass over such images. Each network
runs in its own child process under a memory watchdog (killed above --max-gib, 6 by default).

    python benchmarks/auto_precision.py [NAME ...] [--size 160] [--format tflite --format onnx]
        [--revert-to float32 --revert-to int16x8] [--min-cosine 0.99] [--samples 32] [--rounds 5]

`digits` as NAME is the digits CNN of the demo (trained for a few epochs, 8x8 inputs): its int8
already meets most budgets, so give it a tight one (--min-cosine 0.9999).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NETWORKS = ("EfficientNetB0", "MobileNetV2", "MobileNetV3Small", "DenseNet121")
REVERTS = {"tflite": ("float32", "int16x8"), "onnx": ("float32",)}
CALIBRATION = 100
BATCHNORM_IMAGES = 64


def _application(name, size):
    """(model, calibration inputs, validation generator) of a keras.applications network."""
    import keras

    from edgekeras.coverage.applications import CLASSES, INPUT_NAME, digit_images, discover, set_batchnorm_statistics

    module = discover()[name]["module"]
    images = digit_images(size, module)
    keras.utils.set_random_seed(0)  # the same random weights every run
    inputs = keras.Input((size, size, 3), name=INPUT_NAME)
    constructor = getattr(keras.applications, name)
    model = constructor(weights=None, input_tensor=inputs, classes=CLASSES, classifier_activation=None)
    rng = np.random.default_rng(0)
    set_batchnorm_statistics(model, images(rng, BATCHNORM_IMAGES))
    return model, images(rng, CALIBRATION), lambda n: images(rng, n)


def _digits_cnn():
    """(model, calibration inputs, validation generator): the demo's digits CNN, trained briefly."""
    import keras
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16.0).astype("float32")[..., None], d.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="pixels"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits",
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1200], y[:1200], epochs=5, verbose=0)
    return model, {"pixels": x[:CALIBRATION]}, lambda n: {"pixels": x[1200 : 1200 + n]}


def _same_layers_int16x8(model, layers, calibration, validation, out):
    """(path, cosine): the int16x8 mix of exactly `layers` (the float32 search's), built as the
    search builds its candidates, and its lowest output cosine to Keras on `validation`."""
    import edgekeras as ek
    from edgekeras.export import mixed_precisions
    from edgekeras.export.context import ExportContext
    from edgekeras.keras_model import KerasModel, sha256_model
    from edgekeras.quantize_recipes import default_recipe

    path = out / "same-layers-int16x8.tflite"
    context = ExportContext(KerasModel(model, sha256_model(model)), calibration=calibration)
    try:
        mixed_precisions()["tflite"].revert("int16x8").build(context, path, default_recipe("auto"), layers)
    finally:
        context.close()
    result = ek.validate(path, reference=model, data=validation, raise_on_failure=False, save=False)
    return path, min(o.cosine for o in result.outputs)


def _p50s(artifacts, rounds):
    """{name: median p50 in ms}: every artifact benchmarked once per round, interleaved."""
    import edgekeras as ek

    seen = {name: [] for name in artifacts}
    for _ in range(rounds):
        for name, artifact in artifacts.items():
            result = ek.benchmark(artifact, threads=2, runs=50, warmup=10, save=False, progress=False)
            seen[name].append(result.latency_ms["p50"])
    return {name: float(np.median(values)) for name, values in seen.items()}


def one(name, size, formats, reverts, min_cosine, samples, rounds, out):
    """Builds `name`, converts fp32, int8 and auto per revert; prints one JSON line per format and revert."""
    import edgekeras as ek
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    model, calibration, more = _digits_cnn() if name == "digits" else _application(name, size)
    validation = more(samples)
    for fmt in formats:
        made = {
            "fp32": ek.convert(model, formats=[fmt], precisions=["fp32"], validate=False, out=out, force=True)[0],
            "int8": ek.convert(
                model, formats=[fmt], precisions=["int8"], calibration=calibration, validate=False, out=out, force=True
            )[0],
        }
        rows = {}
        for revert in [r for r in reverts if r in REVERTS[fmt]]:
            started = time.perf_counter()
            try:
                auto = ek.convert_auto(
                    model,
                    format=fmt,
                    min_cosine=min_cosine,
                    calibration=calibration,
                    data=validation,
                    out=out,
                    force=True,
                    revert_to=revert,
                    name=f"{name}-{revert}",
                )
            except ek.ValidationFailed as e:
                auto = e.artifacts[0]
            made[revert], rows[revert] = auto, time.perf_counter() - started
        same = None
        if "float32" in made and fmt == "tflite":  # the float32 search's layers, in int16x8 instead
            layers = made["float32"].manifest["mixed_precision"]["final"]["reverted_layers"]
            made["same"], cosine = _same_layers_int16x8(model, layers, calibration, validation, out)
            same = {"bytes": made["same"].stat().st_size, "cosine": cosine}
        p50 = _p50s(made, rounds)
        if same:
            same["p50"] = p50["same"]
            same["ratio"] = same["bytes"] / made["fp32"].size_bytes
        for revert, seconds in rows.items():
            auto = made[revert]
            mix = auto.manifest["mixed_precision"]
            record = {
                "network": name,
                "format": fmt,
                "revert_to": revert,
                "size": size,
                "fp32_bytes": made["fp32"].size_bytes,
                "auto_bytes": auto.size_bytes,
                "ratio": auto.size_bytes / made["fp32"].size_bytes,
                "int8_cosine": mix["steps"][0]["cosine"],
                "auto_cosine": mix["final"]["cosine"],
                "met": mix["final"]["met"],
                "reverted_layers": mix["final"]["reverted_layers"],
                "layers": len(mix["layers"]),
                "steps": len(mix["steps"]),
                "seconds": seconds,
                "p50_fp32": p50["fp32"],
                "p50_int8": p50["int8"],
                "p50_auto": p50[revert],
                "same_layers_int16x8": same if revert == "float32" else None,
            }
            print(json.dumps(record), flush=True)


def _rss_gib(pid):
    """Resident memory of `pid` and its children, in GiB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * 4096
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NETWORKS))
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--format", dest="formats", action="append", default=None)
    parser.add_argument("--min-cosine", type=float, default=0.99)
    parser.add_argument("--samples", type=int, default=32, help="validation (and ranking) images")
    parser.add_argument("--revert-to", dest="reverts", action="append", default=None, help="float32, int16x8")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved benchmark rounds (50 runs each)")
    parser.add_argument("--max-gib", type=float, default=6.0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    formats = args.formats or ["tflite", "onnx"]
    reverts = args.reverts or ["float32", "int16x8"]
    if args.one:
        with tempfile.TemporaryDirectory() as out:
            one(args.names[0], args.size, formats, reverts, args.min_cosine, args.samples, args.rounds, Path(out))
        return 0
    print(f"min cosine {args.min_cosine}, applications at {args.size}x{args.size}, {args.samples} validation images")
    print(
        f"{'network':<17} {'format':<7} {'revert':<8} {'fp32':>9} {'auto':>9} {'ratio':>6} {'int8 cos':>9} "
        f"{'auto cos':>9}  met  {'p50 fp32/int8/auto ms':>24} {'reverted':>9} {'steps':>5} {'time':>6}  reverted layers"
    )
    for name in args.names:
        command = [
            sys.executable,
            __file__,
            name,
            "--one",
            "--size",
            str(args.size),
            "--min-cosine",
            str(args.min_cosine),
            "--samples",
            str(args.samples),
            "--rounds",
            str(args.rounds),
        ]
        command += [x for f in formats for x in ("--format", f)]
        command += [x for r in reverts for x in ("--revert-to", r)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, _rss_gib(child.pid))
            if peak > args.max_gib:
                child.kill()
            time.sleep(0.5)
        lines = [json.loads(x) for x in child.stdout.read().splitlines() if x.startswith("{")]
        for r in lines:
            latency = f"{r['p50_fp32']:.4f}/{r['p50_int8']:.4f}/{r['p50_auto']:.4f}"
            print(
                f"{r['network']:<17} {r['format']:<7} {r['revert_to']:<8} {r['fp32_bytes'] / 2**20:>7.3f}MB "
                f"{r['auto_bytes'] / 2**20:>7.3f}MB {r['ratio']:>6.3f} {r['int8_cosine']:>9.6f} {r['auto_cosine']:>9.6f}  "
                f"{'yes' if r['met'] else 'NO ':<4} {latency:>24} {len(r['reverted_layers']):>4}/{r['layers']:<4} "
                f"{r['steps']:>5} {r['seconds']:>5.0f}s  {', '.join(r['reverted_layers'])}"
            )
            same = r.get("same_layers_int16x8")
            if same:
                print(
                    f"{'':<17} {'':<7} {'  same layers in int16x8:':<37} {same['ratio']:>6.3f} {'':>9} "
                    f"{same['cosine']:>9.6f}  {'':<4} {'p50 ' + format(same['p50'], '.4f'):>24}"
                )
        if child.returncode != 0:
            why = f"over {args.max_gib} GiB" if peak > args.max_gib else f"exit {child.returncode}"
            print(f"{name:<17} stopped: {why} (peak {peak:.1f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
