"""Peak memory and wall time of `edgekeras convert` per artifact, beside the raw stack's.

For keras.applications MobileNetV2, ResNet50, VGG16 (weights=None, 224 x 224, 10 classes)
and a model of random Dense weights above 2 GB, every measurement runs in its own child
process: edgekeras' ONNX and TFLite artifacts at fp32 and int8 (calibrated, validated), then
all four in one `convert` (each artifact in a child process: it should need no more than the
largest, printed as a ratio), then the raw stack — `TFLiteConverter.from_keras_model` and Keras'
`model.export(format="onnx")`.
A parent polls the child's resident memory (`coverage.memory.tree_rss`, every 0.1 s) and kills
it above `--limit` GiB. Printed: peak, ratio to the weight bytes, the issue's budget
(2 GB + 3 x weights), edgekeras' own estimate (`memory_estimate`), and wall time.

    python benchmarks/convert_memory.py [--models MobileNetV2 ResNet50 VGG16 Dense2G] [--limit 10]

Measured 2026-12-05 (2 busy cores; ONNX: `--models ResNet50 VGG16 Dense2G --kinds onnx-fp32
onnx-int8 --limit 11`, after ONNX int8 was pre-processed and calibrated from files; TFLite and
all-four: the same day's earlier run, `--models VGG16 Dense2G --limit 11`; MobileNetV2
`--models MobileNetV2`):

    model        artifact      peak GiB x weights budget GiB  estimate  wall s
    MobileNetV2  onnx-fp32         1.10     129.9       1.89      1.15      15
    MobileNetV2  onnx-int8         0.98     115.9       1.89      1.15      13
    MobileNetV2  tflite-fp32       1.12     132.7       1.89      1.30      16
    MobileNetV2  tflite-int8       1.02     120.3       1.89      1.44      18
    MobileNetV2  all-four          1.32     156.1       1.89                29   (in this process: < 64 MB)
    ResNet50     onnx-fp32         1.33      15.1       2.13      1.41      18
    ResNet50     onnx-int8         1.31      14.9       2.13      1.41      16
    VGG16        onnx-fp32         2.60       5.2       3.36      2.77      46
    VGG16        onnx-int8         2.50       5.0       3.36      2.77      35   (3.03 before)
    VGG16        tflite-fp32       2.93       5.9       3.36      2.97      69
    VGG16        tflite-int8       3.00       6.0       3.36      3.12      47   (ai-edge-quantizer)
    VGG16        all-four          3.16       6.3       3.36               190   (1.03 x the largest single)
    VGG16        raw-onnx         11.01      22.0       3.36                45   KILLED at limit
    VGG16        raw-tflite        5.83      11.7       3.36                25
    Dense2G      onnx-fp32         6.67       3.1       7.86      7.72     120   (8.64 two changes before)
    Dense2G      onnx-int8         6.81       3.2       7.86      7.72     111   (9.15 before)

Dense2G fp32 came down from 8.64 once Keras' tf2onnx patch no longer deep-copied every constant
(`tf2onnx_lean.external_value_attr`) and its `load_model` (7.85 GiB alone) went through
`keras_lean_load` (3.6). int8 came down from 9.15 when ONNX Runtime's tools stopped holding the
model three times: `quant_pre_process` loaded it beside the session that optimized it, and
`quantize_static` held it while its calibrator loaded a second copy and opened a session on a
third. `export/onnx_calibration.py` does both steps file to file (the calibrator drops its
copy's weights once the augmented graph is written; `quantize_static` reads the ranges), and
tf2onnx's graph cycles, which held 2 GB after the fp32 graph was written, are collected then.
(The estimate column is the current `memory_estimate`: ONNX int8 shares fp32's line.)

Measured (2 cores, shared, 2026-12-05; `--models ResNet50 VGG16 --kinds onnx-fp32 onnx-int8 --limit 9`):

    model        artifact      peak GiB x weights budget GiB  estimate  wall s
    ResNet50     onnx-fp32         1.38      15.7       2.13      1.45      98
    ResNet50     onnx-int8         1.42      16.2       2.13      1.50     110
    VGG16        onnx-fp32         2.86       5.7       3.36      2.99     251
    VGG16        onnx-int8         3.11       6.2       3.36      3.27     180
    VGG16        raw-onnx          9.01      18.0       3.36                85 KILLED at limit

(VGG16 ONNX before the weights were kept out of TensorFlow's passes: 5.12 GiB at fp32.)

Measured (2 busy cores, December 2026), peak GiB, before -> after the TFLite converter's lean
re-serialization (`export/tflite_lean.py`) and int8 calibrated and quantized in two steps
(`export/tflite_convert.py`); budget 3.36 GiB for VGG16, 2.13 for ResNet50:

    VGG16      tflite-fp32  3.86 -> 2.87    tflite-int8  6.16 -> 4.99    raw-tflite 5.80
    ResNet50   tflite-fp32  1.63 -> 1.51    tflite-int8  1.90 -> 1.97

VGG16 int8 stayed over its budget: TensorFlow's MLIR quantizer (`mlir_quantize`) alone, in a
process holding nothing but TensorFlow and the calibrated model, peaks at 4.3 GiB. From 256 MB
of weights TFLite int8 is now quantized by ai-edge-quantizer from the float file, calibrated
with min/max tracked inside the interpreter run (`export/tflite_aeq.py`); same run, 2 busy cores,
`--models VGG16 ResNet50 --kinds tflite-int8 --limit 9`:

    VGG16      tflite-int8  4.99 -> 3.02 (budget 3.36; estimate 3.12)   wall 70 -> 50 s
    ResNet50   tflite-int8  2.01 (94 MB of weights: the converter, as before)

The raw stack is not run on the 2 GB model: protobuf (ONNX) and flatbuffers (TFLite) stop at
2 GB, which is what edgekeras' external data and refusal are for.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekeras.coverage.memory import tree_rss

GIB = 2**30
KINDS = ["onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8", "all-four", "raw-onnx", "raw-tflite"]
CALIBRATION = 64  # samples, random: this measures memory, not accuracy


def build(name, path):
    """Saves model `name` to `path` (run in a child)."""
    import keras

    if name == "Dense2G":  # 545 M parameters: 2.2 GB of float32 weights
        inputs = keras.Input((8192,), name="x")
        x = keras.layers.Dense(16384, activation="relu")(inputs)
        x = keras.layers.Dense(16384, activation="relu")(x)
        x = keras.layers.Dense(8192, activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
    else:
        model = getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3), classes=10)
    model.save(path)
    Path(path).with_suffix(".shape.json").write_text(json.dumps(list(model.inputs[0].shape[1:])))
    return sum(int(w.numpy().nbytes) for w in model.weights)


def measure(kind, model_path, out):
    """One conversion (run in a child)."""
    import numpy as np

    if kind.startswith("raw-"):
        import keras
        import tensorflow as tf

        model = keras.saving.load_model(model_path)
        shape = (1, *model.inputs[0].shape[1:])
        model(np.zeros(shape, np.float32))  # Keras' ONNX export needs a called model (STACK-NOTES)
        if kind == "raw-onnx":
            model.export(str(out / "raw.onnx"), format="onnx", verbose=False)
        else:
            (out / "raw.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        return
    import edgekeras as ek

    fmt, precision = kind.split("-")
    formats, precisions = ([fmt], [precision]) if fmt != "all" else (["onnx", "tflite"], ["fp32", "int8"])
    calibration = None
    if "int8" in precisions:  # the input shape from beside the file: loading the model here would count it
        shape = json.loads(Path(model_path).with_suffix(".shape.json").read_text())
        calibration = np.random.default_rng(0).random((CALIBRATION + 16, *shape), dtype=np.float32)
    try:
        ek.convert(model_path, formats=formats, precisions=precisions, calibration=calibration, out=out, force=True)
    except ek.ValidationFailed:  # random weights: int8 parity may miss; every artifact was written and validated
        pass


def child(args, limit):
    """Runs `args` in a child; (peak resident bytes of its process tree, seconds, exit code)."""
    start = time.time()
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid) or 0)
        if peak > limit:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.1)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = proc.wait()
    if code and peak <= limit:
        print(err[-2000:], file=sys.stderr)
    return peak, time.time() - start, code


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["MobileNetV2", "ResNet50", "VGG16", "Dense2G"])
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--limit", type=float, default=10.0, help="GiB: a child above it is killed")
    parser.add_argument("--build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(json.dumps({"weight_bytes": build(*args.build)}))
        return
    if args.measure:
        measure(args.measure[0], args.measure[1], Path(args.measure[2]))
        return
    from edgekeras.memory_estimate import estimate

    limit = args.limit * GIB
    me = [sys.executable, os.path.abspath(__file__)]
    print(
        f"{'model':12} {'artifact':12} {'peak GiB':>9} {'x weights':>9} {'budget GiB':>10} {'estimate':>9} {'wall s':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="convert-memory-") as tmp:
        for name in args.models:
            path = Path(tmp) / f"{name}.keras"
            done = subprocess.run([*me, "--build", name, str(path)], capture_output=True, text=True, check=True)
            weights = json.loads(done.stdout.strip().splitlines()[-1])["weight_bytes"]
            print(f"# {name}: {weights / 1e6:.0f} MB of weights", flush=True)
            peaks = {}
            for kind in args.kinds:
                if name == "Dense2G" and kind.startswith(("raw-", "tflite-fp32", "all-")):
                    continue  # past protobuf's / flatbuffers' 2 GB: the raw stack cannot, edgekeras refuses
                out = Path(tmp) / f"{name}-{kind}"
                out.mkdir()
                peak, wall, code = child([*me, "--measure", kind, str(path), str(out)], limit)
                budget = (2e9 + 3 * weights) / GIB
                est = (
                    ""
                    if kind.startswith(("raw-", "all-"))
                    else f"{estimate(*kind.split('-'), weights).bytes / GIB:9.2f}"
                )
                note = "" if code == 0 else (" KILLED at limit" if peak > limit else f" FAILED (exit {code})")
                print(
                    f"{name:12} {kind:12} {peak / GIB:9.2f} {peak / weights:9.1f} {budget:10.2f} {est:>9} "
                    f"{wall:7.0f}{note}",
                    flush=True,
                )
                subprocess.run(["rm", "-rf", str(out)], check=False)
                peaks[kind] = peak if code == 0 else None
            singles = [p for k, p in peaks.items() if k in KINDS[:4] and p]
            if peaks.get("all-four") and len(singles) == 4:
                print(f"# {name}: all four in one convert / largest single = {peaks['all-four'] / max(singles):.2f}")
            path.unlink()
    print(f"weights: float32 bytes of model.weights; budget: 2 GB + 3 x weights; int8: {CALIBRATION} samples")


if __name__ == "__main__":
    main()
