"""Model types a recipe builds (`model.type`): functional multi-input/multi-output from a Keras
config, `python` (subclassed model, custom layer) imported from the recipe's folder, and
`application` (keras.applications without downloads). Each trained model converts to TFLite
and ONNX fp32 with parity, and custom objects reload in a fresh `edgekeras convert` process.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import yaml
from conftest import FIXTURES, assert_bad_input, invoke, run_script

import edgekeras as ek
from edgekeras.errors import InputError

FIXTURE = FIXTURES / "ek_custom.py"


@pytest.fixture(scope="module")
def recipe_dir(tmp_path_factory):
    """A folder holding the custom-objects module and the recipes that import it."""
    folder = tmp_path_factory.mktemp("recipes")
    shutil.copy(FIXTURE, folder / "ek_custom.py")
    return folder


def write_recipe(folder, name, recipe):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def fp32_parity(run):
    """{format: max abs error} of the run's fp32 artifacts, from their manifests."""
    out = {}
    for art in run.artifacts:
        validation = art.manifest["validation"]
        assert validation["passed"], validation
        out[art.format] = validation["max_abs_error"]
    return out


def two_heads_config():
    import keras

    a, b = keras.Input((6,), name="a"), keras.Input((4,), name="b")
    h = keras.layers.Dense(16, activation="relu", name="shared")(keras.layers.Concatenate(name="cat")([a, b]))
    kind = keras.layers.Dense(3, activation="softmax", name="kind")(h)
    flag = keras.layers.Dense(1, activation="sigmoid", name="flag")(h)
    return keras.Model({"a": a, "b": b}, {"kind": kind, "flag": flag}, name="two_heads")


def test_functional_multi_input_multi_output_trains_and_converts(recipe_dir, tmp_path):
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(400, 6)).astype("float32"), rng.normal(size=(400, 4)).astype("float32")
    np.savez(
        recipe_dir / "multi.npz",
        a=xa,
        b=xb,
        kind=(xa[:, 0] > 0) + (xb[:, 0] > 0.5),
        flag=(xa[:, 1] + xb[:, 1] > 0).astype("float32"),
    )
    recipe = {
        "name": "two-heads",
        "seed": 1,
        "data": {"source": "npz", "path": str(recipe_dir / "multi.npz"), "x": ["a", "b"], "y": ["kind", "flag"]},
        "model": {"type": "functional", "config": two_heads_config().get_config()},
        "compile": {
            "optimizer": {"AdamW": {"learning_rate": 0.01, "weight_decay": 0.001}},
            "loss": {"kind": "sparse_categorical_crossentropy", "flag": "binary_crossentropy"},
            "loss_weights": {"kind": 1.0, "flag": 0.5},
            "metrics": {"kind": ["accuracy"], "flag": [{"Precision": {}}, {"Recall": {}}]},
        },
        "fit": {"epochs": 2, "callbacks": [{"ModelCheckpoint": {"filepath": "ckpt/best.keras"}}]},
        "export": {"formats": ["tflite", "onnx"], "precisions": ["fp32"]},
    }
    run = ek.train(write_recipe(recipe_dir, "two-heads", recipe), out=tmp_path / "run")
    assert {"kind_accuracy", "flag_precision", "flag_recall", "kind_loss", "flag_loss"} <= set(run.test_metrics)
    # loss_weights apply: the total is kind_loss + 0.5 * flag_loss (Keras averages the parts per
    # batch and the total per sample, hence the tolerance; 1:1 or swapped weights fall far outside)
    m = run.test_metrics
    assert m["loss"] == pytest.approx(m["kind_loss"] + 0.5 * m["flag_loss"], rel=2e-2)
    assert (run.path / "ckpt" / "best.keras").exists()  # ModelCheckpoint's path is in the run folder
    assert sorted(s.name for s in ek.load_model(run.path).outputs) == ["flag", "kind"]
    parity = fp32_parity(run)
    assert set(parity) == {"tflite", "onnx"} and max(parity.values()) < 1e-4


def test_functional_config_with_custom_layer_converts(recipe_dir, tmp_path):
    sys.path.insert(0, str(recipe_dir))
    try:
        import ek_custom
    finally:
        sys.path.remove(str(recipe_dir))
    config = ek_custom.scaled_cnn(filters=4).get_config()
    (recipe_dir / "scaled.json").write_text(json.dumps(config))
    recipe = {
        "name": "scaled",
        "data": {"source": "digits"},
        "model": {"type": "functional", "json": "scaled.json", "custom_objects": ["ek_custom"]},
        "compile": {
            "optimizer": {
                "RMSprop": {
                    "learning_rate": {
                        "ExponentialDecay": {"initial_learning_rate": 0.01, "decay_steps": 20, "decay_rate": 0.9}
                    }
                }
            },
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 2},
        "export": {"formats": ["tflite", "onnx"], "precisions": ["fp32"]},
    }
    run = ek.train(write_recipe(recipe_dir, "scaled", recipe), out=tmp_path / "run")
    assert "ek_custom:Scale" in json.loads((run.path / "run.json").read_text())["custom_objects"]
    assert any(type(layer).__name__ == "Scale" for layer in run.model.layers)
    assert max(fp32_parity(run).values()) < 1e-4


