"""A subclassed `keras.Model` instance given to `ek.convert` as a user holds it (called on a
batch, not wrapped): it is converted through a functional model on named inputs shaped like
that batch, with TFLite and ONNX fp32 parity; one never called is an InputError saying what
to do. Also the coverage table's "subclassed model" family.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgekeras as ek
from edgekeras.errors import InputError


def _one_input_model():
    import keras

    class Residual(keras.Model):
        def __init__(self):
            super().__init__(name="residual")
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.head = keras.layers.Dense(3)
            self.skip = keras.layers.Dense(3)

        def call(self, x):
            return self.head(self.hidden(x)) + self.skip(x)

    keras.utils.set_random_seed(0)
    return Residual()


def _dict_input_model():
    import keras

    class TwoInputs(keras.Model):
        def __init__(self):
            super().__init__(name="two_inputs")
            self.image = keras.layers.Dense(8, activation="tanh")
            self.stats = keras.layers.Dense(8)
            self.head = keras.layers.Dense(2)

        def call(self, inputs):
            return self.head(self.image(inputs["pixels"]) * self.stats(inputs["stats"]))

    keras.utils.set_random_seed(0)
    return TwoInputs()


def _parity(artifacts):
    assert sorted(a.format for a in artifacts) == ["onnx", "tflite"]
    for art in artifacts:
        validation = art.manifest["validation"]
        assert validation["passed"] and validation["max_abs_error"] < 1e-4, validation


def test_subclassed_model_with_one_input_converts(tmp_path):
    model = _one_input_model()
    rng = np.random.default_rng(0)
    model(rng.normal(size=(4, 10)).astype("float32"))  # built by a call, as after training
    x = rng.normal(size=(64, 10)).astype("float32")
    arts = ek.convert(model, formats=["tflite", "onnx"], precisions=["fp32"], data={"x": x}, out=tmp_path)
    _parity(arts)
    assert [(s["name"], s["shape"]) for s in arts[0].manifest["inputs"]] == [("input", [None, 10])]
    assert arts[0].path.name == "residual-tflite-fp32.tflite"


def test_subclassed_model_with_dict_inputs_converts(tmp_path):
    model = _dict_input_model()
    rng = np.random.default_rng(1)
    model({"pixels": np.zeros((2, 12), "float32"), "stats": np.zeros((2, 3), "float32")})
    feeds = {"pixels": rng.normal(size=(64, 12)).astype("float32"), "stats": rng.normal(size=(64, 3)).astype("float32")}
    arts = ek.convert(model, formats=["tflite", "onnx"], precisions=["fp32"], data=feeds, out=tmp_path)
    _parity(arts)
    for art in arts:  # inputs keep the dict's keys, matched by name
        assert sorted((s["name"], s["shape"][1]) for s in art.manifest["inputs"]) == [("pixels", 12), ("stats", 3)]


def test_subclassed_model_never_called_is_an_input_error(tmp_path):
    with pytest.raises(
        InputError,
        match=r"Expected a keras.Model with known input shapes. Received: the subclassed "
        r"model 'residual' \(Residual\), which has never been called.*Call it on a "
        r"batch first.*functional model",
    ):
        ek.convert(_one_input_model(), formats=["onnx"], out=tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_compiled_subclassed_model_keeps_its_loss_for_evaluate():
    model = _one_input_model()
    model.compile(loss="mse", metrics=["mae"])
    x = np.random.default_rng(2).normal(size=(32, 10)).astype("float32")
    model(x[:2])
    metrics = ek.evaluate(model, data={"x": x, "y": np.zeros((32, 3), "float32")})
    assert set(metrics) == {"loss", "mae"} and metrics["loss"] > 0


def test_coverage_family_subclassed_model_converts(tmp_path):
    from edgekeras.coverage.cell import family_data
    from edgekeras.coverage.families import get_family

    model, calibration, validation = family_data(get_family("subclassed model"))
    assert not hasattr(model, "inputs")  # held as the user holds it: not wrapped
    arts = ek.convert(
        model,
        formats=["tflite", "onnx"],
        precisions=["fp32"],
        calibration=calibration,
        data=validation,
        out=tmp_path,
        name="model",
    )
    _parity(arts)
