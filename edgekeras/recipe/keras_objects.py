"""Turns recipe entries into Keras objects through Keras' own classes and deserialization.

A recipe writes a Keras object the way Keras serializes it: a string identifier
(`sparse_categorical_crossentropy`), the short form `{ClassName: {config}}`, or Keras' full
`{class_name: ..., config: ...}`. Custom objects are `module:name`. Nothing here lists
layers or optimizers: the namespaces are read from Keras itself, so everything Keras knows
works, and a misspelt name is answered with the closest name Keras has.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re

from edgekeras.errors import InputError, suggest

# Recipe namespace -> (public Keras module, base class name in that module or None).
NAMESPACES = {
    "layers": ("keras.layers", "Layer"),
    "optimizers": ("keras.optimizers", "Optimizer"),
    "schedules": ("keras.optimizers.schedules", "LearningRateSchedule"),
    "losses": ("keras.losses", "Loss"),
    "metrics": ("keras.metrics", "Metric"),
    "callbacks": ("keras.callbacks", "Callback"),
    "regularizers": ("keras.regularizers", "Regularizer"),
    "initializers": ("keras.initializers", "Initializer"),
    "constraints": ("keras.constraints", "Constraint"),
    "activations": ("keras.activations", None),
}
# Where a nested {ClassName: config} is looked up, in order (e.g. a schedule inside Adam).
_NESTED_ORDER = [
    "schedules",
    "regularizers",
    "initializers",
    "constraints",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "callbacks",
]
# Namespaces whose string identifiers Keras resolves itself (compile() takes them as is).
_STRING_GETTERS = {"losses", "metrics", "optimizers", "activations"}
_CUSTOM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@functools.cache
def _module(namespace):
    return importlib.import_module(NAMESPACES[namespace][0])


@functools.cache
def classes(namespace):
    """{name: class} of every public class Keras has in `namespace`."""
    mod = _module(namespace)
    base_name = NAMESPACES[namespace][1]
    base = getattr(mod, base_name) if base_name else None
    out = {}
    for name, obj in vars(mod).items():
        if inspect.isclass(obj) and not name.startswith("_") and (base is None or issubclass(obj, base)):
            out[name] = obj
    return out


@functools.cache
def identifiers(namespace):
    """Names usable as plain strings in `namespace` (functions, and class names)."""
    mod = _module(namespace)
    names = {n for n, o in vars(mod).items() if not n.startswith("_") and callable(o) and not inspect.ismodule(o)}
    if namespace == "metrics":
        names |= {"accuracy", "acc", "crossentropy", "ce"}
    if namespace == "optimizers":
        names |= {n.lower() for n in names}
    return names


def _keras_knows(namespace, identifier):
    """True if Keras' own `get()` for the namespace accepts the string (e.g. 'adam')."""
    try:
        return _module(namespace).get(identifier) is not None
    except (ValueError, TypeError):
        return False


def import_custom(ref, path):
    """Imports `module:name`; registers it with Keras so saved models reload."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(
            f"Expected '{path}' to name an importable module. Received: '{ref}' "
            f"({e}). Put the module on PYTHONPATH or next to the recipe."
        ) from None
    if not hasattr(module, attr):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise InputError(
            f"Expected module '{module_name}' to define '{attr}' (from '{path}'). "
            f"Received: no such name.{suggest(attr, public)}"
        )
    obj = getattr(module, attr)
    import keras

    registered = keras.saving.get_custom_objects()
    registered.setdefault(attr, obj)
    return obj


def is_short_form(value):
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(next(iter(value)), str)
        and "class_name" not in value
        and (next(iter(value))[:1].isupper() or _CUSTOM.match(next(iter(value))))
        and (isinstance(next(iter(value.values())), dict) or next(iter(value.values())) is None)
    )


def resolve(spec, namespace, path):
    """Builds the Keras object `spec` describes in `namespace`; errors name `path`.

    Strings Keras resolves itself (loss/metric/optimizer/activation identifiers) are
    checked and returned as strings, so `compile()` keeps its own shape-dependent choices
    (e.g. which accuracy `"accuracy"` means).
    """
    if isinstance(spec, str):
        if _CUSTOM.match(spec):
            obj = import_custom(spec, path)
            return obj() if inspect.isclass(obj) else obj
        if namespace in _STRING_GETTERS:
            if spec not in identifiers(namespace) and not _keras_knows(namespace, spec):
                raise InputError(
                    f"Unknown {namespace[:-1]} '{spec}' at '{path}'.{suggest(spec, identifiers(namespace))} "
                    f"Write a Keras identifier, {{ClassName: {{config}}}}, or module:name for a custom one."
                )
            return spec
        if spec in classes(namespace):
            return _instantiate(classes(namespace)[spec], {}, spec, path)
        raise InputError(f"Unknown {namespace[:-1]} '{spec}' at '{path}'.{suggest(spec, classes(namespace))}")
    if isinstance(spec, dict) and "class_name" in spec:
        import keras

        if "module" not in spec and set(spec) <= {"class_name", "config"}:
            # Keras cannot place a class without its 'module'; the recipe's namespaces can.
            return resolve(_short_form(spec), namespace, path)
        try:
            return keras.saving.deserialize_keras_object(spec)
        except Exception as e:  # Keras raises TypeError/ValueError with long configs
            raise InputError(f"Could not build the Keras object at '{path}': {_first_line(e)}") from None
    if is_short_form(spec):
        ((name, config),) = spec.items()
        config = dict(config or {})
        if _CUSTOM.match(name):
            cls = import_custom(name, path)
        else:
            cls = classes(namespace).get(name)
            if cls is None:
                raise InputError(f"Unknown {namespace[:-1]} '{name}' at '{path}'.{suggest(name, classes(namespace))}")
        config = {k: _resolve_nested(v, f"{path}.{name}.{k}") for k, v in config.items()}
        return _instantiate(cls, config, name, f"{path}.{name}")
    raise InputError(
        f"Expected '{path}' to be a Keras identifier string, {{ClassName: {{config}}}} or "
        f"module:name. Received: {spec!r}."
    )


def resolve_metrics(specs, path):
    """The metrics a recipe list gives (`path[i]`), each named the same in every run.

    Keras names a metric built without a name after its class, made unique per process
    (`precision`, then `precision_1` in the next `ek.train` in the same process), so history
    columns, run.json and curves would drift. Such a metric is renamed the way Keras names a
    first instance (its class in snake_case; `_1`, `_2` only within this list), as
    `compile()` itself renames metrics it builds from strings. Strings stay for `compile()`.
    """
    metrics = [resolve(spec, "metrics", f"{path}[{i}]") for i, spec in enumerate(specs)]
    auto = [
        i
        for i, (spec, metric) in enumerate(zip(specs, metrics))
        if not isinstance(metric, str)
        and hasattr(metric, "name")
        and not _names_itself(spec)
        and re.fullmatch(rf"{re.escape(snake_case(type(metric).__name__))}(_\d+)?", str(metric.name))
    ]
    taken = {m if isinstance(m, str) else getattr(m, "name", None) for i, m in enumerate(metrics) if i not in auto}
    for i in auto:
        base = name = snake_case(type(metrics[i]).__name__)
        n = 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        metrics[i].name = name
        taken.add(name)
    return metrics


def _names_itself(spec):
    """True if a recipe entry gives the object's `name` in its config."""
    if isinstance(spec, dict) and "class_name" in spec:
        return "name" in (spec.get("config") or {})
    if is_short_form(spec):
        return "name" in (next(iter(spec.values())) or {})
    return False


