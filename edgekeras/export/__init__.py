"""One registry of exporters keyed by (format, precision), and the `convert` entry point.

A format is one module in this package (`tflite`, `onnx`); each registers one entry per
precision it produces with `@register(...)`. Adding a precision or a format is adding
entries, never an if-chain here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from edgekeras.errors import InputError, expected_one_of

FORMAT_MODULES = {
    "tflite": "edgekeras.export.tflite",
    "onnx": "edgekeras.export.onnx",
}


@dataclass(frozen=True)
class Exporter:
    """How one (format, precision) artifact is produced."""

    format: str
    precision: str
    suffix: str        # file suffix, e.g. ".tflite"
    runtime: str       # the runtime that validates and benchmarks it by default
    description: str
    build: Callable    # build(context, path) writes the artifact at `path`


EXPORTERS: dict[tuple[str, str], Exporter] = {}


def register(format, precision, suffix, runtime, description):
    def wrap(fn):
        EXPORTERS[(format, precision)] = Exporter(format, precision, suffix, runtime, description, fn)
        return fn

    return wrap


def _load_all():
    for module in FORMAT_MODULES.values():
        importlib.import_module(module)


def formats():
    return list(FORMAT_MODULES)


def precisions():
    _load_all()
    return sorted({p for _, p in EXPORTERS})


def get_exporter(format, precision):
    """The exporter for a pair, or an InputError listing what exists."""
    _load_all()
    if format not in FORMAT_MODULES:
        raise expected_one_of("--format", format, FORMAT_MODULES)
    if precision not in precisions():
        raise expected_one_of("--precision", precision, precisions())
    if (format, precision) not in EXPORTERS:
        have = sorted(p for f, p in EXPORTERS if f == format)
        raise InputError(
            f"Expected a precision that {format} supports: {', '.join(have)}. Received: '{precision}'."
        )
    return EXPORTERS[(format, precision)]


def format_of_path(path):
    """The format whose exporters write files with `path`'s suffix."""
    _load_all()
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    for exporter in EXPORTERS.values():
        if exporter.suffix == suffix:
            return exporter.format
    raise InputError(
        f"Expected an artifact file ({', '.join(sorted({e.suffix for e in EXPORTERS.values()}))}). "
        f"Received: '{path}'."
    )


def default_runtime(format):
    _load_all()
    for exporter in EXPORTERS.values():
        if exporter.format == format:
            return exporter.runtime
    raise expected_one_of("format", format, FORMAT_MODULES)
