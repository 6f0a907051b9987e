"""Labels by output name, the same in every command and function: `y` for one output,
`y_<output>` per output (all or some), `y` as a dict; and labels that cannot fit their output
(wrong row count, wrong shape, classes out of range) refused up front with exit 2, naming the
array, instead of TensorFlow's internals."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek
from edgekeras.data.bundle import Split
from edgekeras.data.labels import check_labels, labels_by_output
from edgekeras.errors import InputError

ROWS = 40
OUTPUTS = ["cls", "reg"]


def _data(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "features": rng.normal(size=(rows, 6)).astype("float32"),
        "y_cls": rng.integers(0, 5, rows),
        "y_reg": rng.normal(100, 30, (rows, 1)).astype("float32"),
    }


# ------------------------------------------------------------------ labels_by_output (no model)


def test_y_prefixed_arrays_become_labels_by_output():
    d = _data()
    labelled = labels_by_output(d, OUTPUTS, ["features"])
    assert set(labelled.split.x) == {"features"} and list(labelled.labels) == ["cls", "reg"]
    assert labelled.names == {"cls": "y_cls", "reg": "y_reg"} and labelled.unlabelled == []
    assert labelled.labels["reg"] is d["y_reg"]


def test_y_as_a_dict_a_list_or_one_array_for_one_output():
    d = _data()
    as_dict = labels_by_output(Split({"features": d["features"]}, {"reg": d["y_reg"], "y_cls": d["y_cls"]}), OUTPUTS)
    assert list(as_dict.labels) == ["cls", "reg"] and as_dict.names == {"cls": "y['y_cls']", "reg": "y['reg']"}
    as_list = labels_by_output((d["features"], [d["y_cls"], d["y_reg"]]), OUTPUTS)
    assert as_list.names == {"cls": "y[0]", "reg": "y[1]"}
    one = labels_by_output({"x": d["features"], "y": d["y_reg"]}, ["price"])
    assert one.names == {"price": "y"} and one.labels["price"] is d["y_reg"]


def test_labels_for_some_outputs_name_the_others():
    d = _data()
    labelled = labels_by_output({"features": d["features"], "y_reg": d["y_reg"]}, OUTPUTS, ["features"])
    assert list(labelled.labels) == ["reg"] and labelled.unlabelled == ["cls"]
    inputs_only = labels_by_output({"features": d["features"]}, OUTPUTS)
    assert inputs_only.split.y is None and inputs_only.unlabelled == OUTPUTS


def test_an_input_named_y_something_stays_an_input():
    d = _data()
    labelled = labels_by_output({"y_offset": d["features"], "y_cls": d["y_cls"]}, ["cls"], ["y_offset"])
    assert set(labelled.split.x) == {"y_offset"} and list(labelled.labels) == ["cls"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"features": 0, "y_clss": 0}, r"Received: 'y_clss', which names no output\. Did you mean 'y_cls'\?"),
        ({"features": 0, "y": 0}, r"labels per output, named y_cls, y_reg.*Received: one array 'y'"),
        ({"features": 0, "y": 0, "y_cls": 0}, r"either as 'y' or as y_cls, y_reg.*Received: both 'y' and y_cls"),
        (Split({"features": 0}, {"klass": 0}), r"keyed by output name \(cls, reg\)\. Received: key 'klass'"),
        (Split({"features": 0}, [0, 1, 2]), r"one label array per output \(cls, reg\).*Received: 3 arrays"),
    ],
)
def test_labels_that_name_no_output_are_refused(data, message):
    if isinstance(data, dict):
        data = {k: np.zeros(3) for k in data}
    with pytest.raises(InputError, match=message):
        labels_by_output(data, OUTPUTS, ["features"])


# ------------------------------------------------------------------ check_labels (a real model)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A compiled two-head model (5-class softmax `cls`, regression `reg`), its TFLite fp32
    artifact, and a compiled one-output one-hot classifier."""
    import keras

    root = tmp_path_factory.mktemp("labels")
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inp)
    model = keras.Model(
        inp,
        {
            "cls": keras.layers.Dense(5, activation="softmax", name="cls")(h),
            "reg": keras.layers.Dense(1, name="reg")(h),
        },
    )
    model.compile(
        loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, metrics={"cls": ["accuracy"], "reg": ["mae"]}
    )
    model.save(root / "two.keras")
    (art,) = ek.convert(model, formats=["tflite"], precisions=["fp32"], out=root, name="two", validate=False)
    onehot = keras.Sequential(
        [keras.Input((6,), name="features"), keras.layers.Dense(3, activation="softmax", name="p")]
    )
    onehot.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    return root, model, art.path, onehot


