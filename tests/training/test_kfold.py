"""K-fold cross-validation (recipe `kfold:`) with `edgekeras train`: folds, mean ± std, final model."""

import csv
import json

import numpy as np
import pytest
import yaml
from conftest import assert_bad_input, invoke

from edgekeras.data.bundle import Split
from edgekeras.errors import InputError
from edgekeras.kfold import check_kfold_section, class_labels, plan_folds


def tiny_recipe(**kfold):
    """A small MLP on the digits, 2 epochs: each fold trains in about a second."""
    return {
        "name": "kf",
        "seed": 1,
        "data": {"source": "digits", "flatten": True, "batch_size": 64},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": 16, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": 0.01}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 2},
        "export": {"formats": ["tflite"], "precisions": ["fp32"]},
        "kfold": kfold,
    }


def test_stratified_folds_partition_the_training_split_and_keep_class_shares():
    y = np.repeat(np.arange(4), [40, 20, 20, 20])
    folds = plan_folds(Split(np.zeros((100, 2)), y), check_kfold_section({"k": 4, "stratified": True}), seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(100))  # each sample held out exactly once
    for train_idx, held_idx in folds:
        assert set(train_idx).isdisjoint(held_idx)
        assert np.bincount(y[held_idx]).tolist() == [10, 5, 5, 5]


@pytest.mark.parametrize(
    "section, train, fragment",
    [
        ({"k": 1}, None, "'kfold.k' to be at least 2"),
        ({"k": 50}, Split(np.zeros((10, 2)), np.arange(10) % 2), "at most the 10 training samples"),
        ({"k": 2, "stratified": True}, Split(np.zeros((10, 2)), np.linspace(0, 1, 10)), "continuous targets"),
        ({"k": 2, "final": "bets"}, None, "Did you mean 'best'?"),
    ],
)
def test_bad_kfold_sections_are_input_errors(section, train, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        plan_folds(train, check_kfold_section(section), seed=0)


def test_one_hot_labels_stratify_by_class():
    assert class_labels(np.eye(3)[[0, 2, 1, 2]]).tolist() == [0, 2, 1, 2]


def test_train_with_kfold_keeps_the_best_fold_and_reports_mean_and_std(ws):
    path = ws / "kf.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(k=3, stratified=True, final="best", monitor="val_accuracy")))
    r = invoke("train", path, "--out", ws / "run")
    assert r.exit_code == 0, r.describe()
    assert "val_accuracy: " in r.stdout and " ± " in r.stdout and "over 3 folds" in r.stdout
    run = ws / "run"
    state = json.loads((run / "run.json").read_text())
    kfold = state["kfold"]
    assert state["status"] == "done" and len(kfold["folds"]) == 3
    scores = [f["val_accuracy"] for f in kfold["folds"]]
    assert kfold["best_fold"] == int(np.argmax(scores)) + 1
    assert kfold["mean"]["val_accuracy"] == pytest.approx(np.mean(scores))
    assert kfold["std"]["val_accuracy"] == pytest.approx(np.std(scores))
    best = json.loads((run / "folds" / f"fold-{kfold['best_fold']}" / "run.json").read_text())
    assert state["test_metrics"] == best["test_metrics"]  # the run's model is the best fold's
    rows = list(csv.reader((run / "kfold.csv").open()))
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "mean", "std"]
    assert "± " in (run / "report.md").read_text()
    assert (run / "artifacts" / "kf-tflite-fp32.tflite").exists()  # exported like any run


def test_kfold_final_all_data_trains_once_more_on_the_whole_split(ws):
    import edgekeras as ek

    run = ek.train(tiny_recipe(k=2, final="all_data"), out=ws / "run", export=False)
    assert (ws / "run" / "final" / "model.keras").exists()
    final = json.loads((ws / "run" / "final" / "run.json").read_text())
    assert run.test_metrics == final["test_metrics"]
    assert ek.RunFolder(ws / "run").load_data().train is not None  # the data reloads from the recipe


def test_kfold_larger_than_the_data_exits_2(ws):
    path = ws / "kf.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(k=5000)))
    assert_bad_input(invoke("train", path, "--out", ws / "run"), "kfold.k", "5000")
    assert not (ws / "run").exists()
