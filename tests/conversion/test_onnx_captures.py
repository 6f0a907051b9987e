"""Captured constants (a Normalization layer's mean/variance, as in EfficientNet) stay inside the
ONNX graph instead of becoming extra inputs no caller feeds (STACK-NOTES)."""

import numpy as np
import onnx

import edgekeras as ek


def test_normalization_constants_are_initializers_not_inputs(tmp_path):
    import keras

    inp = keras.Input((6,), name="features")
    norm = keras.layers.Normalization(mean=np.arange(6.0), variance=np.arange(1.0, 7.0))(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(norm))
    x = np.random.default_rng(0).random((32, 6)).astype("float32") * 5
    (art,) = ek.convert(model, formats=["onnx"], precisions=["fp32"], out=tmp_path, data={"features": x})
    graph = onnx.load(str(art.path)).graph
    assert [i.name for i in graph.input] == ["features"]
    assert art.manifest["validation"]["passed"] and art.manifest["validation"]["max_abs_error"] < 1e-5
