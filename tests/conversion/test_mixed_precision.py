"""Precision auto: accuracy-aware mixed precision (edgekeras.mixed_precision), in both formats.

The model: a digits classifier whose output layer carries an 11th class with a bias of -1e4,
which never wins (Keras' accuracy is untouched) but stretches the per-tensor int8 range of the
logits so far that the ten real ones quantize to nothing: plain int8 loses ~80 points. Keeping
that one layer in float (or, in TFLite, at 16-bit activations: a 1e4 range still leaves the
logits a step of 0.3) recovers them. Every verdict is checked independently: the artifact is run
here in LiteRT / ONNX Runtime and its accuracy computed from the labels.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import assert_bad_input, invoke

import edgekeras as ek
from edgekeras.conversion_plan import plan_conversion
from edgekeras.errors import InputError
from edgekeras.manifest import check
from edgekeras.mixed_precision.groups import layer_groups, present_groups

BUDGET = 0.5


def _digits(huge_pixel=False):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    y = d.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    if huge_pixel:  # pixel (0, 0) is 0 in every digit: a huge input the model is made to ignore
        x[:, 0, 0, 0] = np.random.default_rng(1).uniform(0, 1e4, len(x))
    return x, y


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    """(model path, calibration .npz, labelled test .npz, Keras test accuracy)."""
    import keras

    x, y = _digits()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="pixels")
    h = keras.layers.Flatten(name="flat")(inputs)
    h = keras.layers.Dense(32, activation="relu", name="hidden")(h)
    outputs = keras.layers.Dense(11, activation="softmax", name="logits")(h)
    model = keras.Model(inputs, outputs, name="outlier")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1200], y[:1200], epochs=10, verbose=0)
    w, b = model.get_layer("logits").get_weights()
    b[10] = -1e4
    model.get_layer("logits").set_weights([w, b])
    root = tmp_path_factory.mktemp("outlier")
    model.save(root / "outlier.keras")
    np.savez(root / "cal.npz", pixels=x[:1200])
    np.savez(root / "test.npz", pixels=x[1200:], y=y[1200:])
    reference = float(np.mean(model.predict(x[1200:], verbose=0).argmax(-1) == y[1200:]))
    return root / "outlier.keras", root / "cal.npz", root / "test.npz", reference


def _run(path, x):
    """The artifact's outputs on `x`, run here with the real runtime, one sample at a time."""
    if str(path).endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    return np.concatenate([next(iter(runner(pixels=x[i : i + 1]).values())) for i in range(len(x))])


def _accuracy(path, test):
    with np.load(test) as f:
        return float(np.mean(_run(path, f["pixels"]).argmax(-1) == f["y"]))


def test_auto_meets_the_budget_where_int8_misses_in_both_formats(outlier, tmp_path):
    model, cal, test, reference = outlier
    plain = ek.convert(
        model, precisions=["int8"], calibration=cal, validate=False, out=tmp_path / "int8", formats=["tflite", "onnx"]
    )
    for artifact in plain:
        assert 100 * (reference - _accuracy(artifact.path, test)) > 10 * BUDGET, artifact.path.name

    out = tmp_path / "auto"
    args = ["convert", model, "--format", "tflite", "--format", "onnx", "--precision", "auto"]
    outcome = invoke(*args, "--accuracy-budget", BUDGET, "--data", test, "--calibration", cal, "--out", out)
    assert outcome.exit_code == 0, outcome.describe()
    assert (
        "1 of 3 layers kept in float32: logits; budget (min_cosine 0.98, max_accuracy_drop 0.5) met" in outcome.stdout
    )
    for path in (out / "outlier-tflite-auto.tflite", out / "outlier-onnx-auto.onnx"):
        assert 100 * (reference - _accuracy(path, test)) <= BUDGET, path.name  # independently
        mix = json.loads(path.with_suffix(".json").read_text())["mixed_precision"]
        assert mix["layers"] == {"flat": "int8", "hidden": "int8", "logits": "float32"}
        assert mix["final"]["met"] and mix["final"]["reverted_layers"] == ["logits"]
        start, *reverts = mix["steps"]
        assert start["action"] == "int8" and not start["passed"] and start["accuracy_delta"] < -10 * BUDGET
        assert reverts[-1]["layers"] == ["logits"] and reverts[-1]["passed"] and reverts[-1]["kept"]
        assert all(s["size_bytes"] > 0 and s["cosine"] is not None for s in mix["steps"])
        assert mix["ranking"][0]["layers"] == ["logits"]

    report = ek.report(out)
    text = report.markdown.read_text()
    assert "## Mixed precision" in text and "| 1 | to float32: logits |" in text
    assert "Mixed precision" in report.html.read_text()


