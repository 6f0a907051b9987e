"""`model.type: functional` — a Keras model config, inline or from a JSON file.

`config:` is the mapping `model.get_config()` returns (or the full `model.to_json()` form
with `class_name`); `json:` is a file holding either. Multi-input and multi-output models
work as Keras builds them: `compile.loss: {out_a: ..., out_b: ...}` keys losses (and
`loss_weights`, `metrics`) by output name.
"""

from __future__ import annotations

import copy
import json
import re

from edgekeras.errors import InputError, suggest
from edgekeras.models import find_file
from edgekeras.models.custom_objects import import_refs
from edgekeras.recipe.keras_objects import classes
from edgekeras.recipe.schema import Field

FIELDS = {
    "config": Field("dict", None, doc="A Keras model config: what model.get_config() returns."),
    "json": Field("str", None, doc="A JSON file written by model.to_json() (or a get_config() dump)."),
    "custom_objects": Field("strlist", [], doc="Modules (or module:name) defining custom layers it uses."),
}


def build(section, base_dir=None):
    if (section["config"] is None) == (section["json"] is None):
        raise InputError(
            "Expected exactly one of 'model.config' (a Keras model config mapping) and 'model.json' "
            f"(a JSON file). Received: {'both' if section['config'] is not None else 'neither'}."
        )

    import_refs(section["custom_objects"], "'model.custom_objects'")
    if section["config"] is not None:
        return from_config(section["config"], "model.config")
    return from_json_file(section["json"], base_dir, "model.json")


def from_json_file(path, base_dir, key):
    """Builds the model a JSON file describes; errors name the file."""
    path = find_file(path, base_dir, key)
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"Expected a JSON model config in '{path}'. Received: invalid JSON ({e}).") from None
    if not isinstance(config, dict):
        raise InputError(
            f"Expected a JSON object (a Keras model config) in '{path}'. Received: {type(config).__name__}."
        )
    return from_config(config, f"'{path}'")


def from_config(config, where):
    """A model from a `get_config()` mapping or a full `{class_name, config}` serialization.

    Each layer is checked on its own first, so a misspelt class or argument is reported
    with its position (`model.config.layers[2]`) instead of Keras' whole-config dump.
    """
    import keras

    full = "class_name" in config and isinstance(config.get("config"), dict)
    inner = config["config"] if full else config
    layers = inner.get("layers")
    if not isinstance(layers, list) or not layers:
        raise InputError(
            f"Expected {where} to be a Keras model config with a 'layers' list (what "
            f"model.get_config() returns). Received: keys {sorted(config)}."
        )
    base = f"{where}.config" if full else where
    for i, layer in enumerate(layers):
        _check_layer(layer, f"{base}.layers[{i}]")
    config = copy.deepcopy(config)  # Keras writes into it (a Lambda's function); the recipe stays as given
    inner = config["config"] if full else config
    try:
        if full:
            return keras.saving.deserialize_keras_object(config)
        if "input_layers" in inner:
            return keras.Model.from_config(inner)
        return keras.Sequential.from_config(inner)
    except Exception as e:  # Keras raises KeyError/ValueError/TypeError for a broken graph
        raise InputError(
            f"Could not build a Keras model from {where}: {type(e).__name__}: {_first_line(e)}. "
            "Give the mapping model.get_config() returns (layers, input_layers, output_layers)."
        ) from None


def _check_layer(entry, path):
    import keras

    if not isinstance(entry, dict) or "class_name" not in entry:
        raise InputError(f"Expected '{path}' to be a layer config with 'class_name' and 'config'. Received: {entry!r}.")
    name = entry["class_name"]
    known = classes("layers")
    if name not in known and not keras.saving.get_registered_object(entry.get("registered_name") or name):
        raise InputError(
            f"Unknown layer '{name}' at '{path}.class_name'.{suggest(name, known)} A custom layer must be "
            "registered: list the module that defines it in 'model.custom_objects'."
        )
    # A copy: some from_config() write into the config they get (Lambda puts its function there).
    spec = copy.deepcopy({k: v for k, v in entry.items() if k in ("module", "class_name", "config", "registered_name")})
    if name in known:
        spec.setdefault("module", "keras.layers")  # Model.from_config does not need it either
    try:
        keras.layers.deserialize(spec)
    except Exception as e:
        text = _first_line(e)
        root = e  # Keras wraps the class's own complaint (e.g. an unknown argument): show that
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__
        if root is not e:
            text = _first_line(root)
        if "safe_mode" in text:  # Keras' advice names its own API; say what the recipe can do
            raise InputError(
                f"Invalid layer config at '{path}.config' ({name}): it holds a Python lambda's bytecode, "
                "which Keras deserializes only with safe mode off. Set 'model.unsafe: true' if you trust "
                "this config, or use a named function registered with @keras.saving.register_keras_serializable."
            ) from None
        bad = re.search(r"keyword arguments? passed to \w+: \{'(\w+)'", text)
        hint = ""
        if bad and name in known:
            import inspect

            params = [p for p in inspect.signature(known[name].__init__).parameters if p not in ("self", "kwargs")]
            hint = suggest(bad.group(1), params)
        raise InputError(f"Invalid layer config at '{path}.config' ({name}): {text}{hint}") from None


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
