"""The import contract: layers point one way, no cycles, TensorFlow only where models are.

Read from the source (every import statement, function-local ones included), so a cycle or a
layer violation fails here before it can surprise anyone at run time. Imports under
`if TYPE_CHECKING:` are left out: they name types for the checker and never run.
docs/ARCHITECTURE.md draws the same layers. edgekeras' own modules are imported at the top of a module; a
function-local one is allowed only where a top-level import would load Keras (the module
imported defines Keras subclasses) or is listed in LOCAL_IMPORTS with its reason.

`python tests/test_architecture.py` lists every function-local import of an edgekeras module
and whether it can move to the top.
"""

import ast
import os
import subprocess
import sys

import pytest
from conftest import HEAVY_MODULES, REPO, run_without_tensorflow

PACKAGE = REPO / "edgekeras"

# Bottom to top. A module may import from its own layer and the layers below, never above.
# Every module belongs to exactly one layer (a new module is added here on purpose).
LAYERS = [
    (
        "foundation",
        [
            "edgekeras.version",
            "edgekeras.hints",
            "edgekeras.errors",
            "edgekeras.atomic",
            "edgekeras.signature",
            "edgekeras.quiet",
            "edgekeras.progress",
            "edgekeras.units",
            "edgekeras.resources",
            "edgekeras.child_process",
            "edgekeras.recipe.schema",
        ],
    ),
    (
        "artifacts",  # files on disk and the runtimes that run them: never TensorFlow
        [
            "edgekeras.formats",
            "edgekeras.precisions",
            "edgekeras.manifest",
            "edgekeras.artifact",
            "edgekeras.readers",
            "edgekeras.runtimes",
            "edgekeras.devices",
            "edgekeras.remote",
            "edgekeras.bench",
            "edgekeras.targets",
            "edgekeras.quantize_recipes",
            "edgekeras.constraints",
            "edgekeras.inspection.summary",
            "edgekeras.inspection.layer_report",
            "edgekeras.inspection.stats",
            "edgekeras.inspection.scopes",
            "edgekeras.inspection.weights",
            "edgekeras.xnnpack_sparse",
        ],
    ),
    (
        "keras",  # Keras models, data, recipes, exporters
        [
            "edgekeras.keras_model",
            "edgekeras.keras_lean_load",
            "edgekeras.adaptation",
            "edgekeras.heads",
            "edgekeras.head_metrics",
            "edgekeras.model_io",
            "edgekeras.models",
            "edgekeras.data",
            "edgekeras.distribute",
            "edgekeras.recipe",
            "edgekeras.callbacks",
            "edgekeras.plots",
            "edgekeras.loss_check",
            "edgekeras.preprocessing_adapt",
            "edgekeras.qat",
            "edgekeras.pruning",
            "edgekeras.kfold",
            "edgekeras.tuning.settings",
            "edgekeras.export",
            "edgekeras.memory_estimate",
        ],
    ),
    (
        "pipeline",  # what the API functions do, over run folders and artifacts
        [
            "edgekeras.run_folder",
            "edgekeras.sources",
            "edgekeras.qat.aware",
            "edgekeras.pruning.prune",
            "edgekeras.split_export",
            "edgekeras.validation",
            "edgekeras.mixed_precision",
            "edgekeras.conversion_plan",
            "edgekeras.conversion_inputs",
            "edgekeras.conversion",
            "edgekeras.inspection",
            "edgekeras.training_steps",
            "edgekeras.training",
            "edgekeras.launch",
            "edgekeras.doctor",
            "edgekeras.inference",
            "edgekeras.demo_pipeline",
            "edgekeras.coverage",
            "edgekeras.reporting",
            "edgekeras.kfold.run",
            "edgekeras.tuning",
            "edgekeras.deployment",
        ],
    ),
    ("api", ["edgekeras"]),
    ("cli", ["edgekeras.cli", "edgekeras.__main__"]),
]

# Modules that must never import TensorFlow or Keras, directly or through what they import:
# a benchmark, a device and a report need only numpy and one runtime.
NO_TENSORFLOW = [
    "edgekeras",
    "edgekeras.formats",
    "edgekeras.manifest",
    "edgekeras.artifact",
    "edgekeras.runtimes",
    "edgekeras.devices",
    "edgekeras.bench",
    "edgekeras.remote",
    "edgekeras.readers",
    "edgekeras.inspection.weights",
    "edgekeras.xnnpack_sparse",
]
HEAVY = ("tensorflow", "keras", "tf2onnx", "tf_keras")
# Imported inside the functions that need them (never at a module's top), but by the modules that
# define Keras subclasses: they import keras at their top and are themselves imported lazily.
# keras_tuner imports Keras: the one module subclassing its tuner (tuning.tuner) is loaded lazily too.
DEFERRED = HEAVY + ("onnxruntime", "ai_edge_litert", "ai_edge_quantizer", "keras_tuner")

