"""Big Keras files load with their weights held about once (`edgekeras/keras_lean_load.py`):
the same model, value for value, as Keras' own load, and Keras untouched after the block."""

import numpy as np
import pytest

from edgekeras import keras_lean_load


def test_the_installed_keras_is_the_one_the_patch_was_written_for():
    assert keras_lean_load.drift() == [], (
        "Keras changed what edgekeras/keras_lean_load.py patches: re-read H5IOStore.__getitem__, "
        "Variable.assign and the TensorFlow Variable's _initialize_with_initializer, then update FINGERPRINTS."
    )


@pytest.mark.parametrize("form", ["model.keras", "model.weights.h5"])
def test_lean_loading_gives_keras_own_values_in_row_blocks(tmp_path, monkeypatch, form):
    import keras
    from keras.src.backend.common import variables
    from keras.src.saving import saving_lib

    from edgekeras.model_io import load_model

    keras.utils.set_random_seed(4)
    inputs = keras.Input((300,), name="x")
    x = keras.layers.Dense(500, activation="relu", name="wide")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(7, name="out")(x))
    path = tmp_path / form
    model.save(path) if form.endswith(".keras") else model.save_weights(path)
    # every variable of 20 KB or more is "big", copied in blocks of 20 KB (a few rows of `wide`)
    monkeypatch.setattr(keras_lean_load, "LEAN_FROM", 1)
    monkeypatch.setattr(keras_lean_load, "CHUNK", 20000)
    originals = (saving_lib.H5IOStore.__getitem__, variables.Variable.assign)
    read_in_blocks = []

    class Counted(keras_lean_load._OnDisk):
        def __init__(self, dataset):
            super().__init__(dataset)
            read_in_blocks.append(self.shape)

    monkeypatch.setattr(keras_lean_load, "_OnDisk", Counted)
    if form.endswith(".keras"):
        loaded = load_model(path).model
    else:
        loaded = keras.models.clone_model(model)  # fresh random weights, overwritten by the file
        with keras_lean_load.lean_loading(path):
            loaded.load_weights(path)
    assert (saving_lib.H5IOStore.__getitem__, variables.Variable.assign) == originals
    assert (300, 500) in read_in_blocks and (500, 7) not in read_in_blocks  # 14 KB: read as Keras reads it
    for theirs, ours in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(theirs.numpy(), ours.numpy(), err_msg=theirs.path)
