"""`ek.deploy` on keras.applications MobileNetV2 and MobileNetV3Small at 224, every figure from one run.

Each network is built with weights=None (10 logits), its BatchNormalization statistics set from
a batch of the digits upscaled to 224x224 RGB through its own `preprocess_input` (as
`edgekeras.coverage.applications` does), and labelled with the float model's own top-1 class
(its accuracy is 1.0, so the budget measures what quantization loses). Then, per network:

 1. the chosen artifact's p50 on each CPU target (x86-64-litert, x86-64-onnxruntime: 2 threads)
    against the full fp32 and the full int8 (default recipe) candidates of the same run, all
    measured side by side in that run; "chosen / better" is the chosen p50 over the better of
    the two among those within the budget (<= 1.0: never slower);
 2. deploy's wall time cold (every candidate converted and measured) and from its cache (the
    same call again: nothing converted or measured).

The network is built and saved as .keras in one process (its training-mode BatchNormalization
pass at 224 takes GiBs); each deploy call then runs in its own process on that file (so the
cached call sees the same source sha256). Every process runs under a watchdog that stops it
above 6 GiB RSS; the peaks are printed.

    python benchmarks/deploy.py [--budget 1.0] [--runs 50] [--networks MobileNetV2,MobileNetV3Small]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
SIZE, CLASSES, LIMIT_GIB = 224, 10, 6.0
# ONNX Runtime's percentile calibrator holds every activation of every sample: 100 samples of
# MobileNetV2 at 224 took one deploy process past 7 GiB; 32 keep it under the limit.
CALIBRATION = 32
MODULES = {"MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3"}
TARGETS = ["x86-64-litert", "x86-64-onnxruntime"]


def _rss_gib(field="VmRSS"):
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field))
    return int(line.split()[1]) / 1024**2


def watchdog():
    """Ends the process (exit 3) when it holds more than LIMIT_GIB."""

    def watch():
        while True:
            if _rss_gib() > LIMIT_GIB:
                print(f"stopped: RSS above {LIMIT_GIB} GiB", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def network(name, rng):
    """(model, calibration images, validation images, labels)."""
    import keras

    from edgekeras.coverage.applications import digit_images, set_batchnorm_statistics

    images = digit_images(SIZE, MODULES[name])
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(
        weights=None,
        input_tensor=keras.Input((SIZE, SIZE, 3), name="image"),
        classes=CLASSES,
        classifier_activation=None,
    )
    set_batchnorm_statistics(model, images(rng, 32))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    calibration = images(rng, CALIBRATION)["image"]
    validation = images(rng, 128)["image"]
    labels = model.predict(validation, batch_size=32, verbose=0).argmax(-1)
    return model, calibration, validation, labels


def _row(site, precision, recipe):
    return next(
        (r for r in site["rows"] if r["precision"] == precision and r["recipe"] == recipe and r["model"] == "model"),
        None,
    )


def prepare(args):
    """Builds the network and its data (the BatchNormalization pass at 224 alone takes GiBs, so
    it gets a process of its own) and saves them for the deploy processes."""
    folder = Path(args.folder)
    model, calibration, validation, labels = network(args.child, np.random.default_rng(0))
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", calibration=calibration, validation=validation, labels=labels)
    print(json.dumps({"peak_rss_gib": _rss_gib("VmHWM")}))


def deploy_once(args):
    """One deploy call in this process, on the saved network; prints a JSON line."""
    import edgekeras as ek

    folder = Path(args.folder)
    with np.load(folder / "data.npz") as data:
        calibration, validation, labels = data["calibration"], data["validation"], data["labels"]
    start = time.perf_counter()
    try:
        dep = ek.deploy(
            folder / "model.keras",
            targets=TARGETS,
            accuracy_budget=args.budget,
            data=(validation, labels),
            calibration=calibration,
            out=folder / "deploy",
            runs=args.runs,
        )
    except ek.BudgetNotMet as e:
        dep = e.deployment
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "peak_rss_gib": _rss_gib("VmHWM"), "document": dep.to_dict()}))


def _spawn(step, name, folder, args):
    command = [sys.executable, __file__, "--step", step, "--child", name, "--folder", str(folder)]
    command += ["--budget", str(args.budget), "--runs", str(args.runs)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{name} ({step}): the process exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy budget in points (default 1.0)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--networks", default=",".join(MODULES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--step", choices=("prepare", "deploy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        watchdog()
        return (prepare if args.step == "prepare" else deploy_once)(args)
    for name in args.networks.split(","):
        lines = []
        with tempfile.TemporaryDirectory(prefix="deploy-bench-") as folder:
            built = _spawn("prepare", name, folder, args)
            cold, cached = _spawn("deploy", name, folder, args), _spawn("deploy", name, folder, args)
        document = cached["document"]
        for site in document["sites"]:
            chosen = next((r for r in site["rows"] if r["status"] == "chosen"), None)
            fp32, int8 = _row(site, "fp32", "fp32"), _row(site, "int8", "int8-default")
            within = [r for r in (fp32, int8) if r and r["status"] in ("chosen", "eligible")]
            better = min((r["p50_ms"] for r in within), default=None)
            ratio = chosen["p50_ms"] / better if chosen and better else None
            int8_note = "" if int8 is None else f" ({int8['status']}, {int8['accuracy_delta']:+.2f} pts)"
            lines.append(
                f"{name:17s} {site['runtime']:12s} chosen {chosen['candidate'] if chosen else 'none':30s} "
                f"p50 {chosen['p50_ms'] if chosen else float('nan'):8.3f} ms | fp32 {fp32['p50_ms']:8.3f} ms | "
                f"int8 {int8['p50_ms'] if int8 else float('nan'):8.3f} ms{int8_note} | chosen/better "
                f"{ratio if ratio is not None else float('nan'):.3f}"
            )
            lines += [f"{'':17s}   not measured: {r['candidate']}: {r['error']}" for r in site["rows"] if r["error"]]
        lines.append(
            f"{name:17s} deploy wall time: cold {cold['wall_s']:.1f} s ({document['cache']['candidates']} candidates, "
            f"peak RSS {cold['peak_rss_gib']:.2f} GiB), from cache {cached['wall_s']:.1f} s "
            f"({document['cache']['measured_before']} measured before, peak RSS {cached['peak_rss_gib']:.2f} GiB); "
            f"building the network: peak RSS {built['peak_rss_gib']:.2f} GiB"
        )
        print("\n".join(lines) + "\n", flush=True)
    print(f"budget {args.budget:g} pts, {args.runs} runs per benchmark, 2 threads")


if __name__ == "__main__":
    main()
