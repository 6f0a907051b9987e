"""`edgekeras train` with a `prune:` section and `edgekeras prune RUN_DIR`, end to end; bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from conftest import EDGEKERAS, assert_bad_input, assert_unchanged, invoke, snapshot

from edgekeras.reporting.writer import collect


def _recipe(epochs=3, **extra):
    return {
        "name": "tinyprune",
        "seed": 3,
        "data": {"source": "digits", "validation_split": 0.1, "test_split": 0.2, "batch_size": 32},
        "model": {
            "type": "sequential",
            "input_shape": [8, 8, 1],
            "layers": [
                {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu", "name": "conv"}},
                {"Flatten": {}},
                {"Dense": {"units": 10, "activation": "softmax", "name": "probs"}},
            ],
        },
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs},
        "export": {"formats": ["tflite"], "precisions": ["fp32"]},
        **extra,
    }


def _zeros(model_path, layer):
    import keras

    model = keras.saving.load_model(model_path)
    kernel = np.asarray(model.get_layer(layer).kernel)
    return int((kernel == 0).sum()), kernel.size


def test_train_with_prune_section_then_prune_command(ws):
    (ws / "r.yaml").write_text(yaml.safe_dump(_recipe(prune={"sparsity": 0.5, "exclude": ["conv"]})))
    r = invoke("train", "r.yaml", "--out", "run")
    assert r.exit_code == 0, r.describe()
    state = json.loads((ws / "run" / "run.json").read_text())
    assert state["prune"]["weights"]["probs/kernel"]["sparsity"] == pytest.approx(0.5, abs=0.001)
    zeros, size = _zeros(ws / "run" / "model.keras", "probs")
    assert zeros == round(0.5 * size)
    assert _zeros(ws / "run" / "model.keras", "conv")[0] == 0  # excluded

    # resuming an unfinished run with other prune settings is refused (its masks belong to the old ones)
    (ws / "run" / "run.json").write_text(json.dumps({**state, "status": "training"}))
    (ws / "r2.yaml").write_text(yaml.safe_dump(_recipe(prune={"sparsity": 0.6, "exclude": ["conv"]})))
    before = snapshot(ws)
    assert_bad_input(invoke("train", "r2.yaml", "--out", "run"), "prune", "0.6", "--force")
    assert_unchanged(before, ws)
    (ws / "run" / "run.json").write_text(json.dumps(state))

    r = invoke("prune", "run", "--sparsity", "0.7", "--epochs", "2", "--out", "pruned", "--json")
    assert r.exit_code == 0, r.describe()
    doc = r.json()
    assert doc["sparsity"] == pytest.approx(0.7, abs=0.01) and doc["state"]["status"] == "done"
    assert doc["state"]["prune"]["structure"] == "unstructured" and doc["state"]["data_from_recipe"]
    assert [a["path"].endswith("tinyprune-pruned-tflite-fp32.tflite") for a in doc["artifacts"]] == [True]
    for layer in ("conv", "probs"):
        zeros, size = _zeros(ws / "pruned" / "model.keras", layer)
        assert zeros == round(0.7 * size), layer
    assert (ws / "pruned" / "history.csv").exists() and (ws / "pruned" / "report.md").exists()
    # the report sets the pruned model beside the run it was pruned from
    assert doc["state"]["pruned_from"] == str((ws / "run").resolve())
    data = collect(ws / "pruned")
    sparsity = {f.key: f for f in data.figures}["sparsity_vs_accuracy"]
    assert sparsity.path.exists() and "tflite-fp32" in sparsity.front  # the sparsest point is never dominated
    assert any("unpruned model's artifacts" in n for n in data.notes)
    assert "sparsity_vs_accuracy.png" in (ws / "pruned" / "report.md").read_text()
    # the pruned run reloads its data from its recipe like any run: convert calibrates from it
    r = invoke("convert", "pruned", "--format", "tflite", "--precision", "int8", "--out", "int8", "--json")
    assert r.exit_code == 0, r.describe()

    before = snapshot(ws)
    for args, names in [
        (["--sparsity", "1.5"], ["sparsity", "[0, 1)"]),
        (["--sparsity", "0.5", "--structure", "2:3"], ["M=3", "conv/kernel"]),
        (["--sparsity", "0.5", "--exclude", "prob"], ["prob"]),
    ]:
        assert_bad_input(invoke("prune", "pruned", *args, "--out", "never"), *names)
    assert_unchanged(before, ws)


@pytest.mark.slow
def test_sigkill_mid_schedule_then_same_command_resumes(tmp_path):
    """A pruning run killed mid-schedule resumes with its masks and step, ending exactly sparse."""
    epochs = 25
    recipe = _recipe(epochs, prune={"sparsity": 0.8, "frequency": 5})
    recipe["model"]["layers"].insert(2, {"Dense": {"units": 256, "activation": "relu", "name": "wide"}})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    cmd = [str(EDGEKERAS), "train", str(path), "--out", str(out), "--no-export"]
    env = {**os.environ, "EDGEKERAS_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    history = out / "history.csv"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) > 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "run.json").read_text())["status"] == "training"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "Resuming" in r.stderr
    assert len(history.read_text().splitlines()) == epochs + 1
    for layer in ("conv", "wide", "probs"):
        zeros, size = _zeros(out / "model.keras", layer)
        assert zeros == round(0.8 * size), layer
