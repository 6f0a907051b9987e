"""The import contract: layers point one way, no cycles, TensorFlow only where models are.

Read from the source (every import statement, function-local ones included), so a cycle or a
layer violation fails here before it can surprise anyone at run time. docs/ARCHITECTURE.md
draws the same layers.
"""

import ast
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
            "edgekeras.errors",
            "edgekeras.atomic",
            "edgekeras.signature",
            "edgekeras.quiet",
            "edgekeras.progress",
            "edgekeras.units",
            "edgekeras.resources",
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
            "edgekeras.inspection.stats",
            "edgekeras.inspection.scopes",
        ],
    ),
    (
        "keras",  # Keras models, data, recipes, exporters
        [
            "edgekeras.keras_model",
            "edgekeras.adaptation",
            "edgekeras.heads",
            "edgekeras.head_metrics",
            "edgekeras.model_io",
            "edgekeras.models",
            "edgekeras.data",
            "edgekeras.recipe",
            "edgekeras.callbacks",
            "edgekeras.plots",
            "edgekeras.loss_check",
            "edgekeras.preprocessing_adapt",
            "edgekeras.qat",
            "edgekeras.export",
        ],
    ),
    (
        "pipeline",  # what the API functions do, over run folders and artifacts
        [
            "edgekeras.run_folder",
            "edgekeras.sources",
            "edgekeras.qat.aware",
            "edgekeras.split_export",
            "edgekeras.validation",
            "edgekeras.conversion_plan",
            "edgekeras.conversion_inputs",
            "edgekeras.conversion",
            "edgekeras.inspection",
            "edgekeras.training",
            "edgekeras.inference",
            "edgekeras.demo_pipeline",
            "edgekeras.coverage",
            "edgekeras.reporting",
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
]
HEAVY = ("tensorflow", "keras", "tf2onnx", "tf_keras")


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


def _imports(module):
    """{imported edgekeras module}, {imported third-party top-level name} — every statement."""
    path = MODULES[module]
    own, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import mod` imports pkg.mod (and runs pkg's __init__, drawn as pkg.mod's own edge)
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "edgekeras":
                target = _resolve(name)
                if target and target != module:
                    own.add(target)
            else:
                other.add(name.split(".")[0])
    return own, other


GRAPH = {m: _imports(m) for m in MODULES}


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
    for module, (own, _) in GRAPH.items():
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
        for w in GRAPH[v][0]:
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
    for v in GRAPH:
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
