"""Every public export of edgekeras is annotated: each parameter and the return of each function,
and of each public method, property and `__init__` of the classes they are or return.

The classes checked are found, not listed: the return annotations of the exports (and of the
methods of the classes found, and the field annotations of dataclasses) name them. mypy then
checks the annotations against the code (`make lint`, [tool.mypy] in pyproject.toml); this
test keeps new API from landing untyped. Nothing here imports TensorFlow.
"""

import ast
import importlib
import inspect
import re
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

import edgekeras
from edgekeras import _API

INIT = Path(edgekeras.__file__)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _missing(function):
    """The names of `function`'s unannotated parameters (self/cls aside), and 'return'."""
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _own(cls):
    """{name: member} that edgekeras' own classes in `cls`'s MRO define: public names and `__init__`."""
    members = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("edgekeras"):
            continue
        for name, value in vars(klass).items():
            if name == "__init__" or not name.startswith("_"):
                members[name] = value
    return members


def _callables(cls):
    """(name, function) for each method, classmethod, staticmethod and property getter of `cls`."""
    for name, value in _own(cls).items():
        if isinstance(value, property):
            yield name, value.fget
        elif isinstance(value, (classmethod, staticmethod)):
            yield name, value.__func__
        elif inspect.isfunction(value):
            yield name, value


def _type_checking_imports(module):
    """{name: (object, the module it is imported from)} imported from edgekeras under the
    module's `if TYPE_CHECKING:`."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and (statement.module or "").startswith("edgekeras"):
                    imported = importlib.import_module(statement.module)
                    for alias in statement.names:
                        found[alias.asname or alias.name] = (getattr(imported, alias.name), imported)
    return found


def _classes_named(annotation, module):
    """edgekeras classes an annotation (a string, as `from __future__ import annotations` keeps
    it) names, looked up where it was written; type aliases (strings, in `edgekeras.hints` or
    beside the classes they name) are followed into the module that defines them."""
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", str(annotation))
    imported = _type_checking_imports(module)
    namespace = {**vars(module), **{name: value for name, (value, _) in imported.items()}}
    found = set()
    for name in IDENTIFIER.findall(annotation):
        head, *rest = name.split(".")
        value = namespace.get(head)
        for part in rest:
            value = getattr(value, part, None)
        if isinstance(value, str) and head in namespace:  # a TypeAlias written as a string
            home = imported[head][1] if head in imported else module
            found |= _classes_named(value, home)
        elif inspect.isclass(value) and value.__module__.startswith("edgekeras"):
            found.add(value)
    return found


def _exports():
    return {name: getattr(edgekeras, name) for name in sorted(_API)}


def _returned(function):
    return _classes_named(inspect.signature(function).return_annotation, sys.modules[function.__module__])


def _reachable_classes():
    """Exported classes, plus every edgekeras class an export's or a found class's return
    annotation (or dataclass field) names, transitively."""
    todo = []
    for value in _exports().values():
        todo += [value] if inspect.isclass(value) else sorted(_returned(value), key=str)
    seen = {}
    while todo:
        cls = todo.pop()
        if cls in seen.values():
            continue
        seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
        for _, function in _callables(cls):
            todo += _returned(function)
        if is_dataclass(cls):
            for f in fields(cls):
                todo += _classes_named(f.type, sys.modules[cls.__module__])
    return seen


CLASSES = _reachable_classes()


def test_the_type_checker_sees_what_the_lazy_loader_returns():
    """`edgekeras/__init__.py` imports every `_API` name under `if TYPE_CHECKING:` from the
    module and attribute `__getattr__` loads it from, so `ek.convert` is typed for users."""
    typed = {}
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                for alias in statement.names:
                    typed[alias.asname or alias.name] = f"{statement.module}:{alias.name}"
    by_object = {name: getattr(importlib.import_module(m), a) for name, (m, a) in _split(typed).items()}
    assert sorted(typed) == sorted(_API)
    for name in _API:
        assert by_object[name] is getattr(edgekeras, name), f"{name}: {typed[name]} is not {_API[name]}"


def _split(mapping):
    return {k: tuple(v.split(":")) for k, v in mapping.items()}


@pytest.mark.parametrize("name", sorted(n for n, v in _exports().items() if not inspect.isclass(v)))
def test_exported_functions_are_annotated(name):
    function = getattr(edgekeras, name)
    assert _missing(function) == [], f"ek.{name} ({function.__module__}) lacks annotations"


@pytest.mark.parametrize("qualname", sorted(CLASSES))
def test_public_classes_are_annotated(qualname):
    cls = CLASSES[qualname]
    missing = {name: m for name, function in _callables(cls) if (m := _missing(function))}
    assert missing == {}, f"{qualname}: unannotated {missing}"


def test_the_classes_the_api_returns_are_found():
    names = {qualname.rsplit(".", 1)[-1] for qualname in CLASSES}
    expected = {"Run", "RunFolder", "Recipe", "DataBundle", "Split", "KerasModel", "TensorSpec", "Artifact"}
    expected |= {"Manifest", "ValidationResult", "OutputParity", "Inspection", "LayerReport", "TensorError"}
    expected |= {"BenchResult", "Report", "IOTensor"}
    assert expected <= names, sorted(expected - names)


def test_the_check_finds_what_is_missing():
    def untyped(a, b: int, *args, **kwargs) -> None:
        pass

    def no_return(self, a: int):
        pass

    assert _missing(untyped) == ["a", "args", "kwargs"]
    assert _missing(no_return) == ["return"]
