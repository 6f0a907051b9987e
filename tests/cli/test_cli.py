"""The CLI's happy paths, through the real console script and CliRunner."""

import json
from pathlib import Path

import numpy as np
import yaml
from conftest import invoke, run_script


def test_train_then_convert_validate_bench(tmp_path):
    recipe = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "digits", "flatten": True, "test_split": 0.2},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": 32, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax", "name": "probs"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": 0.01}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 4},
        "export": {"formats": ["tflite"], "precisions": ["fp32"]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    r = run_script("train", path, "--out", run_dir, "--json")
    assert r.exit_code == 0, r.describe()
    doc = json.loads(r.stdout)
    assert doc["passed"] and doc["state"]["epochs"] == 4
    assert doc["state"]["test_metrics"]["accuracy"] > 0.8
    assert "Traceback" not in r.stderr and "XNNPACK" not in r.stderr

    res = invoke("convert", run_dir, "--format", "onnx", "--precision", "fp32", "--precision", "int8", "--json")
    assert res.exit_code == 0, res.describe()
    arts = json.loads(res.stdout)["artifacts"]
    assert [(a["format"], a["precision"]) for a in arts] == [("onnx", "fp32"), ("onnx", "int8")]
    assert all(a["validation"]["passed"] and a["validation"]["data"] == "labelled data" for a in arts)

    # standalone validate with an npz of labelled data
    from edgekeras.data import load_data
    from edgekeras.recipe import load_recipe

    loaded = load_recipe(run_dir / "recipe.yaml")
    bundle = load_data(loaded.data, seed=loaded.seed)
    np.savez(tmp_path / "test.npz", x=bundle.test.x, y=bundle.test.y)
    art = run_dir / "artifacts" / "tiny-onnx-int8.onnx"
    res = invoke("validate", art, "--reference", run_dir / "model.keras", "--data", tmp_path / "test.npz", "--json")
    assert res.exit_code == 0, res.describe()
    v = json.loads(res.stdout)
    assert v["passed"] and v["samples"] == len(bundle.test.y) and v["accuracy_delta"] >= -2.0

    res = invoke("bench", run_dir / "artifacts", "--runs", 20, "--threads", 1, "--json")
    assert res.exit_code == 0, res.describe()
    results = json.loads(res.stdout)["results"]
    assert {Path(r["artifact"]).name for r in results} == {
        "tiny-tflite-fp32.tflite",
        "tiny-onnx-fp32.onnx",
        "tiny-onnx-int8.onnx",
    }
    assert all(r["latency_ms"]["p50"] > 0 and r["runs"] == 20 for r in results)

    res = invoke("bench", art, "--runs", 10)
    assert res.exit_code == 0 and "p50 ms" in res.output


def test_validate_exit_1_on_parity_failure(tmp_path):
    """A model and an artifact from different weights: exit 1 and every failing metric listed."""
    import keras

    import edgekeras as ek

    def make(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((5,), name="input"), keras.layers.Dense(4, name="out")])

    ref, other = make(1), make(2)
    ref.save(tmp_path / "ref.keras")
    ek.convert(other, formats=["tflite"], out=tmp_path, validate=False, name="other")
    res = invoke("validate", tmp_path / "other-tflite-fp32.tflite", "--reference", tmp_path / "ref.keras")
    assert res.exit_code == 1
    assert "output 'out': max_abs_error" in res.output and "cosine" in res.output


def test_demo_prints_the_table(tmp_path):
    r = run_script("demo", "--out", tmp_path / "demo", "--runs", 50)
    assert r.exit_code == 0, r.describe()
    for name in ("tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"):
        assert f"digits-cnn-{name}" in r.stdout
    for column in ("size", "metric", "vs Keras", "max abs err", "data", "p50 ms", "p90 ms", "p99 ms"):
        assert column in r.stdout
    assert "accuracy 0.9" in r.stdout and "labelled" in r.stdout  # the classifier's metric, on labels
    assert "FAIL" not in r.stdout
    assert f"Run folder: {tmp_path / 'demo'}" in r.stdout
    assert (tmp_path / "demo" / "report.md").exists()
