"""Data sources for training (`data.source` in a recipe) and data files for the CLI.

Each source is one module in this package with `FIELDS` (its own recipe keys) and
`load(section) -> (x, y)`; the registry below is the only place that lists them.
Splitting, batching and calibration sampling are shared (see `bundle`).
"""

from __future__ import annotations

import importlib

from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field, check_section

from edgekeras.data.bundle import DataBundle, Split  # noqa: F401  (public)
from edgekeras.data.files import load_data_file  # noqa: F401  (public)

# source name -> module under edgekeras.data
SOURCES = {
    "digits": "edgekeras.data.digits",
    "npz": "edgekeras.data.npz",
}

COMMON_FIELDS = {
    "source": Field("str", "digits", choices=lambda: list(SOURCES)),
    "validation_split": Field("fraction", 0.1),
    "test_split": Field("fraction", 0.2),
    "batch_size": Field("posint", 32),
    "shuffle_buffer": Field("posint", 1024),
}


def source_names():
    return list(SOURCES)


def _source(name):
    return importlib.import_module(SOURCES[name])


def check_data_section(section):
    """Validates `data:` with the common keys plus the chosen source's own keys."""
    section = dict(section or {})
    name = section.get("source", "digits")
    if name not in SOURCES:
        check_section({"source": name}, {"source": COMMON_FIELDS["source"]}, "data")
    fields = {**COMMON_FIELDS, **_source(name).FIELDS}
    checked = check_section(section, fields, "data")
    if checked["validation_split"] + checked["test_split"] >= 0.9:
        raise InputError(
            "Expected data.validation_split + data.test_split below 0.9 so training keeps data. "
            f"Received: {checked['validation_split']} + {checked['test_split']}."
        )
    return checked


def load_data(section, seed=0):
    """Loads and splits the data a recipe's `data:` section describes."""
    x, y = _source(section["source"]).load(section)
    return DataBundle.from_arrays(
        x, y, validation_split=section["validation_split"], test_split=section["test_split"],
        batch_size=section["batch_size"], seed=seed, shuffle_buffer=section["shuffle_buffer"],
    )
