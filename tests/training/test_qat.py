"""Quantization-aware training on Keras 3: where the model simulates int8, that its artifacts
compute what it computes (TFLite and ONNX), and the errors a user can make."""

from __future__ import annotations

import numpy as np
import pytest

import edgekeras as ek


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], digits.target[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def _trained_model():
    """A small digits CNN with what QAT must handle: conv + BN + swish, depthwise + BN + ReLU,
    a squeeze-excite gate (sigmoid inside a Dense), a softmax head."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="conv_bn")(h)
    h = keras.layers.Activation("swish", name="conv_swish")(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.BatchNormalization(name="dw_bn")(h)
    h = keras.layers.ReLU(name="dw_relu")(h)
    gate = keras.layers.GlobalAveragePooling2D(name="squeeze")(h)
    gate = keras.layers.Dense(16, activation="sigmoid", name="gate")(gate)
    h = keras.layers.Multiply(name="excite")([h, keras.layers.Reshape((1, 1, 16), name="gate_shape")(gate)])
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    (x, y), _ = _digits()
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    return _trained_model()


@pytest.fixture(scope="module")
def qat_model(trained):
    from edgekeras.qat.aware import quantize_aware

    train, _ = _digits()
    return quantize_aware(trained, train, epochs=2)


def _layer_kinds(model):
    return [(type(layer).__name__, layer.name) for layer in model.layers]


def test_fake_quant_sits_where_the_runtimes_quantize(qat_model):
    from edgekeras.qat import fake_quant_layers

    names = [layer.name for layer in fake_quant_layers(qat_model)]
    kinds = {name: kind for kind, name in _layer_kinds(qat_model)}
    # BatchNormalization folded into the conv before it; its output simulated once.
    assert "conv_bn" not in kinds and "dw_bn" not in kinds
    assert qat_model.get_layer("conv").use_bias and "conv_bn_quant" in names and "conv_quant" not in names
    # swish is sigmoid times input (LOGISTIC, MUL): both outputs simulated, the sigmoid on the
    # fixed [0, 255/256] grid LiteRT uses; depthwise + ReLU fused: one, after the ReLU.
    assert {"conv_swish_sigmoid_quant", "conv_swish_swish_quant", "dw_relu_quant"} <= set(names)
    assert "dw_bn_quant" not in names
    assert qat_model.get_layer("conv_swish_sigmoid_quant").fixed_range == [0.0, 255 / 256]
    # An activation inside a layer is an op of its own: the layer's output is simulated before it.
    assert {"gate_quant", "gate_sigmoid_quant", "probs_quant"} <= set(names)
    # The output keeps its name: the last FakeQuant takes it, the Dense it follows is renamed.
    assert qat_model.output_names == ["probs"] and type(qat_model.get_layer("probs")).__name__ == "FakeQuant"
    assert qat_model.get_layer("probs_float").units == 10
    # Layers that keep their input's scale get none; the input gets one.
    assert "gate_shape_quant" not in names and names[0] == "image_quant"


def test_kernels_sit_on_the_int8_grid(qat_model):
    kernel = np.asarray(qat_model.get_layer("conv").kernel.numpy())
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    steps = kernel / scale
    assert np.allclose(steps, np.round(steps), atol=1e-3)


def test_qat_artifacts_compute_what_the_model_computes(qat_model, trained, tmp_path):
    """The int8 artifacts of a QAT model match it closer than post-training int8 matches the
    float model: the ranges and weights are the model's own. Measured: mean abs error TFLite
    3.3e-5 vs 1.6e-3 post-training (47x closer), ONNX 3.3e-5 vs 2.0e-3 (60x; 8.9e-4 before the
    Dense layer's MatMul and bias Add were fused, which left the product rounded on its own)."""
    _, (x_test, y_test) = _digits()
    x_train = _digits()[0][0]
    common = dict(formats=["tflite", "onnx"], precisions=["int8"], calibration=x_train[:200], data=(x_test, y_test))
    qat_arts = ek.convert(qat_model, out=tmp_path / "qat", **common)
    ptq_arts = ek.convert(trained, out=tmp_path / "ptq", **common)
    closer = {"tflite": 10, "onnx": 10}  # how many times closer than post-training, at least
    for qat_art, ptq_art in zip(qat_arts, ptq_arts):
        q, p = qat_art.manifest["validation"], ptq_art.manifest["validation"]
        print(qat_art.path.name, q["outputs"][0], "vs post-training", p["outputs"][0])
        assert q["passed"] is True
        assert q["outputs"][0]["mean_abs_error"] < p["outputs"][0]["mean_abs_error"] / closer[qat_art.format]
        assert q["outputs"][0]["top1_agreement"] >= 0.99
    onnx_art = qat_arts[1]
    assert onnx_art.manifest["fake_quant_ranges"] == len(
        [layer for layer in qat_model.layers if type(layer).__name__ == "FakeQuant"]
    )


def test_a_qat_model_saves_and_loads_in_safe_mode(qat_model, tmp_path):
    from edgekeras.model_io import load_model

    path = tmp_path / "qat.keras"
    qat_model.save(path)
    loaded = load_model(path).model  # safe_mode stays on: FakeQuant is a registered class
    x = _digits()[1][0][:32]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat_model.predict(x, verbose=0), atol=1e-6)


def test_bad_input_is_refused_clearly(trained, qat_model, tmp_path):
    import keras

    from edgekeras.qat.aware import quantize_aware

    train, _ = _digits()
    with pytest.raises(ek.InputError, match="already quantization-aware"):
        quantize_aware(qat_model, train)
    with pytest.raises(ek.InputError, match="labelled training data"):
        quantize_aware(trained, train[0])
    with pytest.raises(ek.InputError, match="epochs"):
        quantize_aware(trained, train, epochs=-1)
    # Float precisions of a QAT model would not be float (TFLite fp16/dynamic came out full int8)
    # or round on ONNX Runtime's own terms: refused before anything is written.
    with pytest.raises(ek.InputError, match="Expected precision int8 for a quantization-aware model"):
        ek.convert(qat_model, formats=["tflite"], precisions=["fp16", "int8"], out=tmp_path)
    assert not list(tmp_path.iterdir())

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 64)))

    net = Net()
    net(train[0][:2])
    net.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ek.InputError, match="subclassed"):
        quantize_aware(net, train)


