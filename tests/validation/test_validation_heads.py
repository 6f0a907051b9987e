"""Each output judged by a check that fits it: a positive-valued regressor by its error relative
to the outputs' spread and by its own MAE (not by cosine, which stays near 1 for values far
from 0), a classifier head by top-1 agreement and accuracy, each head of a multi-output model
on its own labels; and the losses recorded in manifests are the ones `evaluate` reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek


def _houses(n=1200, seed=0):
    """Synthetic house prices (50..405) from square feet, bedrooms, age and distance, in
    their raw units: one int8 scale for a tensor holding 4000 sq ft and 3 bedrooms."""
    rng = np.random.default_rng(seed)
    sqft, beds = rng.uniform(500, 4000, n), rng.integers(1, 6, n).astype(float)
    age, dist = rng.uniform(0, 100, n), rng.uniform(0.5, 30, n)
    x = np.stack([sqft, beds, age, dist], 1).astype("float32")
    price = 40 + 0.08 * sqft + 15 * beds - 0.9 * age - 4 * dist + rng.normal(0, 10, n)
    return x, np.clip(price, 50, 500).astype("float32")


def _price_model(x, y, epochs=40):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((x.shape[1],), name="features")
    h = keras.layers.Dense(32, activation="relu")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(1, name="price")(h))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def _checks(output):
    return {c["check"]: c for c in output["checks"]}


def test_int8_house_prices_fail_on_their_mae_not_on_cosine(tmp_path):
    x, y = _houses()
    model = _price_model(x[:800], y[:800])
    test = {"features": x[800:], "y": y[800:]}
    with pytest.raises(ek.ValidationFailed):
        ek.convert(
            model,
            formats=["tflite"],
            precisions=["fp32", "int8"],
            calibration=x[:200],
            data=test,
            out=tmp_path,
            name="houses",
        )
    manifests = {p.stem.rsplit("-", 1)[-1]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    fp32, int8 = manifests["fp32"]["validation"], manifests["int8"]["validation"]
    assert fp32["passed"] and fp32["outputs"][0]["metric_ratio"] == pytest.approx(1.0, abs=1e-3)

    (price,) = int8["outputs"]
    assert price["kind"] == "regressor" and price["kind_basis"] == "loss 'mse'"
    assert price["labels"] == "y" and price["metric"] == "mae" and price["metric_source"] == "compiled"
    # the recorded MAEs are the model's own metric, and the ratio is theirs
    assert price["metric_reference"] == pytest.approx(int8["metrics_reference"]["mae"])
    assert price["metric_artifact"] == pytest.approx(int8["metrics_artifact"]["mae"])
    assert price["metric_ratio"] == pytest.approx(price["metric_artifact"] / price["metric_reference"])
    checks = _checks(price)
    # cosine alone would pass: prices far from 0 keep it near 1 (measured 0.993)
    assert checks["cosine"]["passed"] and checks["cosine"]["value"] > 0.98
    assert not checks["metric_ratio"]["passed"] and checks["metric_ratio"]["limit"] == 1.10
    assert price["metric_ratio"] > 1.3  # measured 1.49: MAE 17.6 -> 26.2
    assert not checks["relative_error"]["passed"] and price["relative_error"] > 0.2  # measured 0.29
    failed = sorted(f.split(": ")[1].split(" =")[0] for f in int8["failures"])
    assert failed == ["mae_ratio", "relative_error"], int8["failures"]

    # the tables show the regressor's own metric and its ratio, not empty accuracy columns
    report = ek.report(tmp_path)
    line = next(r for r in report.markdown.read_text().splitlines() if r.startswith("| houses-tflite-int8.tflite"))
    cells = [c.strip() for c in line.split("|")]
    assert f"mae {price['metric_artifact']:.4g}" in cells and f"x{price['metric_ratio']:.3f}" in cells
    assert "labelled" in cells and "FAIL" in cells
    row = next(r for r in report.rows if r["artifact"].endswith("tflite-int8.tflite"))
    assert row["heads"][0]["metric"] == "mae" and row["data_source"] == "labelled"


def test_int8_house_prices_on_standardized_features_pass_with_mae_in_line(tmp_path):
    x, y = _houses()
    x = ((x - x[:800].mean(0)) / x[:800].std(0)).astype("float32")
    model = _price_model(x[:800], y[:800])
    (art,) = ek.convert(
        model,
        formats=["tflite"],
        precisions=["int8"],
        calibration=x[:200],
        data={"features": x[800:], "y_price": y[800:]},  # y_<output> works for one output too
        out=tmp_path,
    )
    (price,) = art.manifest["validation"]["outputs"]
    assert price["labels"] == "y_price" and price["metric_ratio"] < 1.02  # measured 1.0014
    assert price["relative_error"] < 0.02  # measured 0.0068
    assert all(c["passed"] for c in price["checks"] if "passed" in c)


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A trained model with a 5-class softmax head and a regression head, saved, with an .npz
    of labelled test data (y_cls, y_reg) and one labelling the classifier only."""
    import keras

    root = tmp_path_factory.mktemp("two-heads")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype("float32")
    cls = (x[:, 0] * 2 + x[:, 1]).round().clip(-2, 2).astype("int64") + 2
    reg = (100 + 30 * x[:, 2] + 10 * x[:, 3]).astype("float32")[:, None]
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(32, activation="relu", kernel_regularizer="l2")(inp)
    outputs = {
        "cls": keras.layers.Dense(5, activation="softmax", name="cls")(h),
        "reg": keras.layers.Dense(1, name="reg")(h),
    }
    model = keras.Model(inp, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        metrics={"cls": ["accuracy"], "reg": ["mae", keras.metrics.RootMeanSquaredError()]},
        loss_weights={"cls": 1.0, "reg": 0.001},
    )
    model.fit(x[:400], {"cls": cls[:400], "reg": reg[:400]}, epochs=30, batch_size=32, verbose=0)
    model.save(root / "two.keras")
    np.savez(root / "test.npz", features=x[400:], y_cls=cls[400:], y_reg=reg[400:])
    np.savez(root / "test-cls.npz", features=x[400:], y_cls=cls[400:])
    np.savez(root / "calibration.npz", features=x[:200])
    return root


