"""What `--precision auto --min-cosine C` keeps in float on keras.applications networks whose plain
int8 misses parity, and what it costs in size. Prints, per network and format: the fp32 size, the
auto artifact's size and its ratio to fp32, the int8 start's cosine, the final cosine, whether the
budget was met, and the layers kept in float; plus the search's wall time and steps.

The networks are built with weights=None (no download) and made realistic the way the
applications coverage table does (`edgekeras.coverage.applications`): inputs are the embedded
digits upscaled and tinted into RGB through the architecture's own preprocess_input, and every
BatchNormalization's statistics come from one training-mode pass over such images. Each network
runs in its own child process under a memory watchdog (killed above --max-gib, 6 by default).

    python benchmarks/auto_precision.py [NAME ...] [--size 160] [--format tflite --format onnx]
        [--min-cosine 0.99] [--samples 32]
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
CALIBRATION = 100
BATCHNORM_IMAGES = 64


def one(name, size, formats, min_cosine, samples, out):
    """Builds `name`, converts fp32 and auto; prints one JSON line per format."""
    import keras

    import edgekeras as ek
    from edgekeras.coverage.applications import CLASSES, INPUT_NAME, digit_images, discover, set_batchnorm_statistics
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    module = discover()[name]["module"]
    images = digit_images(size, module)
    keras.utils.set_random_seed(0)  # the same random weights every run
    inputs = keras.Input((size, size, 3), name=INPUT_NAME)
    constructor = getattr(keras.applications, name)
    model = constructor(weights=None, input_tensor=inputs, classes=CLASSES, classifier_activation=None)
    rng = np.random.default_rng(0)
    set_batchnorm_statistics(model, images(rng, BATCHNORM_IMAGES))
    calibration = images(rng, CALIBRATION)
    validation = images(rng, samples)
    for fmt in formats:
        fp32 = ek.convert(model, formats=[fmt], precisions=["fp32"], validate=False, out=out, force=True)[0]
        started = time.perf_counter()
        try:
            auto = ek.convert_auto(
                model, format=fmt, min_cosine=min_cosine, calibration=calibration, data=validation, out=out, force=True
            )
        except ek.ValidationFailed as e:
            auto = e.artifacts[0]
        seconds = time.perf_counter() - started
        mix = auto.manifest["mixed_precision"]
        layers = mix["layers"]
        print(
            json.dumps(
                {
                    "network": name,
                    "format": fmt,
                    "size": size,
                    "fp32_bytes": fp32.size_bytes,
                    "auto_bytes": auto.size_bytes,
                    "ratio": auto.size_bytes / fp32.size_bytes,
                    "int8_cosine": mix["steps"][0]["cosine"],
                    "auto_cosine": mix["final"]["cosine"],
                    "met": mix["final"]["met"],
                    "float_layers": mix["final"]["float_layers"],
                    "layers": len(layers),
                    "groups": len(mix["groups"]),
                    "steps": len(mix["steps"]),
                    "seconds": seconds,
                }
            ),
            flush=True,
        )


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
    parser.add_argument("--max-gib", type=float, default=6.0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    formats = args.formats or ["tflite", "onnx"]
    if args.one:
        with tempfile.TemporaryDirectory() as out:
            one(args.names[0], args.size, formats, args.min_cosine, args.samples, Path(out))
        return 0
    print(f"min cosine {args.min_cosine}, {args.size}x{args.size}, {args.samples} validation images")
    print(
        f"{'network':<17} {'format':<7} {'fp32':>9} {'auto':>9} {'ratio':>6} {'int8 cos':>9} {'auto cos':>9}  met  "
        f"{'float/layers':>12} {'steps':>5} {'time':>7}  kept in float"
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
        ]
        command += [x for f in formats for x in ("--format", f)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, _rss_gib(child.pid))
            if peak > args.max_gib:
                child.kill()
            time.sleep(0.5)
        lines = [json.loads(x) for x in child.stdout.read().splitlines() if x.startswith("{")]
        for r in lines:
            print(
                f"{r['network']:<17} {r['format']:<7} {r['fp32_bytes'] / 2**20:>7.2f}MB {r['auto_bytes'] / 2**20:>7.2f}MB "
                f"{r['ratio']:>6.3f} {r['int8_cosine']:>9.4f} {r['auto_cosine']:>9.4f}  {'yes' if r['met'] else 'NO ':<4} "
                f"{len(r['float_layers']):>5}/{r['layers']:<6} {r['steps']:>5} {r['seconds']:>6.0f}s  "
                f"{', '.join(r['float_layers'])}"
            )
        if child.returncode != 0:
            why = f"over {args.max_gib} GiB" if peak > args.max_gib else f"exit {child.returncode}"
            print(f"{name:<17} stopped: {why} (peak {peak:.1f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
