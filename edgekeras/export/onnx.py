"""ONNX artifacts: tf2onnx from the serving function, ONNX Runtime quantization for int8.

int8 is static QDQ with per-channel weights (U8S8: uint8 activations, int8 weights, the
combination that is fastest on x86 ONNX Runtime; see STACK-NOTES), calibrated on the
user's samples. The fp32 graph is built once and shared.
"""

from __future__ import annotations

import shutil

from edgekeras.export import register
from edgekeras.export.graph import serving_function
from edgekeras.errors import ConversionError
from edgekeras.progress import Progress


def _fp32_graph(context):
    def build():
        import tensorflow as tf
        from keras.src.export.tf2onnx_lib import patch_tf2onnx  # numpy 2 fixes Keras applies

        from edgekeras.quiet import captured_output

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy-2 FutureWarnings from the patch and tf2onnx
            patch_tf2onnx()
            import tf2onnx

        fn = context.cached("serving_function", lambda: serving_function(context.model))
        path = context.workdir / "model-fp32.onnx"
        with captured_output() as log:
            try:
                tf2onnx.convert.from_function(fn, input_signature=fn.input_signature,
                                              opset=context.opset, output_path=str(path))
            except Exception as e:
                raise ConversionError.from_log("onnx", e, log.text) from None
        del tf
        return path

    return context.cached("onnx_fp32", build)


@register("onnx", "fp32", ".onnx", "onnxruntime", "ONNX float32 (tf2onnx)")
def export_fp32(context, path):
    shutil.copyfile(_fp32_graph(context), path)


class _Reader:
    """Feeds calibration samples to ONNX Runtime's calibrator, one at a time."""

    def __init__(self, context, bar):
        self._samples = context.calibration_samples()
        self._bar = bar

    def get_next(self):
        sample = next(self._samples, None)
        if sample is not None:
            self._bar.update()
        return sample

    def rewind(self):  # pragma: no cover - called by some ORT calibrators
        pass


@register("onnx", "int8", ".onnx", "onnxruntime",
          "ONNX static int8 QDQ, per-channel weights, calibrated")
def export_int8(context, path):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekeras.quiet import captured_output

    source = _fp32_graph(context)
    prepared = context.workdir / "model-fp32-prep.onnx"
    if not prepared.exists():
        with captured_output():
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    total = len(next(iter(context.calibration.values())))
    with Progress("Calibrating onnx int8", total) as bar, captured_output() as log:
        try:
            quantize_static(
                str(prepared), str(path), _Reader(context, bar),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as e:
            raise ConversionError.from_log("onnx int8", e, log.text) from None
