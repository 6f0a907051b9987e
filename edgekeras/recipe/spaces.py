"""Search spaces written in place of recipe values, for `edgekeras tune`.

Any value of a recipe may be one of:

    {choice: [16, 32, 64]}                         one of the listed values (any YAML values)
    {int: {min: 8, max: 64, step: 8}}              an integer (sampling: linear | log)
    {float: {min: 1.0e-4, max: 1.0e-2, sampling: log}}   a number (sampling: linear | log | reverse_log)
    {boolean: {}}                                  true or false

Each space is named by its recipe path (`model.layers[0].Conv2D.filters`), the name the
tuner, the results table and the plots use. This module only knows the grammar: finding,
checking and substituting spaces. Mapping them onto Keras Tuner is `edgekeras.tuning.tuner`'s.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field, check_section

SAMPLINGS = {"int": ("linear", "log"), "float": ("linear", "log", "reverse_log")}
_RANGE_FIELDS = {
    "int": {
        "min": Field("int", doc="Give the smallest value, e.g. '{int: {min: 8, max: 64}}'."),
        "max": Field("int", doc="Give the largest value, e.g. '{int: {min: 8, max: 64}}'."),
        "step": Field("posint", 1),
        "sampling": Field("str", "linear", choices=SAMPLINGS["int"]),
    },
    "float": {
        "min": Field("float", doc="Give the smallest value, e.g. '{float: {min: 0.0001, max: 0.01}}'."),
        "max": Field("float", doc="Give the largest value, e.g. '{float: {min: 0.0001, max: 0.01}}'."),
        "step": Field("float", None),
        "sampling": Field("str", "linear", choices=SAMPLINGS["float"]),
    },
}
KINDS = ("choice", "int", "float", "boolean")
# Top-level recipe sections that configure the search itself: never searched.
NOT_SEARCHED = ("tune",)


@dataclass(frozen=True)
class Space:
    """One search space: its recipe path, kind and checked settings.

    `values` (choice) are the options as written; when they are not all strings, all ints,
    all floats or all booleans, the tuner sees them as JSON texts (`options`), which
    `value_of` turns back into the recipe values.
    """

    path: str
    kind: str  # "choice", "int", "float", "boolean"
    settings: dict[str, Any]  # int/float: min, max, step, sampling; choice: {"values": [...]}

    @property
    def encoded(self) -> bool:
        """Whether the tuner sees this choice's options as JSON texts."""
        if self.kind != "choice":
            return False
        types = {type(v) for v in self.settings["values"]}
        return len(types) != 1 or not types <= {str, int, float, bool}

    @property
    def options(self) -> list[Any]:
        """The choice's options as the tuner takes them (scalars of one type)."""
        values = self.settings["values"]
        return [json.dumps(v, sort_keys=True) for v in values] if self.encoded else list(values)

    def value_of(self, sampled: Any) -> Any:
        """The recipe value for what the tuner sampled."""
        return json.loads(sampled) if self.encoded else sampled

    def candidates(self) -> list[Any]:
        """Recipe values that together exercise every shape this space can take (for checks)."""
        if self.kind == "choice":
            return list(self.settings["values"])
        if self.kind == "boolean":
            return [False, True]
        return [self.settings["min"], self.settings["max"]]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {json.dumps(self.settings['values'])}"
        if self.kind == "boolean":
            return "true or false"
        s = self.settings
        return f"{self.kind} in [{s['min']}, {s['max']}] ({s['sampling']})"


def is_space(value: Any) -> bool:
    """Whether `value` is written as a search space (a mapping with a space kind as key)."""
    return isinstance(value, dict) and any(k in KINDS for k in value)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every search space under `value`, depth first, in recipe order."""
    if is_space(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if not path and key in NOT_SEARCHED:
                continue
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def find_spaces(mapping: dict[str, Any]) -> list[Space]:
    """Every search space of a recipe mapping, checked; an `InputError` names a malformed one.

    Spaces under the `tune:` section itself are refused (it configures the search)."""
    for path, _ in _walk(mapping.get("tune"), "tune"):
        raise InputError(f"Expected plain values under 'tune'. Received: a search space at '{path}'.")
    return [_check(path, value) for path, value in _walk(mapping, "")]


def reject_spaces(mapping: dict[str, Any]) -> None:
    """An `InputError` naming the first search space of a recipe that is about to be trained."""
    for path, value in _walk(mapping, ""):
        raise InputError(
            f"Expected a value at '{path}'. Received: the search space {json.dumps(value)}, which only "
            "`edgekeras tune` (ek.tune) samples. Run `edgekeras tune RECIPE`, or write one value there."
        )


def substitute(mapping: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the recipe mapping with each space replaced by `values[path]` (recipe values)."""

    def fill(value, path):
        if is_space(value):
            return copy.deepcopy(values[path])
        if isinstance(value, dict):
            return {
                k: v if not path and k in NOT_SEARCHED else fill(v, f"{path}.{k}" if path else str(k))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [fill(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return fill(mapping, "")


def _check(path: str, value: dict[str, Any]) -> Space:
    forms = "{choice: [..]}, {int: {min, max, step}}, {float: {min, max, sampling}} or {boolean: {}}"
    if len(value) != 1:
        raise InputError(
            f"Expected a search space at '{path}' to have one key: {forms}. Received: {json.dumps(value)}."
        )
    kind, spec = next(iter(value.items()))
    if kind == "choice":
        return Space(path, kind, {"values": _choices(path, spec)})
    if kind == "boolean":
        if spec not in (None, {}):
            raise InputError(f"Expected '{path}: {{boolean: {{}}}}' (no settings). Received: {json.dumps(value)}.")
        return Space(path, kind, {})
    settings = check_section(spec, _RANGE_FIELDS[kind], f"{path}.{kind}")
    low, high = settings["min"], settings["max"]
    if low > high:
        raise InputError(f"Expected '{path}.{kind}.min' <= max. Received: min {low} > max {high}.")
    if settings["sampling"] != "linear" and low <= 0:
        raise InputError(
            f"Expected '{path}.{kind}.min' > 0 for {settings['sampling']} sampling. Received: {low}. "
            "Use sampling: linear, or a positive range."
        )
    if settings["step"] is not None and settings["step"] <= 0:
        raise InputError(f"Expected '{path}.{kind}.step' > 0. Received: {settings['step']}.")
    return Space(path, kind, settings)


def _choices(path: str, spec: Any) -> list[Any]:
    if not isinstance(spec, list) or not spec:
        raise InputError(f"Expected '{path}.choice' to be a non-empty list of values. Received: {json.dumps(spec)}.")
    texts = [json.dumps(v, sort_keys=True) for v in spec]
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise InputError(f"Expected different values in '{path}.choice'. Received: {', '.join(repeated)} twice.")
    for i, option in enumerate(spec):
        for inner, _ in _walk(option, f"{path}.choice[{i}]"):
            raise InputError(f"Expected plain values in '{path}.choice'. Received: a search space at '{inner}'.")
    return list(spec)