@pytest.fixture(scope="module")
def converted(two_heads):
    """`edgekeras convert` of the two-head model to TFLite fp32 and int8, validated on y_cls, y_reg."""
    root = two_heads
    result = invoke(
        *["convert", root / "two.keras", "--format", "tflite", "--precision", "fp32", "--precision", "int8"],
        *["--calibration", root / "calibration.npz", "--data", root / "test.npz"],
        *["--out", root / "artifacts", "--name", "two", "--json"],
    )
    return root, result


def test_two_heads_each_judged_on_their_own_labels_and_metric(converted):
    root, result = converted
    assert result.exit_code == 0, result.output  # y_cls and y_reg beside the inputs: accepted
    int8 = json.loads((root / "artifacts" / "two-tflite-int8.json").read_text())["validation"]
    heads = {o["output"]: o for o in int8["outputs"]}
    assert heads["cls"]["kind"] == "classifier" and heads["reg"]["kind"] == "regressor"
    assert heads["cls"]["labels"] == "y_cls" and heads["reg"]["labels"] == "y_reg"
    assert heads["cls"]["metric"] == "accuracy" and heads["reg"]["metric"] == "mae"
    assert set(_checks(heads["cls"])) == {"max_abs_error", "cosine", "top1_agreement", "accuracy_drop"}
    assert set(_checks(heads["reg"])) == {"max_abs_error", "cosine", "relative_error", "metric_ratio"}
    assert heads["cls"]["top1_agreement"] is not None and heads["reg"]["top1_agreement"] is None
    assert heads["cls"]["metric_reference"] == pytest.approx(int8["metrics_reference"]["cls_accuracy"])
    assert heads["reg"]["metric_artifact"] == pytest.approx(int8["metrics_artifact"]["reg_mae"])
    assert heads["cls"]["accuracy_delta"] == pytest.approx(
        100 * (int8["metrics_artifact"]["cls_accuracy"] - int8["metrics_reference"]["cls_accuracy"])
    )
    assert int8["data_source"] == "labelled" and int8["unlabelled"] == [] and not int8["weak"]


def test_manifests_record_the_loss_evaluate_reports(converted):
    root, _ = converted
    fp32 = json.loads((root / "artifacts" / "two-tflite-fp32.json").read_text())["validation"]
    evaluated = ek.evaluate(root / "two.keras", data=root / "test.npz")
    assert set(fp32["metrics_reference"]) == set(evaluated)
    assert evaluated["loss"] > 0 and fp32["metrics_artifact"]["loss"] > 0
    for key, value in evaluated.items():  # loss (with the L2 term), cls_loss, reg_loss, metrics
        assert fp32["metrics_reference"][key] == pytest.approx(value, rel=1e-5), key


def test_labels_for_one_head_validate_it_and_name_the_other(converted):
    root, _ = converted
    artifact = root / "artifacts" / "two-tflite-int8.tflite"
    result = invoke("validate", artifact, "--reference", root / "two.keras", "--data", root / "test-cls.npz")
    assert result.exit_code == 0, result.describe()
    assert "unlabelled: reg" in result.output and "accuracy" in result.output
    v = json.loads(artifact.with_suffix(".json").read_text())["validation"]
    heads = {o["output"]: o for o in v["outputs"]}
    assert v["unlabelled"] == ["reg"] and heads["reg"]["labels"] is None and heads["reg"]["metric"] is None
    assert _checks(heads["reg"])["metric_ratio"] == {"check": "metric_ratio", "skipped": "no labels for this output"}
    assert heads["cls"]["metric"] == "accuracy" and heads["cls"]["accuracy_delta"] is not None
    # only the labelled head's numbers: no total loss (it needs every head), nothing of reg's
    assert set(v["metrics_reference"]) == {"cls_accuracy", "cls_loss"}
    full = ek.evaluate(root / "two.keras", data=root / "test.npz")
    assert v["metrics_reference"]["cls_loss"] == pytest.approx(full["cls_loss"], rel=1e-5)


def test_generated_inputs_are_flagged_weak_for_int8(converted, caplog):
    root, _ = converted
    artifact = root / "artifacts" / "two-tflite-int8.tflite"
    result = ek.validate(artifact, reference=root / "two.keras", raise_on_failure=False)
    assert result.data == "generated inputs" and result.data_source == "generated" and result.weak
    assert any("validated on generated inputs" in r.getMessage() for r in caplog.records)
    held_out = np.load(root / "test.npz")["features"]
    result = ek.validate(
        artifact, reference=root / "two.keras", data={"features": held_out}, source="calibration_holdout"
    )
    assert result.data == "held-out calibration inputs" and not result.weak
    manifest = json.loads(artifact.with_suffix(".json").read_text())["validation"]
    assert manifest["data_source"] == "calibration_holdout" and manifest["weak"] is False
    fp32 = ek.validate(artifact.with_name("two-tflite-fp32.tflite"), reference=root / "two.keras")
    assert fp32.data_source == "generated" and not fp32.weak  # float parity does not hinge on ranges
