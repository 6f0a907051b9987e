"""Structured channel pruning: the channels whose weights are exactly zero are the ones removed,
and the smaller model then computes exactly what the original did -- through BatchNormalization,
residual Adds, Concatenate, depthwise convolutions, squeeze-excite gates and Flatten -> Dense.
Plus the errors a user can make and keras.applications networks end to end (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekeras.errors import InputError
from edgekeras.pruning.channels import prune_channels

OUTPUT_AXIS = {"Conv2D": -1, "Dense": -1, "DepthwiseConv2D": None}


def _randomize_batchnorm(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape), rng.normal(0, 0.3, mean.shape)]
                + [rng.uniform(0.5, 2.0, var.shape)]
            )


def zero_channels(model, channels):
    """Zeros output channels `channels[layer name]` so they contribute nothing downstream:
    kernel slice and bias of a conv/Dense, gamma and beta of a BatchNormalization, the bias of a
    depthwise convolution's output channels."""
    for name, index in channels.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            weights[0][index] = 0.0
            weights[1][index] = 0.0
        elif kind == "DepthwiseConv2D":
            weights[1][index] = 0.0
        else:
            weights[0][..., index] = 0.0
            weights[1][index] = 0.0
        layer.set_weights(weights)


def _input_names(model):
    return [t._keras_history.operation.name for t in model.inputs]


def _assert_same_outputs(original, pruned, x):
    np.testing.assert_allclose(pruned.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


def digits_cnn():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="r1")(h)
    h = keras.layers.MaxPooling2D(name="p1")(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(64, activation="relu", name="d1")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs)
    _randomize_batchnorm(model, np.random.default_rng(0))
    return model


@pytest.fixture
def x_digits():
    return np.random.default_rng(1).random((32, 8, 8, 1), dtype=np.float32)


def test_digits_cnn_loses_exactly_its_zero_channels(x_digits):
    model = digits_cnn()
    zero = {"c1": [1, 4, 9, 15], "bn1": [1, 4, 9, 15], "c2": list(range(0, 32, 4)), "d1": list(range(0, 64, 4))}
    zero_channels(model, zero)
    result = prune_channels(model, fraction=0.25)
    pruned = result.model
    assert pruned.get_layer("c1").filters == 12 and pruned.get_layer("c2").filters == 24
    assert pruned.get_layer("d1").units == 48 and pruned.get_layer("probs").units == 10
    # Flatten -> Dense: the rows of the removed channels at every position are gone.
    assert pruned.get_layer("d1").kernel.shape == (4 * 4 * 24, 48)
    kept_c1 = [i for i in range(16) if i not in zero["c1"]]
    np.testing.assert_array_equal(
        pruned.get_layer("c1").kernel.numpy(), model.get_layer("c1").kernel.numpy()[..., kept_c1]
    )
    _assert_same_outputs(model, pruned, x_digits)
    assert pruned.output_names == ["probs"] and _input_names(pruned) == ["image"]
    assert sorted((tuple(g[0]), g[1], g[2]) for g in result.groups_pruned) == [
        (("c1",), 16, 12),
        (("c2",), 32, 24),
        (("d1",), 64, 48),
    ]
    assert result.params_after < result.params_before and result.flops_after < result.flops_before
    text = result.summary()
    assert f"{result.params_before:,} -> {result.params_after:,}" in text and "FLOPs" in text


def test_a_sequential_model_comes_back_as_a_functional_one_with_the_same_names(x_digits):
    import keras

    from edgekeras.keras_model import output_names

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    zero_channels(model, {"conv": [0, 3]})
    pruned = prune_channels(model, fraction=0.25).model
    assert pruned.get_layer("conv").filters == 6 and output_names(pruned) == output_names(model) == ["logits"]
    _assert_same_outputs(model, pruned, x_digits)


