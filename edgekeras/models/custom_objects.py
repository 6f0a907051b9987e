"""Custom Keras objects (layers, models, losses, metrics, activations) from user modules.

A recipe names them `module:name`; a subclassed model or custom layer can also arrive inside
a model a `python` function builds. Each is registered with Keras' serialization under the
name Keras writes into saved configs, so a saved `.keras` file reloads. A run folder records
them in `run.json` (`custom_objects`, `import_paths`) and loading the folder imports them
again; a bare file takes `--custom-objects MODULE` (`custom_objects=[...]`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import sys
from pathlib import Path

from edgekeras.errors import InputError, suggest

REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Keras base classes whose subclasses in a custom module are registered when only the module
# is named (`--custom-objects mymodule`).
_BASES = (
    "layers.Layer",
    "losses.Loss",
    "metrics.Metric",
    "optimizers.Optimizer",
    "optimizers.schedules.LearningRateSchedule",
    "regularizers.Regularizer",
    "initializers.Initializer",
    "constraints.Constraint",
)


@contextlib.contextmanager
def importable_from(*folders):
    """Puts `folders` at the front of sys.path for the block (modules stay imported after)."""
    added = []
    for folder in folders:
        if folder is None:
            continue
        folder = str(Path(folder).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
            added.append(folder)
    try:
        yield
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def refs_in(value):
    """Every `module:name` string in a nested recipe structure (keys and values), in order."""
    found = []

    def walk(v):
        if isinstance(v, str) and REF.match(v):
            found.append(v)
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(k)
                walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(value)
    return list(dict.fromkeys(found))


def register(obj):
    """Registers `obj` with Keras under the name Keras writes for it in saved configs."""
    import keras

    name = keras.saving.get_registered_name(obj)
    keras.saving.get_custom_objects().setdefault(name, obj)
    return name


def is_custom(obj):
    """True for a class or function that does not come from Keras itself."""
    module = getattr(obj, "__module__", "") or ""
    return not (module == "keras" or module.startswith(("keras.", "tensorflow", "tf_keras")))


def custom_classes_in(model):
    """`module:Class` of each layer/model class in `model` that is not Keras' own; each is
    registered so that `model.save` then `load_model` round-trips in this process too."""
    refs = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        cls = type(layer)
        if is_custom(cls):
            register(cls)
            if cls.__module__ != "__main__":  # a script's classes cannot be imported again
                refs.append(f"{cls.__module__}:{cls.__qualname__}")
    return list(dict.fromkeys(refs))


def _keras_bases():
    import keras

    bases = []
    for dotted in _BASES:
        obj = keras
        for part in dotted.split("."):
            obj = getattr(obj, part)
        bases.append(obj)
    return tuple(bases)


def _import_module(name, where):
    if name.endswith(".py"):  # a file path: its folder goes on sys.path while it is imported
        path = Path(name)
        if not path.is_file():
            raise InputError(
                f"Expected {where} to name a Python module or an existing .py file. Received: '{name}', "
                "which does not exist."
            )
        with importable_from(path.parent):
            return _import_module(path.stem, where)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise InputError(
            f"Expected {where} to name an importable Python module. Received: '{name}' ({e}). "
            "Put the module in the current folder, next to the recipe, or on PYTHONPATH."
        ) from None


def import_refs(refs, where="--custom-objects"):
    """Imports each `module:name` (that object) or `module` (every Keras object it defines)
    and registers them with Keras. Returns the registered objects."""
    objects = []
    for ref in refs:
        module_name, _, attr = str(ref).partition(":")
        module = _import_module(module_name, where)
        if attr:
            if not hasattr(module, attr):
                public = [n for n in vars(module) if not n.startswith("_")]
                raise InputError(
                    f"Expected module '{module_name}' to define '{attr}' (from {where}). "
                    f"Received: no such name.{suggest(attr, public)}"
                )
            found = [getattr(module, attr)]
        else:
            bases = _keras_bases()
            found = [
                obj
                for name, obj in vars(module).items()
                if not name.startswith("_")
                and getattr(obj, "__module__", None) == module.__name__
                and ((inspect.isclass(obj) and issubclass(obj, bases)) or inspect.isfunction(obj))
            ]
        for obj in found:
            register(obj)
        objects.extend(found)
    return objects


_MISSING = re.compile(r"Could not locate (\w+) '([^']+)'")
_MODULE = re.compile(r"'module': '([^']+)'")


def missing_object_message(text, path, remedy):
    """An InputError message for Keras' 'Could not locate class X' on loading `path`, or None.

    `remedy` says how to give the module, formatted with `module` (`model_io.Remedies`)."""
    match = _MISSING.search(text)
    if not match:
        return None
    kind, name = match.groups()
    module = _MODULE.search(text[match.end() :])
    hint = module.group(1) if module and not module.group(1).startswith("keras") else "MODULE"
    return (
        f"Expected every custom object in '{path}' to be registered with Keras. Received: the "
        f"custom {kind} '{name}', which is not. {remedy.format(module=hint)}."
    )
