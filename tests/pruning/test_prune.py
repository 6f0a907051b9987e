"""Pruning on real Keras: a digits CNN pruned and fine-tuned, N:M patterns, exclusions, nested
and subclassed models, saving, the checkpoint that resumes a schedule, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgekeras as ek
from edgekeras.errors import InputError

KERNELS = ("conv_in/kernel", "conv_mid/kernel", "hidden/kernel", "probs/kernel")


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], digits.target[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def _cnn():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_in"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_mid"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="digits_cnn",
    )
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained():
    (x, y), (xt, yt) = _digits()
    model = _cnn()
    model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    return model, float(model.evaluate(xt, yt, verbose=0)[1])


def _copy(model):
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return copy


def _kernel(model, path):
    layer = model.get_layer(path.split("/")[0])
    return np.asarray(layer.kernel)


@pytest.fixture(scope="module")
def pruned80(trained, tmp_path_factory):
    model, _ = trained
    out = tmp_path_factory.mktemp("prune") / "run"
    (x, y), _ = _digits()
    return ek.prune(_copy(model), data=(x, y), sparsity=0.8, epochs=15, out=out, export=False)


def test_digits_cnn_80_percent_exact_sparsity_and_accuracy(trained, pruned80):
    _, baseline = trained
    for path in KERNELS:
        kernel = _kernel(pruned80.model, path)
        assert int((kernel == 0).sum()) == round(0.8 * kernel.size), path
        assert pruned80.summary["weights"][path]["sparsity"] == pytest.approx(0.8, abs=0.005)
    _, (xt, yt) = _digits()
    accuracy = float(pruned80.model.evaluate(xt, yt, verbose=0)[1])
    assert baseline - accuracy <= 0.01 + 1e-9, (baseline, accuracy)
    state = json.loads((pruned80.path / "run.json").read_text())
    assert state["prune"]["sparsity"] == pytest.approx(0.8, abs=0.005) and state["status"] == "done"
    assert set(state["prune"]["weights"]) == set(KERNELS)


def test_saved_model_is_plain_and_keeps_its_zeros(pruned80, tmp_path):
    from edgekeras.pruning.pruner import MaskConstraint

    text = (pruned80.path / "model.keras").read_bytes()
    assert b"MaskConstraint" not in text and b"mask_" not in text
    assert not any(isinstance(v.constraint, MaskConstraint) for v in pruned80.model.variables)
    reloaded = ek.load_model(pruned80.path / "model.keras").model
    assert len(reloaded.weights) == len(pruned80.model.weights)
    for path in KERNELS:
        np.testing.assert_array_equal(_kernel(reloaded, path), _kernel(pruned80.model, path))


def test_two_four_pattern_exact_with_the_first_conv_excluded(trained, tmp_path):
    model, _ = trained
    (x, y), _ = _digits()
    result = ek.prune(
        _copy(model), data=(x, y), structure="2:4", exclude=["conv_in"], epochs=1, out=tmp_path / "r", export=False
    )
    assert "conv_in/kernel" not in result.summary["weights"]
    assert (_kernel(result.model, "conv_in/kernel") != 0).all()
    conv = _kernel(result.model, "conv_mid/kernel")  # (3, 3, 16, 32): groups of 4 along the 16 inputs
    assert ((conv.reshape(3, 3, 4, 4, 32) != 0).sum(axis=3) <= 2).all()
    dense = _kernel(result.model, "hidden/kernel")  # (512, 64)
    assert ((dense.reshape(128, 4, 64) != 0).sum(axis=1) <= 2).all()
    assert result.summary["weights"]["hidden/kernel"]["sparsity"] >= 0.5


def test_nested_and_subclassed_models_are_walked_into():
    import keras

    from edgekeras.pruning.masks import Structure
    from edgekeras.pruning.pruner import Pruner, strip_pruning

    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="inner_dense")], name="backbone")
    outer = keras.Sequential([keras.Input((8,)), inner, keras.layers.Dense(4, name="head")])
    pruner = Pruner(outer, Structure("unstructured")).attach()
    assert [t.path for t in pruner.targets] == ["backbone/inner_dense/kernel", "head/kernel"]
    pruner.update(0.5)
    assert (np.asarray(inner.layers[0].kernel) == 0).sum() == 64
    strip_pruning(outer)
    skipped = Pruner(outer, Structure("unstructured"), exclude=["backbone"])
    assert [t.path for t in skipped.targets] == ["head/kernel"]

    class Tower(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(8)
            self.b = keras.layers.LSTM(4)

        def call(self, x):
            return self.b(self.a(x))

    tower = Tower()
    tower(np.zeros((1, 3, 5), "float32"))
    paths = [t.path for t in Pruner(tower, Structure("unstructured")).targets]
    assert any(p.endswith("/kernel") for p in paths) and any(p.endswith("cell.recurrent_kernel") for p in paths)


def test_attention_and_recurrent_weights_from_the_registry():
    import keras

    from edgekeras.pruning.registry import prunable_weights

    tokens = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(50, 8, name="embed")(tokens)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = keras.layers.GRU(4, name="gru")(h)
    model = keras.Model(tokens, h)
    paths = [t.path for t in prunable_weights(model)]
    assert paths == [
        "embed/embeddings",
        "mha/_query_dense.kernel",
        "mha/_key_dense.kernel",
        "mha/_value_dense.kernel",
        "mha/_output_dense.kernel",
        "gru/cell.kernel",
        "gru/cell.recurrent_kernel",
    ]
    assert [t.input_axes for t in prunable_weights(model, exclude=["embed", "gru"])] == [(0,), (0,), (0,), (0, 1)]


def test_checkpoint_holds_masks_and_step(tmp_path):
    """What AtomicBackupAndRestore writes brings a pruning schedule back mid-way."""
    import keras

    from edgekeras.callbacks.backup import AtomicBackupAndRestore
    from edgekeras.pruning.masks import Structure
    from edgekeras.pruning.pruner import Pruner

    def fresh():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="d")])
        model.compile("sgd", "mse")
        return model, Pruner(model, Structure("unstructured")).attach()

    model, pruner = fresh()
    pruner.update(0.75)
    pruner.step.assign(37)
    backup = AtomicBackupAndRestore(str(tmp_path), extra_variables=pruner.variables)
    backup.set_model(model)
    backup._current_epoch = 3
    backup._save_model()

    model2, pruner2 = fresh()
    restore = AtomicBackupAndRestore(str(tmp_path), extra_variables=pruner2.variables)
    restore.set_model(model2)
    restore.on_train_begin()
    assert int(pruner2.step.numpy()) == 37
    np.testing.assert_array_equal(pruner2.masks[0].numpy(), pruner.masks[0].numpy())
    assert (pruner2.masks[0].numpy() == 0).sum() == 24


def test_bad_input_writes_nothing(trained, tmp_path):
    model, _ = trained
    (x, y), _ = _digits()
    out = tmp_path / "never"
    cases = [
        ({"sparsity": 1.0}, r"\[0, 1\)"),
        ({"sparsity": -0.2}, r"\[0, 1\)"),
        ({"structure": "4:2"}, "0 < N < M"),
        ({"structure": "2:4"}, "conv_in/kernel"),  # 1 input channel: M=4 does not divide it
        ({"exclude": ["hiden"]}, "Did you mean 'hidden'"),
        ({"schedule": "cosine"}, "polynomial"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            ek.prune(_copy(model), data=(x, y), **{"sparsity": 0.5, **kwargs}, out=out, epochs=1)
        assert not out.exists()


def test_quantization_aware_model_is_refused(trained):
    from edgekeras.pruning.masks import Structure
    from edgekeras.pruning.pruner import Pruner
    from edgekeras.qat.aware import quantize_aware

    model, _ = trained
    (x, y), _ = _digits()
    qat = quantize_aware(_copy(model), (x[:64], y[:64]), epochs=0)
    with pytest.raises(InputError, match="quantization-aware"):
        Pruner(qat, Structure("unstructured"))


def test_sparsity_survives_quantize_aware_and_int8(pruned80, tmp_path):
    """Sparsity-preserving QAT: the int8 TFLite kernels are as sparse as the float ones."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekeras.qat.aware import quantize_aware

    (x, y), (xt, yt) = _digits()
    qat = quantize_aware(pruned80.model, (x, y), epochs=2)
    arts = ek.convert(
        qat,
        formats=["tflite"],
        precisions=["int8"],
        out=tmp_path,
        calibration={"image": x[:100]},
        data={"image": xt, "y": yt},
    )
    interpreter = Interpreter(model_path=str(arts[0].path))
    interpreter.allocate_tensors()
    shapes = {(16, 3, 3, 1): "conv_in", (32, 3, 3, 16): "conv_mid", (64, 512): "hidden", (10, 64): "probs"}
    sparsity = {}
    for detail in interpreter.get_tensor_details():  # kernels are (out, ..., in) in TFLite
        layer = shapes.get(tuple(int(d) for d in detail["shape"]))
        if layer is not None and detail["dtype"] == np.int8:
            sparsity[layer] = float((interpreter.get_tensor(detail["index"]) == 0).mean())
    assert set(sparsity) == set(shapes.values()), sparsity
    assert all(s >= 0.79 for s in sparsity.values()), sparsity