def test_check_labels_passes_labels_that_fit(model_files):
    _root, model, _art, onehot = model_files
    d = _data()
    labelled = check_labels(model, d)
    assert list(labelled.labels) == ["cls", "reg"]
    d["y_cls"] = d["y_cls"][:, None]  # (N, 1) class indices are fine too
    d["y_reg"] = d["y_reg"][:, 0]  # and one value per sample without the trailing 1
    assert check_labels(model, d).labels["reg"].shape == (ROWS,)
    hot = np.eye(3)[np.arange(ROWS) % 3]
    assert check_labels(onehot, {"features": d["features"], "y": hot}).names == {"p": "y"}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d.update(y_cls=d["y_cls"][:25]),
            r"Expected y_cls with 40 rows, like the inputs in the data\. Received: 25 rows\.",
        ),
        (
            lambda d: d.update(y_cls=np.where(np.arange(ROWS) == 3, 7, d["y_cls"])),
            r"Expected y_cls to hold class indices in \[0, 4\] for output 'cls' \(classifier, by loss "
            r"'sparse_categorical_crossentropy'\), which has 5 classes\. Received: values from 0 to 7 \(1 outside",
        ),
        (
            lambda d: d.update(y_cls=-d["y_cls"] - 1),
            r"class indices in \[0, 4\].*Received: values from -5 to -1 \(40 outside",
        ),
        (lambda d: d.update(y_cls=d["y_cls"] + 0.5), r"class indices \(whole numbers\).*values such as"),
        (
            lambda d: d.update(y_cls=np.eye(5)[d["y_cls"]]),
            r"Expected y_cls of shape \(40,\) or \(40, 1\) \(one class index per sample\) for output 'cls'.*"
            r"Received: shape \(40, 5\)",
        ),
        (
            lambda d: d.update(y_reg=np.zeros((ROWS, 3))),
            r"Expected y_reg of shape \(40, 1\) or \(40,\) for output 'reg' \(regressor, by loss 'mse'\)\. "
            r"Received: shape \(40, 3\)",
        ),
        (lambda d: d.update(y_reg=np.full((ROWS, 1), np.nan)), r"Expected finite values in y_reg\. Received: 40 NaN"),
        (lambda d: d.update(y_cls=np.array(["a"] * ROWS)), r"Expected numeric labels in y_cls.*dtype <U1"),
    ],
)
def test_labels_that_cannot_fit_their_output_are_named(model_files, change, message):
    _root, model, _art, _onehot = model_files
    d = _data()
    change(d)
    with pytest.raises(InputError, match=message):
        check_labels(model, d)


def test_one_hot_labels_for_a_categorical_loss_need_a_row_per_class(model_files):
    _root, _model, _art, onehot = model_files
    x = _data()["features"]
    with pytest.raises(InputError, match=r"Expected y of shape \(40, 3\) \(one row per class: one-hot\)"):
        check_labels(onehot, {"features": x, "y": np.arange(ROWS) % 3})


def test_labels_from_a_dataset_of_dicts(model_files):
    import tensorflow as tf

    _root, model, _art, _onehot = model_files
    d = _data()
    ds = tf.data.Dataset.from_tensor_slices((d["features"], {"cls": d["y_cls"], "reg": d["y_reg"]})).batch(16)
    labelled = check_labels(model, ds)
    assert labelled.names == {"cls": "y['cls']", "reg": "y['reg']"} and len(labelled.split) == ROWS


