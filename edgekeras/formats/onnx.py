"""ONNX graphs (static QDQ for int8)."""

from edgekeras.formats import Format

FORMAT = Format(
    name="onnx",
    suffix=".onnx",
    display_name="ONNX",
    colour="#ea580c",
    exporters="edgekeras.export.onnx",
    reader="edgekeras.inspection.onnx",
    inspector="edgekeras.inspection.onnx",
    runtimes=("onnxruntime",),
)