def test_embedding_attention_and_bidirectional_lstm_train_pruned():
    """Masks hold in the compiled train step for every registered kind (sparse Embedding
    gradients, EinsumDense inside attention, RNN cells inside Bidirectional)."""
    import keras

    from edgekeras.pruning import FIELDS, start_pruning
    from edgekeras.recipe.schema import check_section

    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(50, 8, name="embed")(tokens)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(4, name="lstm"), name="bi")(h)
    model = keras.Model(tokens, keras.layers.Dense(3, activation="softmax", name="head")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    section = check_section({"sparsity": 0.6, "schedule": "constant", "end_step": 10}, FIELDS, "prune")
    pruner, callback = start_pruning(model, section, 32)
    rng = np.random.default_rng(0)
    model.fit(
        rng.integers(0, 50, (256, 6)), rng.integers(0, 3, 256), epochs=2, batch_size=16, callbacks=[callback], verbose=0
    )
    pruner.strip()
    weights = pruner.summary()["weights"]
    assert len(weights) == 10 and "bi/forward_lstm/cell.recurrent_kernel" in weights
    for target in pruner.targets:
        value = target.variable.numpy()
        assert int((value == 0).sum()) == round(0.6 * value.size), target.path


def test_channels_structure_prunes_filters_then_fine_tunes(trained, tmp_path):
    model, _ = trained
    (x, y), _ = _digits()
    result = ek.prune(
        _copy(model), data=(x, y), structure="channels", sparsity=0.5, epochs=1, out=tmp_path / "r", export=False
    )
    assert result.channels.params_after < result.channels.params_before
    assert result.model.count_params() == result.channels.params_after
    state = json.loads((result.path / "run.json").read_text())
    assert state["prune"]["structure"] == "channels" and state["prune"]["fraction"] == 0.5
    assert state["prune"]["params_after"] == result.channels.params_after and state["status"] == "done"


def test_keep_residual_removes_channels_inside_the_block_only(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    a = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="a")(inputs)
    inner = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="inner")(a)
    h = keras.layers.Add(name="add")([a, keras.layers.Conv2D(16, 3, padding="same", name="b")(inner)])
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    (x, y), _ = _digits()
    result = ek.prune(
        model, data=(x, y), structure="channels", sparsity=0.5, keep_residual=True, epochs=1, out=tmp_path / "r"
    )
    assert {n: result.model.get_layer(n).filters for n in ("a", "inner", "b")} == {"a": 16, "inner": 8, "b": 16}
    assert json.loads((result.path / "run.json").read_text())["prune"]["keep_residual"] is True
    with pytest.raises(InputError, match="keep_residual only with structure='channels'"):
        ek.prune(model, data=(x, y), sparsity=0.5, keep_residual=True, out=tmp_path / "r2")
    assert not (tmp_path / "r2").exists()


def test_prune_with_a_distributed_recipe_fine_tunes_in_this_process(trained, tmp_path):
    # the model to prune is loaded outside any strategy scope: the recipe's strategy is not taken over
    from conftest import digits_recipe

    model, _ = trained
    (x, y), _ = _digits()
    recipe = {**digits_recipe(), "strategy": "mirrored"}
    result = ek.prune(
        _copy(model), data=(x, y), sparsity=0.5, epochs=1, recipe=recipe, out=tmp_path / "r", export=False
    )
    state = json.loads((result.path / "run.json").read_text())
    assert state["status"] == "done" and state["distribution"]["strategy"] == "default"
    assert result.summary["sparsity"] == pytest.approx(0.5, abs=0.004)
