"""`edgekeras prune MODEL.keras --data FILE.npz`: a bare model file, no recipe, fine-tuned on the user's arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_bad_input, invoke


@pytest.fixture
def bare_model(ws):
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[..., None] / 16).astype("float32"), digits.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="pixels"),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="bare",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1200], y[:1200], epochs=2, verbose=0)
    model.save(ws / "bare.keras")
    np.savez(ws / "train.npz", pixels=x[:1200], y=y[:1200])
    return ws / "bare.keras"


def test_a_model_file_prunes_on_data_from_an_npz(bare_model, ws):
    r = invoke("prune", bare_model, "--sparsity", "0.5", "--data", ws / "train.npz", "--epochs", "1", "--out", "p")
    assert r.exit_code == 0, r.describe()
    state = json.loads((ws / "p" / "run.json").read_text())
    assert state["prune"]["weights"]["probs/kernel"]["sparsity"] == pytest.approx(0.5, abs=0.001)
    assert "accuracy" in state["test_metrics"] and (ws / "p" / "model.keras").exists()


def test_a_model_file_without_data_names_the_option(bare_model, ws):
    r = invoke("prune", bare_model, "--sparsity", "0.5", "--out", "p")
    assert_bad_input(r, "--data FILE.npz", "--recipe")
    assert not (ws / "p").exists()
