"""One registry of exporters keyed by (format, precision).

Each format's record (`edgekeras.formats`) names the module that writes it (`export/tflite.py`,
`export/onnx.py`); that module registers one entry per precision it produces with
`@register(...)`. Adding a precision or a format is adding entries, never an if-chain here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from edgekeras import formats as format_records
from edgekeras.errors import InputError, expected_one_of


@dataclass(frozen=True)
class Exporter:
    """How one (format, precision) artifact is produced; file suffix and default runtime come
    from the format's record (`edgekeras.formats`)."""

    format: str
    precision: str
    description: str
    build: Callable  # build(context, path, recipe) writes `path`; returns manifest notes (dict)
    options: frozenset = frozenset()  # quantize-recipe knobs it honours (QuantRecipe.knobs())

    @property
    def suffix(self) -> str:
        return format_records.get_format(self.format).suffix

    @property
    def runtime(self) -> str:
        """The runtime that validates and benchmarks it by default."""
        return format_records.get_format(self.format).default_runtime


EXPORTERS: dict[tuple[str, str], Exporter] = {}


@dataclass(frozen=True)
class FloatFallback:
    """How a format's int8 exporter keeps chosen Keras layers in float: what the accuracy-aware
    search (`mixed_precision`) needs of a format. An exporter module offers it as `FLOAT_FALLBACK`."""

    build: Callable  # build(context, path, recipe): an int8 artifact keeping recipe.keep_float["layers"] in float
    layer_nodes: Callable  # layer_nodes(context, layers) -> {layer: [names of its ops in the converted graph]}
    route: str  # how, in the manifest's words
    description: str
    options: tuple = ()  # quantize-recipe knobs honoured


def float_fallbacks():
    """{format: FloatFallback} of every format whose exporter module offers one."""
    found = {}
    for record in format_records.all_formats().values():
        fallback = getattr(importlib.import_module(record.exporters), "FLOAT_FALLBACK", None)
        if isinstance(fallback, FloatFallback):
            found[record.name] = fallback
    return found


def register(format, precision, description, options=()):
    """Registers the decorated `build(context, path, recipe)` as the (format, precision) exporter."""

    def wrap(fn):
        EXPORTERS[(format, precision)] = Exporter(format, precision, description, fn, frozenset(options))
        return fn

    return wrap


def _load_all():
    for record in format_records.all_formats().values():
        importlib.import_module(record.exporters)


def formats():
    """Names of every artifact format."""
    return format_records.names()


def precisions():
    _load_all()
    return sorted({p for _, p in EXPORTERS})


def exists(format, precision):
    """Whether some exporter writes (format, precision)."""
    _load_all()
    return (format, precision) in EXPORTERS


def get_exporter(format, precision):
    """The exporter for a pair, or an InputError listing what exists."""
    _load_all()
    if format not in format_records.names():
        raise expected_one_of("--format", format, format_records.names())
    if precision not in precisions():
        raise expected_one_of("--precision", precision, precisions())
    if (format, precision) not in EXPORTERS:
        have = sorted(p for f, p in EXPORTERS if f == format)
        other = sorted(f for f, p in EXPORTERS if p == precision)
        raise InputError(
            f"Expected a precision that {format} supports: {', '.join(have)}. Received: '{precision}', "
            f"which only {', '.join(other)} produces. Drop --precision {precision} or use "
            f"--format {other[0]}."
        )
    return EXPORTERS[(format, precision)]


def check_recipe(exporter, recipe):
    """Refuses a quantize recipe whose settings `exporter` would silently ignore."""
    if recipe.formats and exporter.format not in recipe.formats:
        raise InputError(
            f"Expected --format to be one quantize recipe '{recipe.name}' is for "
            f"({', '.join(recipe.formats)}). Received: {exporter.format}. Drop --format "
            f"{exporter.format} or pick another recipe."
        )
    ignored = {k: v for k, v in recipe.knobs().items() if k not in exporter.options}
    if ignored:
        settings = ", ".join(f"{k}={v}" for k, v in ignored.items())
        raise InputError(
            f"Expected quantize recipe settings that {exporter.format} {exporter.precision} supports "
            f"({', '.join(sorted(exporter.options)) or 'none'}). Received: recipe '{recipe.name}' "
            f"with {settings}. Remove them or convert to another format."
        )


def format_of_path(path):
    """The format whose files end like `path`'s suffix."""
    return format_records.format_of_path(path)


def artifact_suffixes():
    """The file suffixes artifacts are written with ({".tflite", ".onnx"})."""
    return format_records.suffixes()
