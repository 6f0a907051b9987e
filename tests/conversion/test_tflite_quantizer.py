"""TFLite int8 quantized by TensorFlow's converter or by ai-edge-quantizer (quantize recipe `quantizer`).

TensorFlow's MLIR quantizer holds about 8x a model's weights in memory (VGG16: 4.4 GiB alone),
so from `memory_estimate.AEQ_INT8_FROM` bytes of weights `quantizer: auto` quantizes with
ai-edge-quantizer from the float file instead. The two must give the same artifact quality,
and auto must keep the converter wherever the artifact needs something only it does.
"""

import numpy as np
import pytest

import edgekeras as ek
from edgekeras import memory_estimate
from edgekeras.errors import InputError
from edgekeras.readers import tflite as reader


def _int8(model, out, recipe=None, **kw):
    return ek.convert(model, formats=["tflite"], precisions=["int8"], out=out, recipe=recipe, **kw)[0]


def test_ai_edge_quantizer_int8_matches_the_converters_on_the_digits_cnn(digits_run, tmp_path):
    data = dict(calibration=digits_run.data.calibration(), data=digits_run.data.test)
    made = {
        tool: _int8(digits_run.model, tmp_path / tool, {"precision": "int8", "quantizer": tool}, **data)
        for tool in ("converter", "ai-edge-quantizer")
    }
    outputs = {}
    for tool, artifact in made.items():
        manifest = artifact.manifest
        assert manifest["quantizer"]["tool"] == tool and "asks for it" in manifest["quantizer"]["why"]
        assert manifest["validation"]["passed"] is True
        model = reader.read(artifact.path)
        weighted = [op.name for op in reader.float_ops(model) if op.weighted and not op.converting]
        assert weighted == [], (tool, weighted)  # every weighted op computes in int8
        outputs[tool] = manifest["validation"]["outputs"][0]
    a, b = outputs["converter"], outputs["ai-edge-quantizer"]
    assert abs(a["metric_artifact"] - b["metric_artifact"]) <= 0.005
    assert b["cosine"] >= 0.999 and abs(a["top1_agreement"] - b["top1_agreement"]) <= 0.005


@pytest.fixture(scope="module")
def small_model():
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="probs")(x))
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def test_auto_quantizes_big_models_with_ai_edge_quantizer_unless_the_artifact_needs_the_converter(
    small_model, tmp_path, monkeypatch
):
    calibration = np.random.default_rng(0).random((32, 12, 12, 3), dtype=np.float32)
    plain = _int8(small_model, tmp_path / "small", calibration=calibration, validate=False)
    assert plain.manifest["quantizer"]["tool"] == "converter" and "under" in plain.manifest["quantizer"]["why"]

    monkeypatch.setattr(memory_estimate, "AEQ_INT8_FROM", 0)  # every model counts as big
    big = _int8(small_model, tmp_path / "big", calibration=calibration, validate=False)
    assert big.manifest["quantizer"]["tool"] == "ai-edge-quantizer"
    assert "of weights" in big.manifest["quantizer"]["why"] and big.manifest["quantizer"]["rules"]

    int8_io = _int8(small_model, tmp_path / "io", calibration=calibration, validate=False, int8_io=True)
    assert int8_io.manifest["quantizer"]["tool"] == "converter"
    assert "io_dtype: int8" in int8_io.manifest["quantizer"]["why"]


def test_a_recipe_asking_ai_edge_quantizer_for_what_it_cannot_write_is_refused(small_model, tmp_path):
    calibration = np.random.default_rng(0).random((32, 12, 12, 3), dtype=np.float32)
    recipe = {"precision": "int8", "quantizer": "ai-edge-quantizer", "io_dtype": "int8"}
    with pytest.raises(InputError, match="quantizer: ai-edge-quantizer") as err:
        _int8(small_model, tmp_path / "x", recipe, calibration=calibration, validate=False)
    assert "io_dtype: int8" in str(err.value) and "quantizer: converter" in str(err.value)
    with pytest.raises(InputError, match="quantizer"):  # ONNX has one quantizer: the knob would be ignored
        ek.convert(
            small_model,
            formats=["onnx"],
            precisions=["int8"],
            out=tmp_path / "o",
            calibration=calibration,
            recipe={"precision": "int8", "quantizer": "converter"},
            validate=False,
        )


def test_the_memory_estimate_follows_the_quantizer_route():
    big = 537 * 10**6  # VGG16's weights
    auto = memory_estimate.estimate("tflite", "int8", big)
    converter = memory_estimate.estimate("tflite", "int8", big, quantizer="converter")
    assert auto.bytes < converter.bytes  # ai-edge-quantizer: 3.02 GiB measured, the converter 4.99
    small = 50 * 10**6
    assert memory_estimate.estimate("tflite", "int8", small) == memory_estimate.estimate(
        "tflite", "int8", small, quantizer="converter"
    )
