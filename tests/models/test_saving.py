"""Saving and loading: every form a run saves (`fit.save`: .keras, .h5, SavedModel folder,
.weights.h5 + model.json) reloads in `edgekeras convert`, `evaluate` and `predict`; Lambda
layers need --unsafe; predicting with an artifact needs no TensorFlow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke, run_without_tensorflow

import edgekeras as ek
from edgekeras.errors import InputError


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A short digits run saved in every form, and a labelled .npz of its test split."""
    root = tmp_path_factory.mktemp("saving")
    recipe = {
        "name": "forms",
        "seed": 3,
        "data": {"source": "digits"},
        "model": {
            "type": "sequential",
            "input_shape": [8, 8, 1],
            "layers": [
                {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
                {"Flatten": {}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": 0.01}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 2, "save": ["keras", "h5", "saved_model", "weights"]},
        "export": {"formats": []},
    }
    run = ek.train(recipe, out=root / "run")
    data = root / "test.npz"
    np.savez(data, x=run.data.test.x, y=run.data.test.y)
    return run, data


def test_run_folder_holds_every_saved_form(saved_run):
    run, _ = saved_run
    state = json.loads((run.path / "run.json").read_text())
    assert state["saved"] == ["model.keras", "model.h5", "saved_model", "model.weights.h5", "model.json"]
    assert (run.path / "saved_model" / "saved_model.pb").exists()
    assert (run.path / "model.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert (run.path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((run.path / "tensorboard" / "train").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("form", ["model.keras", "model.h5", "saved_model", "model.weights.h5"])
def test_each_form_converts_with_parity(saved_run, form, tmp_path):
    run, data = saved_run
    extra = ["--architecture", run.path / "model.json"] if form.endswith(".weights.h5") else []
    r = invoke("convert", run.path / form, "--format", "onnx", "--data", data, "--out", tmp_path, "--json", *extra)
    assert r.exit_code == 0, r.output
    artifact = json.loads(r.stdout)["artifacts"][0]
    assert artifact["validation"]["passed"] and artifact["validation"]["max_abs_error"] < 1e-4
    # every form holds the trained weights: the same predictions as the run's model
    expected = run.model.predict(run.data.test.x, verbose=0)
    got = ek.predict(tmp_path / artifact["path"].split("/")[-1], {"x": run.data.test.x})
    np.testing.assert_allclose(next(iter(got.values())), expected, atol=1e-4)


def test_weights_file_needs_an_architecture(saved_run, tmp_path):
    run, _ = saved_run
    r = invoke("convert", run.path / "model.weights.h5", "--out", tmp_path / "a")
    assert r.exit_code == 2 and "--architecture model.json" in r.stderr, r.output
    assert not (tmp_path / "a").exists()


def test_saved_model_is_inference_only(saved_run, tmp_path):
    run, data = saved_run
    r = invoke("evaluate", run.path / "saved_model", "--data", data)
    assert r.exit_code == 2 and "carry no loss" in r.stderr, r.output
    from edgekeras.models import build_model, check_model_section

    with pytest.raises(InputError, match="inference only"):
        build_model(check_model_section({"type": "file", "path": str(run.path / "saved_model")}))


def test_fine_tune_from_weights_and_architecture(saved_run):
    run, _ = saved_run
    from edgekeras.models import build_model, check_model_section

    section = check_model_section(
        {"type": "file", "path": str(run.path / "model.weights.h5"), "architecture": str(run.path / "model.json")}
    )
    model = build_model(section)
    for a, b in zip(model.get_weights(), run.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="only with a weights file"):
        build_model(
            check_model_section(
                {"type": "file", "path": str(run.path / "model.keras"), "architecture": str(run.path / "model.json")}
            )
        )


def test_evaluate_and_predict_commands(saved_run, tmp_path):
    run, data = saved_run
    r = invoke("evaluate", run.path, "--json")  # default data: the run's own test split
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)["metrics"]
    assert metrics["accuracy"] == pytest.approx(run.test_metrics["accuracy"], abs=1e-6)
    r = invoke("evaluate", run.path / "model.keras", "--data", data)
    assert r.exit_code == 0 and "accuracy" in r.stdout, r.output
    r = invoke("evaluate", run.path / "model.keras")
    assert r.exit_code == 2 and "--data" in r.stderr

    out = tmp_path / "preds.npz"
    r = invoke("predict", run.path, "--inputs", data, "--out", out)
    assert r.exit_code == 0 and "top-1 class" in r.stdout, r.output
    with np.load(out) as f:
        assert f.files == [s.name for s in ek.load_model(run.path).outputs]  # named by output
        np.testing.assert_allclose(f[f.files[0]], run.model.predict(run.data.test.x, verbose=0), atol=1e-6)
    r = invoke("predict", run.path, "--inputs", data, "--out", out)
    assert r.exit_code == 2 and "--force" in r.stderr  # never overwrites silently
    r = invoke("predict", run.path / "model.keras", "--inputs", tmp_path / "missing.npz")
    assert r.exit_code == 2 and "missing.npz" in r.stderr


def test_predicting_with_an_artifact_does_not_import_tensorflow(saved_run, tmp_path):
    run, data = saved_run
    arts = ek.convert(run.model, formats=["tflite"], precisions=["fp32"], out=tmp_path, validate=False)
    code = (
        "import json, edgekeras as ek\n"
        f"out = ek.predict({str(arts[0].path)!r}, {str(data)!r})\n"
        "print(json.dumps({k: v.tolist() for k, v in out.items()}))\n"
    )
    out = run_without_tensorflow(code, heavy=("tensorflow",), timeout=120)
    got = np.array(next(iter(json.loads(out.splitlines()[-1]).values())))
    np.testing.assert_allclose(got, run.model.predict(run.data.test.x, verbose=0), atol=1e-5)


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    model = keras.Sequential(
        [keras.Input((4,), name="x"), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)]
    )
    model.save(path)
    return path


def test_lambda_layer_needs_unsafe(lambda_model, tmp_path):
    r = invoke("convert", lambda_model, "--format", "onnx", "--out", tmp_path / "a")
    assert r.exit_code == 2 and "Lambda" in r.stderr and "--unsafe" in r.stderr, r.output
    assert not (tmp_path / "a").exists()
    r = invoke("convert", lambda_model, "--format", "onnx", "--out", tmp_path / "a", "--unsafe")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "a").glob("*.onnx"))) == 1


def test_save_model_refuses_unknown_suffixes(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(InputError, match=r"ending in \.keras"):
        ek.save_model(model, tmp_path / "model.pt")
    ek.save_model(model, tmp_path / "m.keras")
    with pytest.raises(InputError, match="--force"):
        ek.save_model(model, tmp_path / "m.keras")


def test_evaluate_and_predict_help_do_not_import_tensorflow():
    code = (
        "for args in (['evaluate', '--help'], ['predict', '--help']):\n"
        "    r = run_cli(*args)\n    assert r.exit_code == 0 and 'Usage' in r.output, r.output\n"
    )
    run_without_tensorflow(code, timeout=60)
