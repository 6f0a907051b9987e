"""Preprocessing layers with `adapt` in a recipe's model are adapted on the training split.

A `Normalization: {}` nobody adapted has mean 0 and variance 1 and does nothing: after
training, its statistics must be the training split's own — computed on the tensor the layer
sits on (after a Reshape, on one of two inputs, inside a nested model), from the un-augmented
inputs. Layers whose input cannot be computed are refused before anything is written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgekeras as ek
from edgekeras.adaptation import adapt_layers, needs_adapting, pending_layers
from edgekeras.data import Split
from edgekeras.errors import InputError

NO_EXPORT = {"formats": [], "precisions": ["fp32"]}
# Features on very different scales: what a Normalization layer is for.
LOCATIONS, SCALES = np.array([1000.0, 0.002, -50.0]), np.array([300.0, 0.0005, 10.0])


def _features(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(LOCATIONS, SCALES, size=(n, 3)).astype("float32")
    y = ((x[:, 0] - 1000) / 300 + (x[:, 2] + 50) / 10 > 0).astype("int64")
    return x, y


def _recipe(data, model, name="adapt"):
    return {
        "name": name,
        "seed": 1,
        "data": data,
        "model": model,
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1},
        "export": NO_EXPORT,
    }


def _stats(layer):
    return np.asarray(layer.adapt_mean), np.asarray(layer.adapt_variance)


def _assert_statistics(layer, features, axes=0):
    mean, variance = _stats(layer)
    np.testing.assert_allclose(mean, features.mean(axis=axes), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(variance, features.var(axis=axes), rtol=1e-3, atol=1e-9)


def test_normalization_first_in_a_recipe_learns_the_training_split(tmp_path):
    x, y = _features()
    np.savez(tmp_path / "scales.npz", x=x, y=y)
    data = {
        "source": "npz",
        "path": str(tmp_path / "scales.npz"),
        "batch_size": 32,  # several batches: adapt merges their statistics
        # augmentation is random and training-only: the statistics must not see it
        "augment": [{"GaussianNoise": {"stddev": 1.0}}],  # 2000x the second feature's spread
    }
    model = {
        "type": "sequential",
        "input_shape": [3],
        "layers": [{"Normalization": {}}, {"Dense": {"units": 2, "activation": "softmax"}}],
    }
    run = ek.train(_recipe(data, model), out=tmp_path / "run")

    train_x = run.data.train.x
    assert len(train_x) < len(x)  # the training split only, not validation and test
    _assert_statistics(run.model.layers[0], train_x)
    assert not np.allclose(_stats(run.model.layers[0])[0], x.mean(axis=0), rtol=1e-6)
    state = json.loads((run.path / "run.json").read_text())
    assert state["adapted"] == [{"layer": "normalization", "class": "Normalization", "samples": len(train_x)}]
    assert run.adapted == state["adapted"]

    import keras

    saved = keras.saving.load_model(run.path / "model.keras")
    _assert_statistics(saved.layers[0], train_x)
    np.testing.assert_allclose(saved.predict(x[:8], verbose=0), run.model.predict(x[:8], verbose=0), rtol=1e-5)


def test_normalization_after_a_reshape_in_a_functional_model(tmp_path):
    import keras

    inputs = keras.Input((64,), name="pixels")
    rows = keras.layers.Reshape((8, 8), name="rows")(inputs)
    normalized = keras.layers.Normalization(axis=-1, name="per_column")(rows)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(normalized))
    config = keras.Model(inputs, outputs).get_config()

    run = ek.train(
        _recipe({"source": "digits", "flatten": True}, {"type": "functional", "config": config}, "reshape"),
        out=tmp_path / "run",
    )
    pixels = run.data.train.x.reshape(-1, 8, 8)
    # one mean per column of the reshaped 8x8 rows, over every sample and row
    _assert_statistics(run.model.get_layer("per_column"), pixels, axes=(0, 1))


def test_two_inputs_with_normalization_on_one_and_inside_a_nested_model(tmp_path):
    import keras

    x, y = _features()
    small = np.random.default_rng(1).normal(7.0, 0.01, size=(len(x), 2)).astype("float32")
    scales = keras.Input((3,), name="scales")
    tiny = keras.Input((2,), name="small")
    nested = keras.Sequential([keras.Input((2,)), keras.layers.Normalization(name="inner_norm")], name="nested")
    merged = keras.layers.Concatenate()([keras.layers.Normalization(name="scales_norm")(scales), nested(tiny)])
    model = keras.Model({"scales": scales, "small": tiny}, keras.layers.Dense(2, activation="softmax")(merged))
    # a model in memory (a recipe's functional config takes no nested models), compiled by the recipe
    recipe = {key: value for key, value in _recipe({}, {}, "two").items() if key not in ("data", "model")}

    run = ek.train(model, data={"scales": x, "small": small, "y": y}, recipe=recipe, out=tmp_path / "run")
    train = run.data.train.x
    _assert_statistics(run.model.get_layer("scales_norm"), train["scales"])
    _assert_statistics(nested.get_layer("inner_norm"), train["small"])
    assert [a["layer"] for a in run.adapted] == ["scales_norm", "nested/inner_norm"]


SUBCLASSED = """
import keras