def snake_case(name):
    """Keras' `to_snake_case` (how it names an unnamed object after its class, e.g. a metric,
    and what its loss functions are called: CategoricalCrossentropy -> categorical_crossentropy)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _short_form(value):
    """{class_name: X, config: C} without 'module' (nested ones too) as {X: C}."""
    if (
        isinstance(value, dict)
        and "class_name" in value
        and "module" not in value
        and set(value) <= {"class_name", "config"}
    ):
        return {value["class_name"]: _short_form(value.get("config") or {})}
    if isinstance(value, dict):
        return {k: _short_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_form(v) for v in value]
    return value


def _resolve_nested(value, path):
    """Resolves {ClassName: config} found inside another object's config."""
    if is_short_form(value):
        name = next(iter(value))
        if _CUSTOM.match(name):
            return resolve(value, "layers", path)
        for namespace in _NESTED_ORDER:
            if name in classes(namespace):
                return resolve(value, namespace, path)
        every = set().union(*(classes(n) for n in _NESTED_ORDER))
        raise InputError(f"Unknown Keras class '{name}' at '{path}'.{suggest(name, every)}")
    if isinstance(value, str) and _CUSTOM.match(value):  # e.g. activation: mymodule:hard_swish
        return import_custom(value, path)
    if isinstance(value, list):
        return [_resolve_nested(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _instantiate(cls, config, name, path):
    params = _init_params(cls)
    for key in config:
        if params is not None and key not in params:
            raise InputError(
                f"Unknown argument '{path}.{key}': {name} does not take '{key}'."
                f"{suggest(key, params)} Valid arguments: {', '.join(sorted(params))}."
            )
    missing = _required_params(cls) - set(config)
    if missing:
        raise InputError(
            f"Missing argument(s) {', '.join(sorted(missing))} at '{path}': {name} requires "
            f"{'them' if len(missing) > 1 else 'it'}, e.g. {{{name}: {{{sorted(missing)[0]}: ...}}}}."
        )
    try:
        # The constructor, not from_config: a recipe gives a partial config (some layers'
        # from_config expects every key get_config() writes, e.g. Rescaling's offset).
        return cls(**config)
    except TypeError as e:
        msg = _first_line(e)
        missing = re.search(r"missing \d+ required positional argument[s]?: (.*)", msg)
        if missing:
            raise InputError(f"Missing argument(s) {missing.group(1)} at '{path}' for {name}.") from None
        raise InputError(f"Invalid configuration at '{path}' for {name}: {msg}") from None
    except ValueError as e:
        raise InputError(f"Invalid configuration at '{path}' for {name}: {_first_line(e)}") from None


def _required_params(cls):
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return set()
    return {
        p.name
        for p in list(sig.parameters.values())[1:]
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _init_params(cls):
    """Keyword names `cls` accepts, or None if it takes **kwargs we can't enumerate."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        has_var_kw = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
            elif p.kind is not p.VAR_POSITIONAL:
                names.add(p.name)
        if not has_var_kw:
            return names
    # Reached the top with **kwargs all the way: Keras layers forward kwargs to Layer/
    # Operation, which accept these.
    return (
        names
        | {
            "name",
            "dtype",
            "trainable",
            "autocast",
            "input_shape",
            "batch_input_shape",
            "input_dim",
            "batch_size",
            "dynamic",
        }
        if names
        else None
    )


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