@pytest.fixture(scope="module")
def subclassed_run(recipe_dir, tmp_path_factory):
    """A subclassed model with a custom layer, loss, metric and callback, from the recipe folder."""
    tmp_path = tmp_path_factory.mktemp("sub")
    recipe = {
        "name": "tiny-sub",
        "data": {"source": "digits", "batch_size": 64},
        "model": {
            "type": "python",
            "function": "ek_custom:tiny_net",
            "kwargs": {"classes": 10},
            "input_shape": [8, 8, 1],
        },
        "compile": {
            "optimizer": {"SGD": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}},
            "loss": {"ek_custom:SmoothedCrossentropy": {"smoothing": 0.05}},
            "metrics": ["accuracy", "ek_custom:MaxProbability"],
        },
        "fit": {"epochs": 2, "callbacks": [{"ek_custom:EpochLog": {"path": str(tmp_path / "epochs.txt")}}]},
        "export": {"formats": ["tflite", "onnx"], "precisions": ["fp32"]},
    }
    return ek.train(write_recipe(recipe_dir, "tiny-sub", recipe), out=tmp_path / "run")


def test_python_subclassed_model_trains_and_converts(subclassed_run):
    run = subclassed_run
    assert (run.path.parent / "epochs.txt").read_text().split() == ["0", "1"]  # the custom callback ran
    assert 0 < run.test_metrics["max_probability"] <= 1  # the custom metric
    state = json.loads((run.path / "run.json").read_text())
    for ref in ("ek_custom:TinyNet", "ek_custom:Scale", "ek_custom:SmoothedCrossentropy", "ek_custom:MaxProbability"):
        assert ref in state["custom_objects"]
    assert max(fp32_parity(run).values()) < 1e-4


def test_custom_objects_reload_from_the_run_folder_not_from_a_bare_file(
    subclassed_run, recipe_dir, tmp_path, monkeypatch
):
    import keras

    # Forget the registrations this process made while training, as a new process would.
    registry = keras.saving.get_custom_objects()
    for name in ("TinyNet", "Scale", "SmoothedCrossentropy", "MaxProbability"):
        monkeypatch.delitem(registry, name, raising=False)
    shutil.copy(subclassed_run.path / "model.keras", tmp_path / "bare.keras")
    monkeypatch.chdir(tmp_path)
    r = invoke("convert", "bare.keras", "--format", "onnx", "--out", "b")
    assert r.exit_code == 2 and "TinyNet" in r.stderr and "--custom-objects ek_custom" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()
    # --custom-objects also takes the module's file, from anywhere (its folder is not on sys.path)
    args = ["convert", "bare.keras", "--format", "onnx", "--no-validate"]
    r = invoke(*args, "--out", "c", "--custom-objects", recipe_dir / "ek_custom.py")
    assert r.exit_code == 0, r.describe()
    assert (tmp_path / "c" / "tiny_net-onnx-fp32.onnx").exists()  # named after the model, not a run
    r = invoke(*args, "--out", "d", "--custom-objects", tmp_path / "nowhere.py")
    assert r.exit_code == 2 and "nowhere.py', which does not exist" in r.stderr, r.stderr
    # the run folder's run.json names the modules and where they were imported from
    r = invoke("convert", subclassed_run.path, "--format", "onnx", "--out", "a", "--no-validate")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "tiny-sub-onnx-fp32.onnx").exists()


@pytest.mark.slow
def test_custom_objects_in_a_fresh_process(subclassed_run, recipe_dir, tmp_path):
    r = run_script("convert", subclassed_run.path, "--format", "onnx", "--out", "a", cwd=tmp_path)
    assert r.exit_code == 0, r.describe()
    shutil.copy(subclassed_run.path / "model.keras", tmp_path / "bare.keras")
    r = run_script("convert", "bare.keras", "--format", "onnx", "--out", "b", cwd=tmp_path)
    assert_bad_input(r, "TinyNet", "--custom-objects ek_custom")
    pythonpath = os.pathsep.join(filter(None, [str(recipe_dir), os.environ.get("PYTHONPATH")]))
    r = run_script(
        "convert",
        "bare.keras",
        "--format",
        "onnx",
        "--out",
        "b",
        "--custom-objects",
        "ek_custom",
        cwd=tmp_path,
        env={"PYTHONPATH": pythonpath},
    )
    assert r.exit_code == 0, r.describe()