def test_int16x8_reverts_meet_the_budget_with_the_layer_computing_in_int16(outlier, tmp_path):
    model, cal, test, reference = outlier
    artifact = ek.convert_auto(
        model, format="tflite", accuracy_budget=BUDGET, data=test, calibration=cal, out=tmp_path, revert_to="int16x8"
    )
    assert 100 * (reference - _accuracy(artifact.path, test)) <= BUDGET  # independently, in LiteRT
    check(json.loads(artifact.path.with_suffix(".json").read_text()))  # the manifest schema
    mix = artifact.manifest["mixed_precision"]
    assert mix["reverted_to"] == "int16x8" and "ai-edge-quantizer" in mix["route"]
    assert mix["layers"] == {"flat": "int8", "hidden": "int8", "logits": "int16x8"}
    assert mix["final"]["met"] and mix["final"]["reverted_layers"] == ["logits"]
    assert not mix["steps"][0]["passed"] and mix["steps"][-1]["layers"] == ["logits"]
    assert [rule["operation"] for rule in mix["quantizer_recipe"]] == ["*", "*", "INPUT", "OUTPUT"]

    # The tensor types, read by the LiteRT interpreter: logits' weights int8, its activations int16;
    # hidden's output int8 (its copy requantized to int16 feeds logits); float32 I/O.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact.path))
    types = {d["name"]: d["dtype"] for d in interpreter.get_tensor_details()}

    def of(layer):
        return {n: t for n, t in types.items() if re.search(rf"/{layer}(_\d+)?/", n.split(";")[0])}

    logits, hidden = of("logits"), of("hidden")
    assert {t for n, t in logits.items() if "/MatMul;" in n} == {np.int16}, logits  # the FULLY_CONNECTED output
    assert {t for n, t in logits.items() if n.endswith("/MatMul")} == {np.int8}, logits  # the weights
    assert {t for n, t in hidden.items() if "/MatMul;" in n and not n.endswith("_quantized")} == {np.int8}, hidden
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


def test_min_cosine_needs_no_labels(outlier, tmp_path):
    model, cal, test, _ = outlier
    artifact = ek.convert_auto(model, format="onnx", min_cosine=0.999, calibration=cal, out=tmp_path)
    manifest = artifact.manifest
    assert manifest["mixed_precision"]["criterion"] == {"min_cosine": 0.999}
    assert manifest["validation"]["data_source"] == "calibration_holdout" and manifest["validation"]["passed"]
    with np.load(test) as f:
        x = f["pixels"]
    import keras

    ref = keras.models.load_model(model).predict(x, verbose=0)
    got = _run(artifact.path, x)
    cosine = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cosine.mean() >= 0.999


