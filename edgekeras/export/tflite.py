"""TFLite (LiteRT) artifacts from the serving SavedModel, through TensorFlow's converter.

Each precision is a table entry of converter settings; only builtin ops are allowed, so an
artifact never silently needs TensorFlow select ops that ai-edge-litert cannot run.
"""

from __future__ import annotations

from edgekeras.errors import ConversionError
from edgekeras.export import register
from edgekeras.export.graph import saved_model
from edgekeras.progress import Progress


def _fp32(converter, context):
    converter.target_spec.supported_ops = [_ops().TFLITE_BUILTINS]


def _int8(converter, context):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [_ops().TFLITE_BUILTINS_INT8]
    total = len(next(iter(context.calibration.values())))

    def representative():
        # One dict per sample, keyed by input name: a list would be applied in TFLite's
        # input order, which is not Keras' order (STACK-NOTES).
        with Progress("Calibrating tflite int8", total) as bar:
            for sample in context.calibration_samples():
                yield sample
                bar.update()

    converter.representative_dataset = representative


def _ops():
    import tensorflow as tf

    return tf.lite.OpsSet


def _convert(context, path, configure):
    import tensorflow as tf

    from edgekeras.quiet import captured_output

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model(context)))
    configure(converter, context)
    with captured_output() as log:
        try:
            flatbuffer = converter.convert()
        except Exception as e:
            raise ConversionError.from_log("tflite", e, log.text) from None
    path.write_bytes(flatbuffer)


@register("tflite", "fp32", ".tflite", "litert", "TFLite float32")
def export_fp32(context, path):
    _convert(context, path, _fp32)


@register("tflite", "int8", ".tflite", "litert",
          "TFLite full-integer int8 (float inputs/outputs), calibrated")
def export_int8(context, path):
    _convert(context, path, _int8)