def residual_block():
    """conv a -> BN -> ReLU -> conv b -> BN, added back to a's activation: a and b are tied."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3), name="image")
    a = keras.layers.ReLU(name="a_relu")(
        keras.layers.BatchNormalization(name="a_bn")(keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs))
    )
    b = keras.layers.BatchNormalization(name="b_bn")(keras.layers.Conv2D(8, 3, padding="same", name="b")(a))
    h = keras.layers.ReLU(name="add_relu")(keras.layers.Add(name="add")([a, b]))
    h = keras.layers.BatchNormalization(name="c_bn")(keras.layers.Conv2D(8, 3, padding="same", name="c")(h))
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))
    _randomize_batchnorm(model, np.random.default_rng(1))
    return model


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale"])
def test_residual_add_ties_the_convolutions_it_joins(importance):
    model = residual_block()
    zero_channels(model, {"a": [2, 5], "a_bn": [2, 5], "b": [2, 5], "b_bn": [2, 5], "c": [0, 7], "c_bn": [0, 7]})
    result = prune_channels(model, fraction=0.25, importance=importance)
    pruned = result.model
    assert [pruned.get_layer(n).filters for n in "abc"] == [6, 6, 6]
    assert sorted((tuple(g[0]), g[1], g[2]) for g in result.groups_pruned) == [(("a", "b"), 8, 6), (("c",), 8, 6)]
    _assert_same_outputs(model, pruned, np.random.default_rng(2).random((16, 8, 8, 3), dtype=np.float32))


def test_keep_residual_prunes_inside_blocks_only_and_still_computes_the_same():
    """The channels the residual Add sums (a and b, tied) are kept whole; c is pruned, and the
    smaller model computes what the original did on its zero channels."""
    model = residual_block()
    zero_channels(model, {"a": [2, 5], "a_bn": [2, 5], "b": [2, 5], "b_bn": [2, 5], "c": [0, 7], "c_bn": [0, 7]})
    result = prune_channels(model, fraction=0.25, keep_residual=True)
    pruned = result.model
    assert [pruned.get_layer(n).filters for n in "abc"] == [8, 8, 6]
    _assert_same_outputs(model, pruned, np.random.default_rng(2).random((16, 8, 8, 3), dtype=np.float32))
    with pytest.raises(InputError, match="residual stream 'add'"):  # only c can give FLOPs now
        prune_channels(model, flops=0.9, keep_residual=True)


def test_concatenate_prunes_each_input_and_shifts_the_consumer_rows():
    import keras

    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 3), name="image")
    p = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="p")(inputs)
    q = keras.layers.Conv2D(4, 1, activation="relu", name="q")(inputs)
    h = keras.layers.Concatenate(name="cat")([p, q])
    h = keras.layers.Conv2D(9, 3, padding="same", activation="relu", name="r")(h)
    h = keras.layers.GlobalMaxPooling2D(name="gmp")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))
    zero_channels(model, {"p": [0, 3], "q": [2], "r": [1, 4, 8]})
    pruned = prune_channels(model, fraction=1 / 3).model
    assert [pruned.get_layer(n).filters for n in "pqr"] == [4, 3, 6]
    assert pruned.get_layer("r").kernel.shape[2] == 7  # 10 concatenated channels, 3 removed
    _assert_same_outputs(model, pruned, np.random.default_rng(3).random((16, 8, 8, 3), dtype=np.float32))


def test_depthwise_and_a_squeeze_excite_gate_follow_the_channels_they_are_tied_to():
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3), name="image")
    h = keras.layers.ReLU(name="stem_relu")(
        keras.layers.BatchNormalization(name="stem_bn")(keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs))
    )
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(h)  # 16 channels
    gate = keras.layers.GlobalAveragePooling2D(name="squeeze")(h)
    gate = keras.layers.Dense(4, activation="relu", name="se_reduce")(gate)
    gate = keras.layers.Dense(16, activation="sigmoid", name="se_expand")(gate)
    h = keras.layers.Multiply(name="excite")([h, keras.layers.Reshape((1, 1, 16), name="se_shape")(gate)])
    h = keras.layers.Conv2D(8, 1, name="project")(h)
    model = keras.Model(
        inputs, keras.layers.Dense(5, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(h))
    )
    _randomize_batchnorm(model, np.random.default_rng(3))
    gone = [1, 6]  # stem channels; each takes depthwise outputs 2k, 2k+1 and the gate's units with it
    wide = [2 * k + j for k in gone for j in (0, 1)]
    zero_channels(
        model, {"stem": gone, "stem_bn": gone, "dw": wide, "se_expand": wide, "se_reduce": [3], "project": [0, 5]}
    )
    pruned = prune_channels(model, fraction=0.25).model
    assert pruned.get_layer("stem").filters == 6 and pruned.get_layer("dw").kernel.shape == (3, 3, 6, 2)
    assert pruned.get_layer("se_expand").units == 12 and pruned.get_layer("se_reduce").units == 3
    assert pruned.get_layer("se_shape").target_shape == (1, 1, 12) and pruned.get_layer("project").filters == 6
    _assert_same_outputs(model, pruned, np.random.default_rng(4).random((16, 8, 8, 3), dtype=np.float32))


def test_a_nested_backbone_is_flattened(x_digits):
    import keras

    backbone = digits_cnn()
    inputs = keras.Input((8, 8, 1), name="pixels")
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(backbone(inputs)))
    zero_channels(model.layers[1], {"c1": [0, 1, 2, 3], "bn1": [0, 1, 2, 3]})
    result = prune_channels(model, fraction=0.25, exclude=["c2", "d1", "probs"])
    assert result.model.get_layer("c1").filters == 12 and result.model.get_layer("c2").filters == 32
    assert result.model.output_names == ["head"] and _input_names(result.model) == ["pixels"]
    _assert_same_outputs(model, result.model, x_digits)


def test_a_flops_target_is_met_and_the_model_saves_converts_and_reloads(x_digits, tmp_path):
    import edgekeras as ek
    from edgekeras.model_io import load_model

    model = digits_cnn()
    result = prune_channels(model, flops=0.5)
    assert result.flops_after <= 0.5 * result.flops_before
    path = tmp_path / "pruned.keras"
    result.model.save(path)
    loaded = load_model(path).model  # safe_mode: plain layers
    _assert_same_outputs(result.model, loaded, x_digits)
    (artifact,) = ek.convert(
        result.model, formats=["tflite"], precisions=["fp32"], data={"image": x_digits}, out=tmp_path
    )
    assert artifact.manifest["validation"]["passed"] is True


def test_exclude_keeps_a_layers_channels_by_name_type_or_pattern():
    model = digits_cnn()
    by_name = prune_channels(model, fraction=0.5, exclude=["c1"]).model
    assert by_name.get_layer("c1").filters == 16 and by_name.get_layer("c2").filters == 16
    by_type = prune_channels(model, fraction=0.5, exclude="Conv2D").model
    assert (by_type.get_layer("c1").filters, by_type.get_layer("c2").filters, by_type.get_layer("d1").units) == (
        16,
        32,
        32,
    )
    by_pattern = prune_channels(model, fraction=0.5, exclude=[r"c\d"]).model
    assert by_pattern.get_layer("c2").filters == 32


def test_bad_input_is_refused_clearly():
    import keras

    model = digits_cnn()
    with pytest.raises(InputError, match="exactly one of fraction"):
        prune_channels(model)
    with pytest.raises(InputError, match="exactly one of fraction"):
        prune_channels(model, fraction=0.5, flops=0.5)
    with pytest.raises(InputError, match=r"in \[0, 1\)"):
        prune_channels(model, fraction=1.0)
    with pytest.raises(InputError, match="Did you mean 'c1'"):
        prune_channels(model, fraction=0.5, exclude=["c11"])
    with pytest.raises(InputError, match="'c2', 'd1'"):  # no BatchNormalization after them
        prune_channels(model, fraction=0.5, importance="bn_scale")
    with pytest.raises(InputError, match="'l1'"):
        prune_channels(model, fraction=0.5, importance="l3")
    with pytest.raises(InputError, match="leaves 'c1' with 0 of 16"):
        prune_channels(model, fraction=0.99)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 3), np.float32))
    with pytest.raises(InputError, match="subclassed Sub"):
        prune_channels(sub, fraction=0.5)


def test_a_layer_it_cannot_rewrite_is_named_when_the_target_is_out_of_reach():
    import keras

    inputs = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    h = keras.layers.LayerNormalization(name="norm")(h)  # normalizes over channels: removing one changes all
    h = keras.layers.Conv2D(4, 1, name="mix")(h)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(h))
    # 'conv' is kept (LayerNormalization), 'mix' reaches the output: nothing can go.
    with pytest.raises(InputError, match=r"'norm' \(LayerNormalization\), which cannot be rewritten"):
        prune_channels(model, flops=0.3)
    result = prune_channels(model, fraction=0.5)
    assert result.model.get_layer("conv").filters == 8 and result.flops_after == result.flops_before


def _trained_application(name, size=32):
    import keras

    from edgekeras.coverage.applications import digit_images, set_batchnorm_statistics

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")  # the name digit_images feeds
    model = getattr(keras.applications, name)(weights=None, input_tensor=inputs, classes=10, classifier_activation=None)
    module = {"MobileNetV2": "mobilenet_v2", "ResNet50": "resnet50"}[name]
    feeds = digit_images(size, module)(np.random.default_rng(0), 64)
    set_batchnorm_statistics(model, feeds)
    return model, feeds


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_applications_lose_half_their_flops_and_still_save_and_convert(name, tmp_path):
    import edgekeras as ek
    from edgekeras.model_io import load_model

    model, feeds = _trained_application(name)
    result = prune_channels(model, flops=0.5)
    assert result.flops_after <= 0.5 * result.flops_before * 1.001
    assert result.params_after < result.params_before
    pruned = result.model
    assert pruned.output_names == model.output_names and [t.name for t in pruned.inputs] == [
        t.name for t in model.inputs
    ]
    assert pruned.predict(feeds, verbose=0).shape == (64, 10)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = load_model(path).model
    np.testing.assert_allclose(loaded.predict(feeds, verbose=0), pruned.predict(feeds, verbose=0), atol=1e-5)
    (artifact,) = ek.convert(pruned, formats=["tflite"], precisions=["fp32"], data=feeds, out=tmp_path)
    assert artifact.manifest["validation"]["passed"] is True


def test_channel_multiple_rounds_each_groups_kept_channels_up():
    model = digits_cnn()
    pruned = prune_channels(model, fraction=0.3, channel_multiple=8).model
    # 16 -> 11 kept -> 16; 32 -> 22 -> 24; 64 -> 45 -> 48
    assert (pruned.get_layer("c1").filters, pruned.get_layer("c2").filters, pruned.get_layer("d1").units) == (
        16,
        24,
        48,
    )
    result = prune_channels(model, flops=0.5, channel_multiple=8)
    assert result.flops_after <= 0.5 * result.flops_before
    assert all(after % 8 == 0 for _, before, after in result.groups_pruned if after < before)
    with pytest.raises(InputError, match="channel_multiple"):
        prune_channels(model, fraction=0.3, channel_multiple=0)


def test_a_hidden_softmax_keeps_the_channels_it_normalizes():
    import keras

    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="softmax", name="attention")(inputs)
    h = keras.layers.Dense(8, activation="relu", name="hidden")(h)
    h = keras.layers.Activation("softmax", name="mix")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    result = prune_channels(model, fraction=0.5)
    assert result.model.get_layer("attention").units == 8 and result.model.get_layer("hidden").units == 8


def test_separable_and_transposed_convolutions_are_sliced_on_the_right_axes():
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    h = keras.layers.SeparableConv2D(6, 3, depth_multiplier=2, padding="same", activation="relu", name="sep")(h)
    h = keras.layers.Conv2DTranspose(4, 2, strides=2, activation="relu", name="up")(h)
    model = keras.Model(
        inputs, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(h))
    )
    zero_channels(model, {"conv": [1, 5]})
    depthwise, pointwise, bias = model.get_layer("sep").get_weights()
    pointwise[..., [0, 3]], bias[[0, 3]] = 0.0, 0.0
    model.get_layer("sep").set_weights([depthwise, pointwise, bias])
    kernel, bias = model.get_layer("up").get_weights()  # (2, 2, out, in)
    kernel[:, :, 2, :], bias[2] = 0.0, 0.0
    model.get_layer("up").set_weights([kernel, bias])
    pruned = prune_channels(model, fraction=0.25).model
    assert pruned.get_layer("sep").pointwise_kernel.shape == (1, 1, 12, 4)
    assert pruned.get_layer("up").kernel.shape == (2, 2, 3, 4)
    _assert_same_outputs(model, pruned, np.random.default_rng(5).random((8, 8, 8, 3), dtype=np.float32))
