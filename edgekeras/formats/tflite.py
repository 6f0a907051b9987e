"""TFLite (LiteRT) flatbuffers."""

from edgekeras.formats import Format

FORMAT = Format(
    name="tflite",
    suffix=".tflite",
    display_name="TFLite (LiteRT)",
    colour="#2563eb",
    exporters="edgekeras.export.tflite",
    reader="edgekeras.readers.tflite",
    inspector="edgekeras.inspection.tflite",
    runtimes=("litert",),
    facts=("arena_kb", "float_ops"),  # beyond every reader's (constraints.COMMON_FACTS)
)
