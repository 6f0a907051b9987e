"""Artifact formats: one record each, every fact about a format in one place.

A format is one module in this package defining `FORMAT = Format(...)`: its file suffix, the
module whose `@register`ed exporters write it, the reader that parses it without TensorFlow
(and detects its precision), the inspector behind `edgekeras inspect`, the runtimes that run it
(the first is the default), and how reports draw it. Modules are discovered, so adding a
format is adding a module here (plus its exporter, reader and runtime modules); nothing else
lists formats.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from edgekeras.errors import InputError, expected_one_of


@dataclass(frozen=True)
class Format:
    """Everything edgekeras knows about one artifact format."""

    name: str
    suffix: str  # the artifact file's suffix, e.g. ".tflite"
    display_name: str  # how tables and plots name it
    colour: str  # its colour in report plots
    exporters: str  # module that `@register`s the exporters writing it
    reader: str  # module reading a file of it without TensorFlow: `detect_precision(path)`, ...
    inspector: str  # module behind `edgekeras inspect`: `summarize(path)`, `compare(...)`
    runtimes: tuple[str, ...]  # runtimes (edgekeras.runtimes) that run it; the first is the default
    facts: tuple[str, ...] = ()  # facts only this format's reader gives constraints (e.g. arena_kb)

    def load(self, part: str) -> ModuleType:
        """The module named by field `part` ("exporters", "reader", "inspector")."""
        return importlib.import_module(getattr(self, part))

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]


@cache
def _registry() -> dict[str, Format]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        record = getattr(module, "FORMAT", None)
        if isinstance(record, Format):
            found[record.name] = record
    return dict(sorted(found.items(), key=lambda kv: (kv[1].runtimes[0] != "litert", kv[0])))


def all_formats() -> dict[str, Format]:
    """{name: Format} of every format module here (tflite first: the historical default order)."""
    return _registry()


def names() -> list[str]:
    return list(_registry())


def get_format(name: str) -> Format:
    """The record of format `name`, or an `InputError` listing the known ones."""
    if name not in _registry():
        raise expected_one_of("--format", name, _registry())
    return _registry()[name]


def suffixes() -> set[str]:
    return {f.suffix for f in _registry().values()}


def format_of_path(path: str | Path) -> str:
    """The name of the format whose files end like `path`."""
    suffix = Path(path).suffix.lower()
    for record in _registry().values():
        if record.suffix == suffix:
            return record.name
    raise InputError(f"Expected an artifact file ({', '.join(sorted(suffixes()))}). Received: '{path}'.")


def runtimes_for(name: str) -> list[str]:
    """The runtimes that run format `name`, default first."""
    return list(get_format(name).runtimes)


def formats_run_by(runtime: str) -> list[str]:
    """The formats runtime `runtime` runs."""
    return [f.name for f in _registry().values() if runtime in f.runtimes]
