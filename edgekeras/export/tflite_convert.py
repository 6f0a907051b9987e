"""Runs TensorFlow's TFLite converter from plain-data settings, in this process or a child.

The settings are a dict (JSON-able) so the same conversion can run in a child process:
`python -m edgekeras.export.tflite_convert JOB_DIR`. The converter's int8 quantizer segfaults
on some graphs (fixed-batch recurrent models, STACK-NOTES); in a child that crash is an
exit status the parent turns into a `ConversionError` instead of a dead CLI.

Settings keys: saved_model, ops (OpsSet names), optimize, supported_types, calibrate, batch,
samples, per_channel, dense_per_channel, io_dtype, keep_float_layers, keep_float_ops, sparsity, label.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgekeras import quiet
from edgekeras.errors import InputError
from edgekeras.export.tflite_lean import lean_serialization
from edgekeras.memory_estimate import release_memory
from edgekeras.progress import Progress
from edgekeras.readers import tflite as reader


def configure(converter, settings, calibration):
    """Applies `settings` to a `tf.lite.TFLiteConverter`; `calibration` is {input: array}."""
    import tensorflow as tf

    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, name) for name in settings["ops"]]
    optimizations = [tf.lite.Optimize.DEFAULT] if settings.get("optimize") else []
    if settings.get("sparsity"):  # sparse weight storage (DENSIFY), see export/sparse_weights.py
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if optimizations:
        converter.optimizations = optimizations
    if settings.get("supported_types"):
        converter.target_spec.supported_types = [getattr(tf, t) for t in settings["supported_types"]]
    if not settings.get("per_channel", True):
        converter._experimental_disable_per_channel = True  # the converter's only per-tensor switch
    if not settings.get("dense_per_channel", True):  # export/dense_scales.py
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if settings.get("io_dtype") == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if settings.get("calibrate"):
        batch, samples = settings.get("batch", 1), settings["samples"]
        n = min(samples, len(next(iter(calibration.values()))))

        def representative():
            # One dict per sample, keyed by input name: a list would be applied in TFLite's
            # input order, which is not Keras' order (STACK-NOTES).
            with Progress(f"Calibrating {settings.get('label', 'tflite')}", n // batch) as bar:
                for start in range(0, n - batch + 1, batch):
                    yield {k: v[start : start + batch] for k, v in calibration.items()}
                    bar.update()

        converter.representative_dataset = representative


def convert(settings, calibration=None, calibrated=None):
    """Runs the converter; returns (flatbuffer bytes, notes for the manifest).

    With keep_float layers or ops, `calibrated` (what `calibrate` returned for the same
    settings) skips the calibration: the accuracy-aware search (`mixed_precision`) quantizes
    one calibrated model with many denylists.

    Full-integer int8 is calibrated and quantized in two steps (`in_two_steps`), each starting
    from what the last one returned: in one `convert()` TensorFlow still holds the float model,
    the model with its intermediate tensors and the calibrator's copy while its quantizer runs
    (VGG16 int8: 6.2 GB instead of 5). The artifact is the same op for op and weight for weight;
    only the model hash in its conversion metadata is the calibrated model's.
    """
    layers, ops = settings.get("keep_float_layers") or [], settings.get("keep_float_ops") or []
    if layers or ops or calibrated:
        if calibrated is None:
            calibrated = calibrate(settings, calibration)
        return quantize_keeping_float(calibrated, settings, layers, ops)
    if in_two_steps(settings):
        calibrated = calibrate(settings, calibration)
        release_memory()  # the converter's float copies, before the quantizer makes its own
        return quantize_keeping_float(calibrated, settings, [], [])[0], {}
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(settings["saved_model"])
    configure(converter, settings, calibration)
    with lean_serialization():
        return converter.convert(), {}


def in_two_steps(settings):
    """Whether `convert` calibrates and quantizes apart: full-integer int8 (TensorFlow's MLIR
    quantizer, which `mlir_quantize` runs alone) without sparse weights (the converter
    sparsifies after quantizing, which a calibrated float model cannot stand in for)."""
    return (
        bool(settings.get("calibrate"))
        and settings.get("ops") == ["TFLITE_BUILTINS_INT8"]
        and not settings.get("sparsity")
    )


def calibrate(settings, calibration):
    """The float model with its calibrated ranges recorded, not yet quantized (flatbuffer bytes)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(settings["saved_model"])
    configure(converter, settings, calibration)
    converter._experimental_calibrate_only = True
    with lean_serialization():
        return converter.convert()


def quantize_keeping_float(calibrated_bytes, settings, layers, ops):
    """Quantizes a calibrated model with a denylist (what tf.lite's QuantizationDebugger does):
    the ops of Keras layers `layers` and of TFLite op types `ops` stay float32."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    calibrated = reader.read(calibrated_bytes)
    by_layer = reader.layer_nodes(calibrated, layers)
    missing = [layer for layer, names in by_layer.items() if not names]
    if missing:
        raise InputError(
            f"Expected keep_float.layers to name layers of the model. Received: {missing}, whose ops "
            "were not found in the converted graph (layers without weights or ops, e.g. Flatten, "
            "may have been folded away)."
        )
    present = sorted(calibrated.op_counts)
    absent = [op for op in ops if op not in present]
    if absent:
        raise InputError(
            f"Expected keep_float.ops to be TFLite ops in this model ({', '.join(present)}). Received: {absent}."
        )
    nodes = sorted({n for names in by_layer.values() for n in names})
    io = tf.int8 if settings.get("io_dtype") == "int8" else tf.float32
    flatbuffer = mlir_quantize(
        calibrated_bytes,
        disable_per_channel=not settings.get("per_channel", True),
        disable_per_channel_for_dense_layers=not settings.get("dense_per_channel", True),
        input_data_type=io,
        output_data_type=io,
        denylisted_ops=ops or None,
        denylisted_nodes=nodes or None,
    )
    return flatbuffer, {"kept_float": {"layers": layers, "ops": ops, "nodes": nodes}}


def main(job_dir):
    """Child entry point: reads settings.json (+ calibration.npz), writes model.tflite + notes.json.

    A Python error is written to error.json (exit 3); a native crash kills the process, and
    the parent reports its signal.
    """
    import numpy as np

    job = Path(job_dir)
    settings = json.loads((job / "settings.json").read_text())
    quiet.quiet_tensorflow()
    calibration = None
    if (job / "calibration.npz").exists():
        with np.load(job / "calibration.npz", allow_pickle=False) as f:
            calibration = {k: f[k] for k in f.files}
    with quiet.captured_output() as log:
        try:
            flatbuffer, notes = convert(settings, calibration)
        except Exception as e:  # reported to the parent, which phrases the error
            error = {"type": type(e).__name__, "message": str(e), "input_error": _is_input_error(e)}
        else:
            error = None
    if error is not None:
        error["log"] = log.text
        (job / "error.json").write_text(json.dumps(error))
        return 3
    (job / "model.tflite").write_bytes(flatbuffer)
    (job / "notes.json").write_text(json.dumps(notes))
    return 0


def _is_input_error(exc):
    return isinstance(exc, InputError)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
