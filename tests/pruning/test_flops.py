"""Parameters and FLOPs (multiply-accumulates at batch 1) of Keras models, against hand counts."""

from __future__ import annotations

import pytest

from edgekeras.errors import InputError
from edgekeras.pruning import flops


def _tiny():
    import keras

    inputs = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # valid: 6x6x4
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(h)  # 6x6x8
    h = keras.layers.SeparableConv2D(5, 1, name="sep")(h)  # 6x6x5
    h = keras.layers.Conv2DTranspose(2, 2, strides=2, name="up")(h)  # 12x12x2
    h = keras.layers.MaxPooling2D(name="pool")(h)  # 6x6x2
    h = keras.layers.Flatten(name="flat")(h)  # 72
    outputs = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inputs, outputs)


def test_counts_match_a_hand_computation():
    cost = flops.count(_tiny())
    by_name = {c.name: c for c in cost.per_layer}
    expected = {
        "conv": 6 * 6 * 4 * (3 * 3 * 3),  # positions x filters x taps x input channels
        "bn": 6 * 6 * 4,  # one scale-and-shift per element
        "dw": 6 * 6 * 8 * 9,  # each output channel sees one input channel
        "sep": 6 * 6 * 8 * (1 + 5),  # depthwise 1x1 then pointwise 8 -> 5
        "up": 6 * 6 * 5 * 4 * 2,  # each input position spreads over 2x2 taps per output channel
        "pool": 0,
        "flat": 0,
        "logits": 72 * 10,
    }
    assert {name: by_name[name].flops for name in expected} == expected
    assert cost.flops == sum(expected.values())
    assert by_name["conv"].params == 3 * 3 * 3 * 4 + 4 and by_name["logits"].params == 72 * 10 + 10
    assert cost.params == sum(c.params for c in cost.per_layer)


def test_free_spatial_dimensions_need_an_input_shape():
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(h))
    with pytest.raises(InputError, match="input_shape"):
        flops.count(model)
    assert flops.count(model, input_shape=(10, 10, 3)).flops == 10 * 10 * 4 * 27
    with pytest.raises(InputError, match="without the batch"):
        flops.count(model, input_shape=(10, 10))


def test_sequential_and_nested_models_are_counted_layer_by_layer():
    import keras

    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
    assert flops.count(seq).flops == 4 * 3 + 3 * 2
    inputs = keras.Input((4,), name="x")
    outer = keras.Model(inputs, keras.layers.Dense(5, name="c")(seq(inputs)))
    cost = flops.count(outer)
    assert cost.flops == 4 * 3 + 3 * 2 + 2 * 5
    assert [c.name for c in cost.per_layer] == ["a", "b", "c"]
