"""Which outputs get a top-1 agreement check: classifiers only, decided by the compiled loss or,
without one, by softmax-like rows."""

from __future__ import annotations

import numpy as np

import edgekeras as ek
from edgekeras.validation import classifier_outputs


def _three_heads():
    import keras

    inp = keras.Input((4,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inp)
    outputs = {
        "logits": keras.layers.Dense(3, name="logits")(h),
        "box": keras.layers.Dense(4, name="box")(h),
        "probs": keras.layers.Dense(3, activation="softmax", name="probs")(h),
    }
    return keras.Model(inp, outputs), np.random.default_rng(0).random((16, 4)).astype("float32")


def test_classifier_outputs_follow_the_compiled_loss():
    import keras

    model, x = _three_heads()
    out = {k: np.asarray(v) for k, v in model(x).items()}
    # Uncompiled: only rows that look like probabilities say "classifier".
    assert classifier_outputs(model, out) == {"logits": False, "box": False, "probs": True}
    model.compile(
        loss={
            "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "box": "mean_squared_error",
            "probs": "CategoricalCrossentropy",
        }
    )
    assert classifier_outputs(model, out) == {"logits": True, "box": False, "probs": True}


def test_a_regression_head_gets_no_top1_check(tmp_path):
    import keras

    model, x = _three_heads()
    model.compile(
        loss={
            "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "box": keras.losses.MeanAbsoluteError(),
            "probs": "categorical_crossentropy",
        }
    )
    (art,) = ek.convert(model, formats=["tflite"], precisions=["fp32"], data={"features": x}, out=tmp_path)
    top1 = {o["output"]: o["top1_agreement"] for o in art.manifest["validation"]["outputs"]}
    assert top1["box"] is None and top1["logits"] == 1.0 and top1["probs"] == 1.0