def test_a_recipe_with_qat_exports_int8_from_the_quantization_aware_model(tmp_path):
    """`qat:` in a recipe: after training, a quantization-aware copy fine-tunes and saves as
    model-qat.keras; int8 artifacts come from it (named <name>-qat), fp32 from the float model,
    each validated against the model it came from."""
    import json

    from conftest import digits_recipe

    recipe = digits_recipe(fit={"epochs": 6}, export={"formats": ["tflite", "onnx"], "precisions": ["fp32", "int8"]})
    recipe["qat"] = {"epochs": 1}
    run = ek.train(recipe, out=tmp_path / "run")
    name = run.recipe.name
    assert sorted(a.path.name for a in run.artifacts) == sorted(
        [
            f"{name}-tflite-fp32.tflite",
            f"{name}-onnx-fp32.onnx",
            f"{name}-qat-tflite-int8.tflite",
            f"{name}-qat-onnx-int8.onnx",
        ]
    )
    assert all(a.manifest["validation"]["passed"] for a in run.artifacts)
    assert (run.path / "model-qat.keras").exists()
    state = json.loads((run.path / "run.json").read_text())
    assert state["qat"]["epochs"] == 1 and state["qat"]["test_metrics"]["accuracy"] > 0.8
    assert "qat:" in (run.path / "recipe.yaml").read_text()

    recipe["qat"] = {"epchs": 1}
    with pytest.raises(ek.InputError, match="Did you mean 'epochs'"):
        ek.load_recipe(recipe)
