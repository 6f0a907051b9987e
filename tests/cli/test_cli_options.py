"""Every option a message suggests exists where the message can appear.

Statically, over the package's source: every `--option` a message or a help text mentions
exists on some command; every option the model-loading code suggests exists on every
command that loads a Keras model from a path; a command's help mentions only its own options.
Dynamically, through the CLI: each command that loads a model, handed one it cannot load
without a setting (a custom layer, a Lambda, a weights-only file), exits 2 suggesting only
options it has, and loads the model once given them; `train` names the recipe keys instead.
"""

from __future__ import annotations

import ast
import re
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO, assert_bad_input, invoke

from edgekeras.cli import COMMANDS, cli

PACKAGE = REPO / "edgekeras"
OPTION = re.compile(r"(?<![\w-])(?<!var\()--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w:-])")
# Not the edgekeras command line: the standalone on-device runner has its own (argparse) flags.
OTHER_COMMAND_LINES = ("devices/",)
# Modules whose messages any model load can raise: their options must exist on every command
# in MODEL_LOADERS.
MODEL_LOADING = ("model_io.py", "models/custom_objects.py")

# command -> its arguments, with MODEL standing for a Keras model file and ARTIFACT / DATA / RECIPE
# for an artifact converted from it, an .npz of labelled inputs and a recipe training on it.
MODEL_LOADERS = {
    "convert": ["MODEL", "--format", "tflite", "--no-validate", "--out", "out"],
    "validate": ["ARTIFACT", "--reference", "MODEL"],
    "inspect": ["ARTIFACT", "--layers", "--reference", "MODEL", "--samples", "4"],
    "evaluate": ["MODEL", "--data", "DATA"],
    "predict": ["MODEL", "--inputs", "DATA"],
    "prune": ["MODEL", "--sparsity", "0.5", "--epochs", "1", "--recipe", "RECIPE", "--no-export", "--out", "pruned"],
    # no --calibration: only float candidates; the first one (fp32) is measured
    "deploy": [
        "MODEL",
        "--target",
        "x86-64-litert",
        "--min-cosine",
        "0.9",
        "--data",
        "DATA",
        "--max-candidates",
        "1",
        "--runs",
        "2",
        "--out",
        "dep",
    ],
}
# Commands that load no Keras model from a path they are given, and why.
NO_MODEL_PATH = {
    "train": "builds the recipe's model; `model.type: file` takes its settings as recipe keys (tested below)",
    "bench": "runs artifacts in their runtimes",
    "demo": "trains its own model",
    "report": "reads manifests",
    "targets": "reads target YAML files",
    "coverage": "builds its own models",
    "data": "takes a run folder, whose run.json records its custom objects (--custom-objects/--unsafe add to them)",
    "launch": "starts `edgekeras train` workers, which build the recipe's model",
    "doctor": "probes the runtimes with tiny models of its own",
    "tune": "builds the recipe's model for each trial, as train does",
}


def command(name):
    return cli.get_command(None, name)


def options_of(cmd):
    ctx = cli.make_context("edgekeras", ["--help"], resilient_parsing=True)
    return {o for p in cmd.get_params(ctx) for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


def mentioned(text):
    return set(OPTION.findall(text))


def prose_literals(path):
    """The string literals of a module that read as prose (a bare '--threads' is an argv
    item or a declaration, not a message), f-string parts included."""
    tree = ast.parse(path.read_text())
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"\s", node.value.strip())
    ]


def package_mentions():
    """{option: [modules whose messages mention it]} over the package's own command line."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(OTHER_COMMAND_LINES):
            continue
        for text in prose_literals(path):
            for option in mentioned(text):
                found.setdefault(option, []).append(rel)
    return found


def test_every_command_is_classified():
    """A new command must say whether it loads a Keras model (and then gets the checks below)."""
    assert set(MODEL_LOADERS) | set(NO_MODEL_PATH) == set(COMMANDS)
    assert not set(MODEL_LOADERS) & set(NO_MODEL_PATH)


def test_every_mentioned_option_exists_on_some_command():
    everywhere = options_of(cli).union(*(options_of(command(n)) for n in COMMANDS))
    missing = {o: sorted(set(m)) for o, m in package_mentions().items() if o not in everywhere}
    assert not missing, f"messages mention options no command has: {missing}"


@pytest.mark.parametrize("name", sorted(MODEL_LOADERS))
def test_model_loading_messages_suggest_options_the_command_has(name):
    """What loading a model can tell the user to pass, every command that loads one takes."""
    suggested = {}
    for rel in MODEL_LOADING:
        for text in prose_literals(PACKAGE / rel):
            for option in mentioned(text):
                suggested.setdefault(option, set()).add(rel)
    assert {"--custom-objects", "--unsafe", "--architecture"} <= set(suggested)  # the scan sees them
    missing = {o: sorted(m) for o, m in suggested.items() if o not in options_of(command(name))}
    assert not missing, f"`edgekeras {name}` loads a Keras model but has no {sorted(missing)}: suggested by {missing}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_mentions_only_the_commands_own_options(name):
    cmd = command(name)
    texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    # `edgekeras other --x` names another command's option
    own_text = re.sub(r"`edgekeras [^`]*`", "", "\n".join(texts))
    assert mentioned(own_text) <= options_of(cmd) | options_of(cli)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_takes_verbosity_and_help(name):
    assert {"--verbose", "--quiet", "--help"} <= options_of(command(name))
    ctx = cli.make_context("edgekeras", ["--help"], resilient_parsing=True)
    short = {o for p in command(name).get_params(ctx) for o in p.opts if not o.startswith("--")}
    assert {"-v", "-q"} <= short


# --------------------------------------------------------------------------- through the CLI

CUSTOM_MODULE = "ek_options_custom"
CUSTOM_SOURCE = """
import keras


