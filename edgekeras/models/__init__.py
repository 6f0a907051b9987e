"""Model types a recipe can build (`model.type`): one module each, listed once here.

Each module has `FIELDS` (its recipe keys) and `build(section) -> keras.Model`.
"""

from __future__ import annotations

import importlib

from edgekeras.recipe.schema import Field, check_section

MODEL_TYPES = {
    "sequential": "edgekeras.models.sequential",
    "file": "edgekeras.models.file",
}


def model_types():
    return list(MODEL_TYPES)


def _module(name):
    return importlib.import_module(MODEL_TYPES[name])


def check_model_section(section):
    section = dict(section or {})
    type_field = {"type": Field("str", choices=model_types, doc="Give 'model.type', e.g. sequential.")}
    check_section({"type": section.get("type")} if "type" in section else {}, type_field, "model")
    fields = {**type_field, **_module(section["type"]).FIELDS}
    return check_section(section, fields, "model")


def build_model(section):
    """Builds the Keras model a validated `model:` section describes."""
    return _module(section["type"]).build(section)