def test_python_subclassed_model_needs_an_input_shape(recipe_dir):
    from edgekeras.models import build_model, check_model_section

    section = check_model_section({"type": "python", "function": "ek_custom:tiny_net"})
    with pytest.raises(InputError, match=r"model.input_shape.*TinyNet"):
        build_model(section, recipe_dir)
    section = check_model_section({"type": "python", "function": "ek_custom:tiny_nett"})
    with pytest.raises(InputError, match="Did you mean 'tiny_net'"):
        build_model(section, recipe_dir)


def _app_section(**overrides):
    from edgekeras.models import check_model_section

    section = {
        "type": "application",
        "application": "MobileNetV2",
        "weights": None,
        "input_shape": [32, 32, 3],
        "include_top": False,
        "pooling": "avg",
        "kwargs": {"alpha": 0.35},
        "head": [{"Dense": {"units": 3, "activation": "softmax"}}],
        **overrides,
    }
    return check_model_section(section)


def test_application_with_head_freezing_and_local_weights(tmp_path):
    from edgekeras.models import build_model

    model = build_model(_app_section(fine_tune_from="block_16_expand"))
    assert model.inputs[0].name == "input" and model.output_shape == (None, 3)
    names = [layer.name for layer in model.layers]  # the head extends the base's graph
    start = names.index("block_16_expand")
    assert not any(layer.trainable for layer in model.layers[:start] if layer.weights)
    assert all(layer.trainable for layer in model.layers[start:] if layer.weights)
    frozen = build_model(_app_section(freeze=True))
    assert len(frozen.trainable_weights) == 2  # only the head's Dense kernel and bias

    # weights: a local file (here: saved from a first build), never a download
    weights = tmp_path / "mobilenet.weights.h5"
    reference = build_model(_app_section(head=[]))
    reference.save_weights(weights)
    loaded = build_model(_app_section(head=[], weights=str(weights)))
    for a, b in zip(reference.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_application_errors_through_the_cli(tmp_path):
    recipe = {
        "name": "app",
        "model": {
            "type": "application",
            "application": "MobileNetV2",
            "weights": "imagenet",
            "input_shape": [32, 32, 3],
        },
        "compile": {"loss": "sparse_categorical_crossentropy"},
    }
    path = write_recipe(tmp_path, "app", recipe)
    r = invoke("train", path, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "imagenet" in r.stderr and "local weights file" in r.stderr, r.stderr
    recipe["model"].update(application="MobileNetV3Smal", weights=None)
    path = write_recipe(tmp_path, "app", recipe)
    r = invoke("train", path, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "Did you mean 'MobileNetV3Small'" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


def test_functional_config_errors_name_the_layer():
    from edgekeras.models import build_model, check_model_section

    config = two_heads_config().get_config()
    config["layers"][3]["class_name"] = "Dnse"
    with pytest.raises(InputError, match=r"'Dnse' at 'model.config.layers\[3\].class_name'. Did you mean 'Dense'"):
        build_model(check_model_section({"type": "functional", "config": config}))
    config = two_heads_config().get_config()
    config["layers"][3]["config"]["unitz"] = 4
    with pytest.raises(InputError, match=r"model.config.layers\[3\].config.*unitz.*Did you mean 'units'"):
        build_model(check_model_section({"type": "functional", "config": config}))
    with pytest.raises(InputError, match=r"exactly one of 'model\.config'"):
        build_model(check_model_section({"type": "functional"}))


@pytest.mark.parametrize(
    "section",
    [
        {"type": "sequential", "input_shape": [4], "layers": [{"Dense": {"units": 2}}]},
        {"type": "functional", "config": {"layers": []}},
        {"type": "python", "function": "ek_custom:tiny_net"},
        {"type": "application", "application": "MobileNetV2"},
        {"type": "file", "path": "model.keras"},
    ],
    ids=lambda s: s["type"],
)
def test_every_model_type_takes_model_unsafe(section):
    from edgekeras.models import check_model_section

    assert check_model_section({**section, "unsafe": True})["unsafe"] is True
    assert check_model_section(section)["unsafe"] is False
    with pytest.raises(InputError, match=r"Expected 'model.unsafe' to be true or false. Received: 'yes'"):
        check_model_section({**section, "unsafe": "yes"})


def test_functional_config_with_a_lambda_builds_only_with_model_unsafe():
    import keras

    from edgekeras.models import build_model, check_model_section

    x = keras.Input((4,), name="x")
    config = keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0 - 1.0, name="rescale")(x)).get_config()
    given = json.dumps(config, sort_keys=True)
    with pytest.raises(
        InputError,
        match=r"model.config.layers\[1\].config' \(Lambda\).*bytecode.*"
        r"'model.unsafe: true'",
    ):
        build_model(check_model_section({"type": "functional", "config": config}))
    model = build_model(check_model_section({"type": "functional", "config": config, "unsafe": True}))
    np.testing.assert_allclose(np.asarray(model(np.ones((1, 4), "float32"))), 1.0)
    assert json.dumps(config, sort_keys=True) == given  # the recipe's config is left as written
