"""One reader per artifact format: what a file holds, without TensorFlow or a runtime.

- `readers.tflite`: `read(path or bytes) -> TFLiteModel` (LiteRT flatbuffer schema) and
  `detect_precision(model)`; `float_ops`, `select_ops`, `custom_ops`, `quantized_constants`,
  `op_outputs`, `layer_nodes`.
- `readers.onnx`: `read(path) -> ONNXModel` (`onnx`, external data not loaded) and
  `detect_precision(model)`; `float_ops`, `custom_ops`, `quant_of`, `io_quant`.

Both give each op's output names, which carry the Keras layer scopes (`readers.scopes`), and
tensors' quantization as `readers.quant.Quant`. Exporters, validation, target constraints
and `inspect` all read artifacts through these two modules.
"""
