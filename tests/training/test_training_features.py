"""Training features from a recipe: optimizers with schedules, metrics, sample weights,
Keras callbacks writing into the run folder, run_eagerly/jit_compile, mixed precision with
float32 inputs/outputs and fp32 conversion parity, `model.png` without Graphviz, and loss/label
mismatches reported before any training (CLI exit 2, nothing written).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import invoke

import edgekeras as ek
from edgekeras.errors import InputError


def recipe(**sections):
    """A tiny dense model on the 64-pixel digits, 1 epoch, no export; `sections` override."""
    base = {
        "name": "tiny",
        "seed": 0,
        "data": {"source": "digits", "flatten": True, "batch_size": 64},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": 16, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1},
        "export": {"formats": []},
    }
    for key, value in sections.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in ("compile", "fit") else value
    return base


def history(run):
    with open(run.path / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "optimizer, check",
    [
        (
            {"SGD": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}},
            lambda o: o.momentum == 0.9 and o.nesterov,
        ),
        ({"AdamW": {"learning_rate": 0.01, "weight_decay": 0.004}}, lambda o: o.weight_decay == 0.004),
        (
            {
                "RMSprop": {
                    "learning_rate": {
                        "ExponentialDecay": {"initial_learning_rate": 0.01, "decay_steps": 10, "decay_rate": 0.5}
                    }
                }
            },
            lambda o: type(o._learning_rate).__name__ == "ExponentialDecay",
        ),
        (
            {"Adam": {"learning_rate": {"PiecewiseConstantDecay": {"boundaries": [10], "values": [0.01, 0.001]}}}},
            lambda o: float(o.learning_rate) == pytest.approx(0.001),
        ),  # past step 10 after a 1-epoch run
    ],
    ids=["sgd-nesterov", "adamw", "rmsprop-exponential", "adam-piecewise"],
)
def test_optimizers_and_schedules(optimizer, check, tmp_path):
    run = ek.train(recipe(compile={"optimizer": optimizer}, fit={"epochs": 2}), out=tmp_path / "run")
    name = next(iter(optimizer))
    assert type(run.model.optimizer).__name__ == name and check(run.model.optimizer)
    assert int(run.model.optimizer.iterations) == len(history(run)) * int(np.ceil(len(run.data.train) / 64))
    assert run.test_metrics["accuracy"] > 0.5  # it learned (chance is 0.1)


def test_classification_metrics_on_one_hot_labels(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(
        tmp_path / "onehot.npz", x=(digits.data / 16).astype("float32"), y=np.eye(10, dtype="float32")[digits.target]
    )
    spec = recipe(
        data={"source": "npz", "path": str(tmp_path / "onehot.npz")},
        fit={"epochs": 3},
        compile={
            "optimizer": {"Adam": {"learning_rate": 0.01}},
            "loss": "categorical_crossentropy",
            "metrics": [
                {"F1Score": {"average": "macro"}},
                {"Precision": {"name": "precision"}},
                {"Recall": {"name": "recall"}},
                "categorical_accuracy",
            ],
        },
    )
    run = ek.train(spec, out=tmp_path / "run")
    columns = set(history(run)[0])
    assert {"f1_score", "precision", "recall", "val_f1_score", "categorical_accuracy"} <= columns
    assert 0 < run.test_metrics["precision"] <= 1 and 0 < run.test_metrics["recall"] <= 1


def _model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,), name="pixels"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


def test_sample_weight_reaches_the_loss(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16).astype("float32"), digits.target
    spec = {"fit": {"epochs": 1}, "export": {"formats": []}}
    zero, initial = _model(), None
    initial = [w.copy() for w in zero.get_weights()]
    ek.train(zero, data=(x, y, np.zeros(len(y))), recipe={**spec, "name": "zero"}, out=tmp_path / "zero")
    for before, after in zip(initial, zero.get_weights()):  # zero weight: zero gradient
        np.testing.assert_array_equal(before, after)
    ones = _model()
    ek.train(
        ones,
        data={"pixels": x, "y": y, "sample_weight": np.ones(len(y))},
        recipe={**spec, "name": "ones"},
        out=tmp_path / "ones",
    )
    assert not np.allclose(initial[0], ones.get_weights()[0])
    with pytest.raises(InputError, match=r"sample_weight as 1797 finite.*\(5,\)"):
        ek.train(_model(), data=(x, y, np.ones(5)), recipe={**spec, "name": "bad"}, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_callbacks_write_into_the_run_folder(tmp_path):
    callbacks = [
        {"EarlyStopping": {"monitor": "loss", "min_delta": 10, "patience": 0}},  # stops after epoch 2
        {"ReduceLROnPlateau": {"monitor": "loss", "min_delta": 10, "patience": 0, "factor": 0.5}},
        {"TensorBoard": {"log_dir": "tb"}},
        {"CSVLogger": {"filename": "logs/extra.csv"}},
        {"ModelCheckpoint": {"filepath": "ckpt/epoch-{epoch}.weights.h5", "save_weights_only": True}},
        {"BackupAndRestore": {"backup_dir": "bk", "delete_checkpoint": False}},
    ]
    run = ek.train(
        recipe(compile={"optimizer": {"Adam": {"learning_rate": 0.01}}}, fit={"epochs": 6, "callbacks": callbacks}),
        out=tmp_path / "run",
    )
    rows = history(run)
    assert len(rows) == 2  # EarlyStopping
    assert float(run.model.optimizer.learning_rate) == pytest.approx(0.005)  # ReduceLROnPlateau halved it
    assert any((run.path / "tb" / "train").glob("events.out.tfevents.*"))
    assert not (run.path / "tensorboard").exists()  # the recipe's TensorBoard replaces the default
    assert len((run.path / "logs" / "extra.csv").read_text().splitlines()) == 3
    assert sorted(p.name for p in (run.path / "ckpt").iterdir()) == ["epoch-1.weights.h5", "epoch-2.weights.h5"]
    assert (run.path / "bk" / "training_metadata.json").exists()  # kept: delete_checkpoint false
    assert not Path("tb").exists() and not Path("bk").exists()


def test_run_eagerly_and_jit_compile(tmp_path):
    eager = ek.train(recipe(compile={"run_eagerly": True}), out=tmp_path / "eager")
    assert eager.model.run_eagerly and "accuracy" in eager.test_metrics
    xla = ek.train(recipe(compile={"jit_compile": True}), out=tmp_path / "xla")
    assert xla.model.jit_compile is True and "accuracy" in xla.test_metrics


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_io_and_converts(policy, tmp_path):
    import keras

    spec = recipe(precision=policy, fit={"epochs": 2})
    spec["model"]["input_shape"] = [8, 8, 1]
    spec["data"] = {"source": "digits", "batch_size": 64}
    spec["model"]["layers"] = [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
        {"Flatten": {}},
        {"Dense": {"units": 10, "activation": "softmax"}},
    ]
    if policy == "mixed_float16":
        spec["export"] = {"formats": ["tflite"], "precisions": ["fp32"]}
    run = ek.train(spec, out=tmp_path / "run")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert json.loads((run.path / "run.json").read_text())["precision"] == policy
    saved = ek.load_model(run.path, float32=False).model
    assert saved.layers[0].dtype_policy.name == policy  # the Conv2D computes in 16 bits
    assert saved.layers[-1].dtype_policy.name == "float32"
    out = saved.predict(run.data.test.x[:4], verbose=0)
    assert out.dtype == np.float32 and saved.inputs[0].dtype == "float32"
    if policy == "mixed_float16":
        assert type(run.model.optimizer).__name__ == "LossScaleOptimizer"  # float16 trains with loss scaling
        validation = run.artifacts[0].manifest["validation"]
        assert validation["passed"] and validation["max_abs_error"] < 1e-4


def test_model_png_without_graphviz_is_a_notice(tmp_path, monkeypatch, caplog):
    import keras

    from edgekeras.models.diagram import write_model_png

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert write_model_png(model, tmp_path / "with.png").read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no `dot` on PATH
    caplog.set_level(logging.INFO, logger="edgekeras")
    assert write_model_png(model, tmp_path / "model.png") is None
    (notice,) = [r for r in caplog.records if r.name == "edgekeras.models.diagram"]
    assert "skipped model.png" in notice.getMessage() and "Graphviz" in notice.getMessage()
    assert list(tmp_path.glob("*model.png*")) == []


@pytest.mark.parametrize(
    "layer, loss, message",
    [
        (
            {"Dense": {"units": 10, "activation": "softmax"}},
            "categorical_crossentropy",
            r"one-hot labels of shape \(N, 10\) for 'compile.loss' \(categorical_crossentropy\) with output "
            r"'\w+' \(model.layers\[1\]: 10 units, softmax\)",
        ),
        (
            {"Dense": {"units": 1, "activation": "sigmoid"}},
            "binary_crossentropy",
            r"labels in \[0, 1\] for 'compile.loss' \(binary_crossentropy\).*model.layers\[1\]: 1 unit, sigmoid"
            r".*10 classes",
        ),
        (
            {"Dense": {"units": 1, "activation": "sigmoid"}},
            "sparse_categorical_crossentropy",
            r"class labels below 1 .*model.layers\[1\].*Give the output 10 units",
        ),
    ],
    ids=["cce-on-integers", "sigmoid-with-10-classes", "sparse-on-1-unit"],
)
def test_loss_that_does_not_fit_the_labels_is_exit_2(layer, loss, message, tmp_path):
    import re

    spec = recipe(compile={"loss": loss, "metrics": []})
    spec["model"]["layers"][1] = layer
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    before = sorted(os.listdir(tmp_path))
    r = invoke("train", path, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.describe()
    assert re.search(message, r.stderr.replace("\n", " ")), r.stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    keep = {"callbacks": [{"BackupAndRestore": {"backup_dir": "bk", "delete_checkpoint": False}}]}
    run = ek.train(recipe(fit=keep), out=tmp_path / "run")
    assert sorted(p.suffix for p in (run.path / "bk").iterdir()) == [".json", ".npz"]
    state = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps({**state, "status": "training"}))  # as if killed
    changed = recipe(fit=keep)
    changed["model"]["layers"][0]["Dense"]["units"] = 32
    with pytest.raises(InputError, match="checkpoint of a different model"):
        ek.train(changed, out=tmp_path / "run")


_DECAY = {
    "Adam": {
        "learning_rate": {"ExponentialDecay": {"initial_learning_rate": 0.01, "decay_steps": 10, "decay_rate": 0.5}}
    }
}


@pytest.mark.parametrize(
    "callback",
    [
        {"ReduceLROnPlateau": {"monitor": "loss", "min_delta": 10, "patience": 0}},
        {"LearningRateScheduler": {"schedule": "ek_lr:halve"}},
    ],
    ids=["reduce-on-plateau", "scheduler"],
)
def test_learning_rate_callback_with_a_schedule_is_refused_before_training(callback, tmp_path, monkeypatch):
    (tmp_path / "ek_lr.py").write_text("def halve(epoch, lr):\n    return lr / 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    name = next(iter(callback))
    spec = recipe(compile={"optimizer": _DECAY}, fit={"epochs": 2, "callbacks": [{"EarlyStopping": {}}, callback]})
    with pytest.raises(
        InputError,
        match=rf"fixed learning rate at 'compile.optimizer.Adam.learning_rate' with "
        rf"'fit.callbacks\[1\]' \({name}\).*ExponentialDecay.*Choose one",
    ):
        ek.train(spec, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # a fixed learning rate with the callback trains (the schedule without it: the test below)
    fixed = recipe(compile={"optimizer": {"Adam": {"learning_rate": 0.01}}}, fit={"callbacks": [callback]})
    ek.train(fixed, out=tmp_path / "fixed")


def test_reduce_lr_on_plateau_with_a_schedule_is_exit_2(tmp_path):
    spec = recipe(
        compile={
            "optimizer": {"SGD": {"learning_rate": {"CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 100}}}}
        },
        fit={"callbacks": [{"ReduceLROnPlateau": {"patience": 1}}]},
    )
    path = tmp_path / "plateau.yaml"
    path.write_text(yaml.safe_dump(spec))
    before = sorted(os.listdir(tmp_path))
    r = invoke("train", path, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.describe()
    message = " ".join(r.stderr.split())
    assert (
        "'compile.optimizer.SGD.learning_rate' with 'fit.callbacks[0]' (ReduceLROnPlateau)" in message
        and "CosineDecay" in message
        and "Choose one" in message
    ), message
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
    ek.train(recipe(compile={"optimizer": _DECAY}), out=tmp_path / "decay")  # the schedule alone trains


def test_metric_names_are_the_same_in_every_run_of_a_process(tmp_path):
    metrics = [
        {"Precision": {}},
        {"Recall": {"thresholds": 0.5}},
        "accuracy",
        {"Precision": {"thresholds": 0.9}},
        {"AUC": {"name": "area"}},
    ]
    spec = recipe(
        model={"type": "sequential", "input_shape": [64], "layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
        compile={"loss": "binary_crossentropy", "metrics": metrics},
    )
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16).astype("float32"), (digits.target == 3).astype("float32")
    np.savez(tmp_path / "threes.npz", x=x, y=y)
    spec["data"] = {"source": "npz", "path": str(tmp_path / "threes.npz")}
    import keras

    keras.metrics.Precision(), keras.metrics.Recall()  # the user's own metrics take the first names
    first = ek.train(spec, out=tmp_path / "first")
    second = ek.train(spec, out=tmp_path / "second")
    columns = list(history(first)[0])
    assert columns == list(history(second)[0])
    assert {"precision", "recall", "precision_1", "area", "val_precision", "val_recall"} <= set(columns)
    assert sorted(first.test_metrics) == sorted(second.test_metrics)
    for run in (first, second):
        assert set(json.loads((run.path / "run.json").read_text())["test_metrics"]) == set(first.test_metrics)
