"""ONNX graphs (static QDQ for int8)."""

from edgekeras.formats import Format

FORMAT = Format(
    name="onnx",
    suffix=".onnx",
    display_name="ONNX",
    colour="#ea580c",
    exporters="edgekeras.export.onnx",
    reader="edgekeras.readers.onnx",
    inspector="edgekeras.inspection.onnx",
    runtimes=("onnxruntime",),
)