# ------------------------------------------------------------------ the CLI: exit 2, nothing written


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", ["validate", "evaluate"])
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(y_cls=d["y_cls"][:25]), "Expected y_cls with 40 rows, like the inputs"),
        (lambda d: d.update(y_cls=d["y_cls"] + 5), "Expected y_cls to hold class indices in [0, 4]"),
        (lambda d: d.update(y_reg=np.zeros((ROWS, 2))), "Expected y_reg of shape (40, 1) or (40,)"),
        (lambda d: d.update(y_klass=d.pop("y_cls")), "Received: 'y_klass', which names no output."),
        (lambda d: d.update(image=d.pop("features")), "Expected validation data"),
    ],
)
def test_cli_refuses_bad_labels_with_exit_2(model_files, tmp_path, command, change, message):
    root, _model, artifact, _onehot = model_files
    d = _data()
    change(d)
    np.savez(tmp_path / "bad.npz", **d)
    manifest = artifact.with_suffix(".json")
    before = _digest(manifest)
    args = (
        [str(artifact), "--reference", str(root / "two.keras")] if command == "validate" else [str(root / "two.keras")]
    )
    result = invoke(command, *args, "--data", tmp_path / "bad.npz")
    assert result.exit_code == 2, result.output
    expected = message if command == "validate" or "validation data" not in message else "Expected data"
    assert expected in result.output and "Traceback" not in result.output
    assert "Op:" not in result.output and "function_node" not in result.output  # no TensorFlow internals
    assert _digest(manifest) == before  # refused before anything ran: the manifest is untouched


def test_evaluate_takes_y_per_output_and_needs_every_one(model_files, tmp_path):
    root, model, _art, _onehot = model_files
    d = _data()
    np.savez(tmp_path / "all.npz", **d)
    result = invoke("evaluate", root / "two.keras", "--data", tmp_path / "all.npz", "--json")
    assert result.exit_code == 0, result.describe()
    metrics = result.json()["metrics"]
    assert {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"} <= set(metrics)
    del d["y_reg"]
    with pytest.raises(InputError, match=r"labels for every output.*none for reg \(add y_reg\)"):
        ek.evaluate(model, data=d)


def test_train_takes_labels_per_output_too(model_files, tmp_path):
    import keras

    _root, model, _art, _onehot = model_files
    fresh = keras.models.clone_model(model)
    fresh.compile(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, metrics={"cls": ["accuracy"]})
    spec = {"name": "two", "fit": {"epochs": 1}, "export": {"formats": []}}
    run = ek.train(fresh, data=_data(200), recipe=spec, out=tmp_path / "run")
    assert "cls_accuracy" in run.test_metrics and "reg_loss" in run.test_metrics
    partial = _data(200)
    del partial["y_reg"]
    with pytest.raises(InputError, match=r"labels for every output in the training data.*none for reg"):
        ek.train(fresh, data=partial, recipe=spec, out=tmp_path / "partial")
    assert not (tmp_path / "partial").exists()


def test_hold_out_splits_off_disjoint_samples_with_their_labels():
    d = _data()
    split = Split({"features": d["features"]}, [d["y_cls"], d["y_reg"]])
    kept, held = split.hold_out(10, seed=3)
    assert len(kept) == 30 and len(held) == 10
    rows = {tuple(r) for r in kept.x["features"]} & {tuple(r) for r in held.x["features"]}
    assert not rows  # nothing held out was kept
    row = np.flatnonzero((d["features"] == held.x["features"][0]).all(1))[0]
    assert held.y[0][0] == d["y_cls"][row] and held.y[1][0] == d["y_reg"][row]
    assert split.take(5).y[1].shape == (5, 1)
    with pytest.raises(InputError, match=r"hold out between 1 and 39 samples\. Received: 40"):
        split.hold_out(40)