# Function-local imports of edgekeras modules that load no Keras at import time, with the reason
# a top-level import is not possible. (module, imported module) -> reason.
_RECIPE_CYCLE = (
    "edgekeras.recipe's __init__ runs on any import of recipe.schema or recipe.keras_objects, which "
    "data, models, qat and pruning import at their top: a top-level import would be a cycle through the "
    "package __init__"
)
LOCAL_IMPORTS = {
    ("edgekeras.recipe", "edgekeras.data"): _RECIPE_CYCLE,
    ("edgekeras.recipe", "edgekeras.models"): _RECIPE_CYCLE,
    ("edgekeras.recipe", "edgekeras.qat"): _RECIPE_CYCLE,
    ("edgekeras.recipe", "edgekeras.pruning"): _RECIPE_CYCLE,
    ("edgekeras.recipe", "edgekeras.kfold"): _RECIPE_CYCLE,
    ("edgekeras.recipe", "edgekeras.tuning.settings"): _RECIPE_CYCLE,
}


def _modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name):
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(module):
    """[(import statement, where)] for every import statement of a module; where is "top" (runs
    when the module is imported; class bodies included), "function" or "type_checking"."""
    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, where))
            elif isinstance(child, ast.If) and _is_type_checking(child.test) and where == "top":
                visit(child, "type_checking")
                continue
            inner = "function" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else where
            visit(child, inner)

    visit(ast.parse(MODULES[module].read_text()), "top")
    return found