class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""


def _classifier(middle):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,), name="x"), middle, keras.layers.Dense(3, activation="softmax", name="probs")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _forget_custom_module():
    """This process forgets the custom module, as a fresh process would not know it."""
    import keras

    keras.saving.get_custom_objects().pop("Doubler", None)
    sys.modules.pop(CUSTOM_MODULE, None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """For each setting a model needs to load: the model file, an artifact of it, and the
    option (with value) that loads it; plus labelled inputs."""
    import importlib

    import keras

    import edgekeras as ek

    root = tmp_path_factory.mktemp("options")
    (root / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_SOURCE)
    sys.path.insert(0, str(root))
    try:
        doubler = importlib.import_module(CUSTOM_MODULE).Doubler
        built = {
            "custom_objects": _classifier(doubler(name="double")),
            "unsafe": _classifier(keras.layers.Lambda(lambda t: t * 2.0, name="double")),
            "architecture": _classifier(keras.layers.Dense(4, name="double")),
        }
        files = {
            "custom_objects": root / "custom.keras",
            "unsafe": root / "lambda.keras",
            "architecture": root / "weights.weights.h5",
        }
        for kind, model in built.items():
            if kind == "architecture":
                model.save_weights(files[kind])
                (root / "architecture.json").write_text(model.to_json())
            else:
                model.save(files[kind])
            ek.convert(model, formats=["tflite"], out=root / "artifacts", name=kind, validate=False)
    finally:
        sys.path.remove(str(root))
        _forget_custom_module()
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", x=rng.random((16, 4), dtype=np.float32), y=rng.integers(0, 3, 16))
    recipe = {  # what `prune --recipe` fine-tunes with: the data (its model section is not used)
        "name": "options",
        "data": {"source": "npz", "path": str(root / "data.npz")},
        "model": {"type": "sequential", "input_shape": [4], "layers": []},
        "compile": {"loss": "sparse_categorical_crossentropy"},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    settings = {
        "custom_objects": ["--custom-objects", CUSTOM_MODULE],
        "unsafe": ["--unsafe"],
        "architecture": ["--architecture", str(root / "architecture.json")],
    }
    return {
        kind: {
            "MODEL": files[kind],
            "ARTIFACT": root / "artifacts" / f"{kind}-tflite-fp32.tflite",
            "DATA": root / "data.npz",
            "RECIPE": root / "recipe.yaml",
            "setting": settings[kind],
            "module_dir": root,
        }
        for kind in built
    }


@pytest.fixture
def fresh(monkeypatch):
    _forget_custom_module()
    yield
    _forget_custom_module()


def _args(name, case):
    return [case.get(a, a) for a in MODEL_LOADERS[name]]


@pytest.mark.parametrize("kind", ["custom_objects", "unsafe", "architecture"])
@pytest.mark.parametrize("name", sorted(MODEL_LOADERS))
def test_loading_errors_suggest_only_options_the_command_has(name, kind, models, ws, fresh, monkeypatch):
    case = models[kind]
    monkeypatch.syspath_prepend(str(case["module_dir"]))  # importable, but only if asked for
    failed = invoke(name, *_args(name, case))
    assert_bad_input(failed, case["setting"][0])
    suggested = mentioned(failed.stderr)
    assert suggested <= options_of(command(name)), (
        f"`edgekeras {name}` suggests {sorted(suggested - options_of(command(name)))}, which it does not have:\n"
        f"{failed.describe()}"
    )
    loaded = invoke(name, *_args(name, case), *case["setting"])
    assert loaded.exit_code == 0, loaded.describe()


@pytest.mark.parametrize(
    "kind, recipe_key",
    [("custom_objects", "model.custom_objects"), ("unsafe", "model.unsafe"), ("architecture", "model.architecture")],
)
def test_train_names_the_recipe_keys_not_options(kind, recipe_key, models, ws, fresh):
    """`model.type: file` in a recipe: the fix is a recipe key; train has no such options."""
    recipe = {
        "name": "from-file",
        "data": {"source": "digits", "flatten": True},
        "model": {"type": "file", "path": str(models[kind]["MODEL"])},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "fit": {"epochs": 1},
    }
    (ws / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    failed = invoke("train", ws / "recipe.yaml", "--out", ws / "run")
    assert_bad_input(failed, recipe_key)
    assert mentioned(failed.stderr) <= options_of(command("train")), failed.describe()


def test_inspect_takes_the_model_options_only_with_layers(models, ws):
    """Without --layers no model is loaded: a model option would be silently ignored."""
    r = invoke("inspect", models["custom_objects"]["ARTIFACT"], "--custom-objects", CUSTOM_MODULE, "--unsafe")
    assert_bad_input(r, "Expected --layers with --custom-objects, --unsafe")
