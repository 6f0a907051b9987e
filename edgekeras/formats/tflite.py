"""TFLite (LiteRT) flatbuffers."""

from edgekeras.formats import Format

FORMAT = Format(
    name="tflite",
    suffix=".tflite",
    display_name="TFLite (LiteRT)",
    colour="#2563eb",
    exporters="edgekeras.export.tflite",
    reader="edgekeras.inspection.tflite",
    inspector="edgekeras.inspection.tflite",
    runtimes=("litert",),
    facts=("arena_kb", "int8_only"),
)