def _targets(module, node):
    """{imported edgekeras module}, {imported third-party top-level name} of one import statement."""
    path = MODULES[module]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from pkg import mod` imports pkg.mod (and runs pkg's __init__, drawn as pkg.mod's own edge)
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]
    own, other = set(), set()
    for name in names:
        if name.split(".")[0] == "edgekeras":
            target = _resolve(name)
            if target and target != module:
                own.add(target)
        else:
            other.add(name.split(".")[0])
    return own, other


def _imports(module, where=("top", "function")):
    """{imported edgekeras module}, {imported third-party top-level name} — every statement that
    runs (function-local ones too; not `if TYPE_CHECKING:` imports, which only the type checker reads)."""
    own, other = set(), set()
    for node, at in _statements(module):
        if at in where:
            mods, names = _targets(module, node)
            own |= mods
            other |= names
    return own, other


# What runs (for what an import loads) and every statement, type-checking ones too (for layers
# and cycles: the shared import_cycles tool and a reader see those edges as well).
GRAPH = {m: _imports(m) for m in MODULES}
EVERY_IMPORT = {m: _imports(m, where=("top", "function", "type_checking")) for m in MODULES}


def _layer_of(module):
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer_of(m) is None)
    assert not missing, f"add these modules to a layer in tests/architecture/test_architecture.py: {missing}"


def test_imports_point_down_the_layers():
    wrong = []
    for module, (own, _) in EVERY_IMPORT.items():
        for target in own:
            if _layer_of(target) > _layer_of(module):
                wrong.append(
                    f"{module} ({LAYERS[_layer_of(module)][0]}) imports {target} ({LAYERS[_layer_of(target)][0]})"
                )
    assert not wrong, "\n".join(sorted(wrong))


def _cycles():
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in EVERY_IMPORT[v][0]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in EVERY_IMPORT:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_counting_every_import_statement():
    assert _cycles() == []


def _reachable(start):
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += list(GRAPH[m][0])
    return seen


@pytest.mark.parametrize("module", NO_TENSORFLOW)
def test_no_tensorflow_below_the_models(module):
    """Statically: nothing these modules can import (function-local imports too) imports TF."""
    prefix_members = [m for m in MODULES if m == module or m.startswith(module + ".")]
    if module == "edgekeras":  # the package itself: only its __init__, whose API is lazy
        prefix_members = ["edgekeras"]
    heavy = []
    for start in prefix_members:
        for m in _reachable(start):
            found = sorted(set(HEAVY) & GRAPH[m][1])
            if found:
                heavy.append(f"{m} imports {found} (reached from {start})")
    assert not heavy, "\n".join(sorted(set(heavy)))


def _parents(module):
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))} & MODULES.keys()


# What importing a module runs: its top-level statements, after its parent packages' __init__.
AT_IMPORT = {m: _imports(m, where=("top",)) for m in MODULES}
AT_IMPORT = {m: (own | _parents(m), other) for m, (own, other) in AT_IMPORT.items()}


def _loaded_by_import(start):
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += list(AT_IMPORT[m][0])
    return seen


# Modules whose import loads Keras (or another deferred library): they define Keras subclasses.
HEAVY_AT_IMPORT = {m for m in MODULES if any(set(DEFERRED) & AT_IMPORT[d][1] for d in _loaded_by_import(m))}


KERAS_TUNER_BASES = ("BaseTuner", "keras_tuner.Tuner", "keras_tuner.engine.base_tuner.BaseTuner")


def _defines_keras_subclass(module):
    tree = ast.parse(MODULES[module].read_text())
    return any(
        ast.unparse(base).startswith("keras.") or ast.unparse(base) in KERAS_TUNER_BASES
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for base in node.bases
    )


def test_heavy_libraries_load_at_import_only_where_keras_classes_are_defined():
    """TensorFlow, Keras, tf2onnx, onnxruntime and LiteRT are imported inside the functions that
    use them. Only a module that subclasses Keras classes loads Keras when imported (and is itself
    imported inside functions): importing any other module loads none of them."""
    wrong = []
    for m in sorted(HEAVY_AT_IMPORT):
        direct = set(DEFERRED) & AT_IMPORT[m][1]
        if not _defines_keras_subclass(m):
            via = sorted(d for d in _loaded_by_import(m) if set(DEFERRED) & AT_IMPORT[d][1])
            libs = sorted(set().union(*(set(DEFERRED) & AT_IMPORT[d][1] for d in via)))
            wrong.append(f"{m} loads {libs} at import" + (f" (through {via})" if via != [m] else ""))
        elif direct - {"keras", "keras_tuner"}:
            wrong.append(f"{m} imports {sorted(direct - {'keras', 'keras_tuner'})} at its top")
    assert not wrong, (
        "\n".join(wrong) + "\nimport them (or the module that needs them) inside the functions that use them"
    )


def _local_imports():
    """[(module, line, statement, imported module, verdict)]: every function-local import of an
    edgekeras module; verdict None means it belongs at the top of the module."""
    found = []
    for module in sorted(MODULES):
        for node, where in _statements(module):
            if where != "function":
                continue
            for target in sorted(_targets(module, node)[0]):
                verdict = LOCAL_IMPORTS.get((module, target))
                if verdict is None and target in HEAVY_AT_IMPORT and module not in HEAVY_AT_IMPORT:
                    verdict = "loads Keras at import (defines Keras subclasses)"
                found.append((module, node.lineno, ast.unparse(node), target, verdict))
    return found


def test_own_modules_are_imported_at_the_top():
    """A function-local import of an edgekeras module is allowed only where the top would load
    Keras, or where LOCAL_IMPORTS says why not (a cycle through a package __init__)."""
    wrong = [
        f"{module}:{line}: `{statement}` inside a function: move it to the top of the module "
        f"({target} loads no Keras at import), or list it in LOCAL_IMPORTS with the reason it cannot"
        for module, line, statement, target, verdict in _local_imports()
        if verdict is None
    ]
    assert not wrong, "\n".join(wrong)
    used = {(module, target) for module, _, _, target, _ in _local_imports()}
    assert set(LOCAL_IMPORTS) <= used, f"stale LOCAL_IMPORTS entries: {sorted(set(LOCAL_IMPORTS) - used)}"


def test_every_module_can_be_imported_first():
    """Each module imported first in a fresh interpreter: a cycle through a package __init__ (which
    the graph above does not draw) fails here as an ImportError, not in a user's session."""
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'edgekeras' or m.startswith('edgekeras.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "sys.stderr.write('\\n'.join(['FAILED'] + failed) if failed else 'ALL IMPORTED')\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PACKAGE.parent)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stderr.endswith("ALL IMPORTED"), r.stderr[-5000:]


def test_nothing_below_the_cli_imports_it():
    offenders = [
        m
        for m, (own, _) in GRAPH.items()
        if not m.startswith("edgekeras.cli") and m != "edgekeras.__main__"
        if any(t.startswith("edgekeras.cli") for t in own)
    ]
    assert offenders == []


def test_import_edgekeras_and_every_help_load_no_tensorflow():
    code = (
        "import edgekeras\nfrom edgekeras.cli import COMMANDS\n"
        "assert run_cli('--help').exit_code == 0\n"
        "for name in COMMANDS:\n"
        "    r = run_cli(name, '--help')\n"
        "    assert r.exit_code == 0, (name, r.output)\n"
    )
    run_without_tensorflow(code, heavy=HEAVY_MODULES)


if __name__ == "__main__":
    for module, line, statement, target, verdict in _local_imports():
        print(
            f"{module}:{line}: {statement}\n    {verdict or 'move to the top: ' + target + ' loads no Keras at import'}"
        )
    print(f"function-local imports of edgekeras modules: {len(_local_imports())}")
