"""A small, strict schema language for recipe sections.

Each concept module (data sources, model types, export) declares its own `Field`s; this
module only knows how to check a mapping against them, fill defaults, and phrase errors
with the recipe path and the closest valid key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekeras.errors import InputError, suggest

_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One recipe key: its type check, default, allowed values and a one-line doc."""

    kind: str  # "str", "int", "float", "bool", "list", "dict", "any", "fraction", "keras"
    default: Any = _MISSING
    choices: Callable[[], list] | tuple | None = None
    doc: str = ""

    @property
    def required(self):
        return self.default is _MISSING


_CHECKS = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "posint": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "fraction": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
        "a number in [0, 1)",
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "strlist": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
    "shape": (
        lambda v: isinstance(v, list) and all((isinstance(x, int) and x > 0) or x is None for x in v),
        "a list of positive integers",
    ),
    "keras": (lambda v: isinstance(v, (str, dict)), "a Keras identifier or {ClassName: config}"),
    "any": (lambda v: True, "anything"),
}


def check_section(mapping, fields, path):
    """Validates `mapping` against `fields`; returns a new dict with defaults filled in."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise InputError(f"Expected '{path}' to be a mapping of keys. Received: {mapping!r}.")
    for key in mapping:
        if key not in fields:
            raise InputError(
                f"Unknown key '{_join(path, key)}'. Expected one of: {', '.join(sorted(fields))}.{suggest(key, fields)}"
            )
    out = {}
    for key, field in fields.items():
        where = _join(path, key)
        if key not in mapping:
            if field.required:
                raise InputError(f"Missing required key '{where}'. {field.doc}".strip())
            out[key] = field.default
            continue
        value = mapping[key]
        if value is None and field.default is None:  # an optional key written out as null
            out[key] = None
            continue
        check, description = _CHECKS[field.kind]
        if not check(value):
            raise InputError(f"Expected '{where}' to be {description}. Received: {value!r}.")
        if field.choices is not None:
            choices = field.choices() if callable(field.choices) else field.choices
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v not in choices:
                    raise InputError(
                        f"Expected '{where}' to be one of {', '.join(map(repr, sorted(choices)))}. "
                        f"Received: {v!r}.{suggest(v, choices)}"
                    )
        out[key] = value
    return out


def _join(path, key):
    return f"{path}.{key}" if path else str(key)