def test_no_mix_within_the_budget_exits_1_with_the_best_mix_written(tmp_path):
    """A huge input pixel crushes the int8 input of TFLite's first (exact, never reverted) op:
    no layer kept in float brings accuracy back."""
    import keras

    x, _ = _digits(huge_pixel=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="pixels"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ],
        name="m",
    )
    w, b = model.get_layer("out").get_weights()
    w[0] = 0.0  # the model ignores the huge pixel; its labels are its own predictions (100 % accurate)
    model.get_layer("out").set_weights([w, b])
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "data.npz", pixels=x[:400], y=np.asarray(model.predict(x[:400], verbose=0).argmax(-1)))
    np.savez(tmp_path / "cal.npz", pixels=x[400:800])
    args = ["convert", tmp_path / "m.keras", "--format", "tflite", "--precision", "auto", "--accuracy-budget", BUDGET]
    outcome = invoke(*args, "--data", tmp_path / "data.npz", "--calibration", tmp_path / "cal.npz", "--out", tmp_path)
    assert outcome.exit_code == 1, outcome.describe()
    assert "no mix met the budget; the best one found is written" in outcome.stderr
    assert "budget (min_cosine 0.98, max_accuracy_drop 0.5) NOT met (best mix found)" in outcome.stdout
    manifest = json.loads((tmp_path / "m-tflite-auto.json").read_text())
    assert (tmp_path / "m-tflite-auto.tflite").exists() and not manifest["validation"]["passed"]
    assert manifest["mixed_precision"]["final"]["met"] is False and len(manifest["mixed_precision"]["steps"]) >= 2


@pytest.mark.parametrize(
    "options, names",
    [
        ({"precisions": ["auto"]}, ["--accuracy-budget", "--min-cosine", "neither"]),
        ({"precisions": ["auto"], "accuracy_budget": "half"}, ["--accuracy-budget", "'half'"]),
        ({"precisions": ["auto"], "accuracy_budget": -1}, ["--accuracy-budget", "-1"]),
        ({"precisions": ["auto"], "min_cosine": 1.5}, ["--min-cosine", "(0, 1]", "1.5"]),
        ({"precisions": ["int8"], "accuracy_budget": 0.5}, ["--precision auto", "int8"]),
        ({"precisions": ["auto"], "min_cosine": 0.99, "validate": False}, ["--no-validate"]),
        ({"precisions": ["auto"], "min_cosine": 0.99, "revert_to": "int4"}, ["--revert-to", "'int16x8'", "'int4'"]),
        ({"precisions": ["int8"], "revert_to": "int16x8"}, ["--precision auto", "--revert-to"]),
        (
            {"precisions": ["auto"], "formats": ["onnx"], "min_cosine": 0.99, "revert_to": "int16x8"},
            ["--revert-to float32", "--format onnx", "no int16x8 route", "tflite has one"],
        ),
    ],
)
def test_bad_auto_options_are_refused_before_anything_loads(options, names):
    with pytest.raises(InputError) as e:
        plan_conversion(**options)
    assert all(n in str(e.value) for n in names), str(e.value)


def test_a_budget_needs_labels_and_a_number(outlier, tmp_path):
    model, cal, _, _ = outlier
    base = ["convert", model, "--precision", "auto", "--calibration", cal, "--out", tmp_path]
    assert_bad_input(invoke(*base, "--accuracy-budget", "0.5"), "--data", "--min-cosine")
    assert_bad_input(invoke(*base, "--accuracy-budget", "half"), "--accuracy-budget")
    assert_bad_input(
        invoke(*base, "--min-cosine", "0.99", "--revert-to", "int6x8"), "--revert-to", suggestion="int16x8"
    )
    assert not list(tmp_path.iterdir())


def test_layer_groups_follow_activations_and_merge_shared_ops():
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="dense"),
            keras.layers.Softmax(name="softmax"),
        ]
    )
    # pool and flat (exact in int8) follow relu: left int8 after a float relu, they would quantize it again
    assert layer_groups(model) == [("conv", "bn", "relu", "pool", "flat"), ("dense", "softmax")]
    nodes = {"conv": ["a"], "bn": [], "relu": ["b"], "dense": ["c"], "softmax": ["b"]}  # relu and softmax share 'b'
    groups = present_groups(layer_groups(model), lambda layers: {n: nodes.get(n, []) for n in layers})
    assert [g.layers for g in groups] == [("conv", "relu", "dense", "softmax")]
