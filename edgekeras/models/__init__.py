"""Model types a recipe can build (`model.type`): one module each, listed once here.

Each module has `FIELDS` (its recipe keys) and `build(section, base_dir) -> keras.Model`,
where `base_dir` is the recipe's folder (relative files and `module:name` imports are found
there as well as in the current folder).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgekeras.errors import InputError
from edgekeras.models.custom_objects import importable_from
from edgekeras.models.safe_mode import safe_mode_scope
from edgekeras.recipe.schema import Field, check_section

MODEL_TYPES = {
    "sequential": "edgekeras.models.sequential",
    "functional": "edgekeras.models.functional",
    "python": "edgekeras.models.python",
    "application": "edgekeras.models.application",
    "file": "edgekeras.models.file",
}


def model_types():
    return list(MODEL_TYPES)


def _module(name):
    return importlib.import_module(MODEL_TYPES[name])


# Keys every model type takes, besides its own `FIELDS`.
COMMON_FIELDS = {
    "unsafe": Field(
        "bool",
        False,
        doc="Keras safe_mode off: the model's Lambda code (an anonymous lambda) "
        "is saved as bytecode and reloads only so. Only for trusted code.",
    ),
}


def check_model_section(section):
    """Validates a `model:` section against its type's keys; returns it with defaults filled."""
    section = dict(section or {})
    type_field = {"type": Field("str", choices=model_types, doc="Give 'model.type', e.g. sequential.")}
    check_section({"type": section.get("type")} if "type" in section else {}, type_field, "model")
    fields = {**type_field, **_module(section["type"]).FIELDS, **COMMON_FIELDS}
    return check_section(section, fields, "model")


def build_model(section, base_dir=None):
    """Builds the Keras model a validated `model:` section describes.

    With `model.unsafe: true` Keras' safe mode is off while building, so a config or file
    holding a lambda's bytecode (a `functional` JSON, a `file`) deserializes.
    """
    with importable_from(Path.cwd(), base_dir), safe_mode_scope(not section.get("unsafe", False)):
        return _module(section["type"]).build(section, base_dir)


def find_file(path, base_dir, key):
    """`path` as given (relative to the current folder), else relative to the recipe's folder."""
    given = Path(path).expanduser()
    if given.exists():
        return given
    if base_dir is not None and not given.is_absolute() and (Path(base_dir) / given).exists():
        return Path(base_dir) / given
    where = f" or '{Path(base_dir) / given}'" if base_dir is not None and not given.is_absolute() else ""
    raise InputError(f"Expected '{key}' to name an existing file. Received: '{path}' (no '{given}'{where}).")