class Scaled(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.Normalization()
        self.norm.build((None, 3))
        self.out = keras.layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.out(self.norm(x))


def build():
    return Scaled()
"""


def test_normalization_inside_a_subclassed_model_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    (tmp_path / "scaled_model.py").write_text(SUBCLASSED)
    monkeypatch.syspath_prepend(str(tmp_path))
    x, y = _features()
    np.savez(tmp_path / "scales.npz", x=x, y=y)
    model = {"type": "python", "function": "scaled_model:build", "input_shape": [3]}
    recipe = _recipe({"source": "npz", "path": str(tmp_path / "scales.npz")}, model, "subclassed")
    with pytest.raises(InputError, match=r"layer '.*normalization.*' \(Normalization\).*'mean' and 'variance'") as e:
        ek.train(recipe, out=tmp_path / "run")
    assert "Scaled" in str(e.value) and "python` model function" in str(e.value)
    assert not (tmp_path / "run").exists()


def test_shared_and_subclassed_layers_are_refused_and_already_set_layers_are_left_alone(tmp_path):
    import keras

    inputs = keras.Input((3,), name="features")
    shared = keras.layers.Normalization(name="shared")
    model = keras.Model(inputs, keras.layers.Add()([shared(inputs), shared(keras.layers.Dense(3)(inputs))]))
    with pytest.raises(InputError, match=r"'shared' \(Normalization\) to be called once.*Received: 2 calls"):
        pending_layers(model)

    namespace = {}
    exec(SUBCLASSED, namespace)  # the same subclassed model, passed in memory (no wrapper)
    subclassed = namespace["build"]()
    subclassed(np.zeros((1, 3), "float32"))
    with pytest.raises(
        InputError, match=r"layer 'scaled\w*/normalization\w*' \(Normalization\).*inside 'scaled\w*' \(Scaled\)"
    ):
        pending_layers(subclassed)

    given = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 1.0, 1.0])
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])
    bins = keras.layers.Discretization(bin_boundaries=[0.0, 1.0])
    assert not any(needs_adapting(layer) for layer in (given, lookup, bins, keras.layers.Dense(2)))
    assert all(needs_adapting(layer) for layer in (keras.layers.Normalization(), keras.layers.StringLookup()))

    # A saved, adapted model (model.type: file) comes back adapted: not adapted again.
    x, _ = _features()
    adapted = keras.Sequential([keras.Input((3,)), keras.layers.Normalization(), keras.layers.Dense(2)])
    adapted.layers[0].adapt(x)
    adapted.save(tmp_path / "adapted.keras")
    assert pending_layers(keras.saving.load_model(tmp_path / "adapted.keras")) == []


def test_lookup_and_discretization_layers_adapt_in_graph_order():
    import keras

    words = keras.Input((1,), dtype="string", name="words")
    values = keras.Input((1,), name="values")
    lookup = keras.layers.StringLookup(name="lookup")
    norm = keras.layers.Normalization(name="norm")
    bins = keras.layers.Discretization(num_bins=4, name="bins")
    model = keras.Model(
        {"words": words, "values": values},
        keras.layers.Concatenate()(
            [keras.ops.cast(lookup(words), "float32"), keras.ops.cast(bins(norm(values)), "float32")]
        ),
    )
    rng = np.random.default_rng(0)
    text = rng.choice(["red", "green", "blue"], size=(90, 1), p=[0.5, 0.3, 0.2])
    numbers = rng.uniform(100, 200, size=(90, 1)).astype("float32")

    done = adapt_layers(model, Split({"words": text, "values": numbers}, np.zeros(90)), batch_size=16)
    order = [d["layer"] for d in done]
    assert sorted(order) == ["bins", "lookup", "norm"] and order.index("norm") < order.index("bins")
    assert lookup.get_vocabulary(include_special_tokens=False) == ["red", "green", "blue"]  # by frequency
    # the bins see the normalized values (norm adapted first): quartiles of a standardized uniform
    standardized = (numbers - numbers.mean()) / numbers.std()
    np.testing.assert_allclose(bins.bin_boundaries, np.quantile(standardized, [0.25, 0.5, 0.75]), atol=0.1)


def test_restored_checkpoint_statistics_win_over_a_new_adaptation(tmp_path):
    """A resumed run adapts its fresh model, then restores the checkpoint: the model must then
    compute with the restored statistics (Keras keeps a tensor copy that `assign` misses)."""
    import keras

    from edgekeras.callbacks.backup import AtomicBackupAndRestore

    x, y = _features()

    def model(data):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Normalization(), keras.layers.Dense(2)])
        m.layers[0].adapt(data)
        m.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return m

    first = model(x)
    first.fit(x, y, epochs=1, verbose=0, callbacks=[AtomicBackupAndRestore(tmp_path, delete_checkpoint=False)])
    second = model(x * 3 + 100)  # adapted on other data: the checkpoint must override it
    second.fit(x, y, epochs=1, verbose=0, callbacks=[AtomicBackupAndRestore(tmp_path, delete_checkpoint=False)])
    np.testing.assert_allclose(second.predict(x[:16], verbose=0), first.predict(x[:16], verbose=0), rtol=1e-5)


def test_copies_of_an_adapted_model_compute_with_its_statistics():
    """Mixed-precision training, its float32 export form and quantization-aware training
    each copy the model's weights into a clone; the adapted statistics must come along."""
    import keras

    from edgekeras.models.precision import apply_policy, float32_model, global_policy

    _, y = _features()
    # scales float16 holds (not the variance 9e4 of the first feature, nor 2.5e-7 of the second)
    x = np.random.default_rng(2).normal([100.0, -50.0, 7.0], [20.0, 10.0, 2.0], size=(len(y), 3)).astype("float32")
    inputs = keras.Input((3,), name="features")
    model = keras.Sequential([inputs, keras.layers.Normalization(), keras.layers.Dense(2)])
    model.layers[0].adapt(x)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = model.predict(x[:32], verbose=0)
    with global_policy("mixed_float16"):
        mixed = apply_policy(model, "mixed_float16")
        np.testing.assert_allclose(mixed.predict(x[:32], verbose=0), expected, rtol=0.02, atol=0.02)
    np.testing.assert_allclose(float32_model(mixed).predict(x[:32], verbose=0), expected, rtol=1e-3, atol=1e-3)
    qat = ek.quantize_aware(model, (x, y), epochs=0)
    # int8 fake quantization moves outputs by a few grid steps; unnormalized inputs (~1000)
    # would move them by orders of magnitude
    np.testing.assert_allclose(qat.predict(x[:32], verbose=0), expected, atol=0.1 * np.abs(expected).max())
