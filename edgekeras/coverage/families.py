"""The layer families the coverage table converts: one small model and its inputs per family.

A family is data: a name, an input generator `inputs(rng, n) -> {input name: array}` producing
the kind of data the model takes (token ids for Embedding, zero-padded sequences for Masking,
differently scaled same-shape inputs for the multi-input model), and a builder applied to
named `keras.Input`s shaped after that generator (so shapes are written once), most of them a
`stack` of Keras layers given as (class name, keyword arguments). Adding a family is adding
an entry to `FAMILIES`; nothing else lists them.

Every model returns its real output (logits, not a softmax over random weights, which
quantizes to a constant: STACK-NOTES) except where the family *is* the activation (Softmax,
sigmoid), whose logits are spread wide enough to be informative. Each family has a fixed seed
(crc32 of its name), so a rerun builds the same weights; `prepare` hooks fix what random
initialisation leaves degenerate (BatchNormalization's moving statistics).

Nothing here imports TensorFlow at import time: builders import Keras when called.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgekeras.errors import InputError, expected_one_of
from edgekeras.models.custom_objects import REF, importable_from


@dataclass(frozen=True)
class Family:
    """One row of the coverage table."""

    name: str
    group: str  # section of the Keras layer list (core, convolution, ...)
    build: Callable  # build(x) -> outputs or a keras.Model; x: the named keras.Input(s)
    inputs: Callable  # inputs(rng, n) -> {input name: array}; the model's inputs follow it
    description: str
    prepare: Callable | None = None  # prepare(model, feeds): e.g. BatchNormalization statistics
    ref: str | None = None  # 'module:name' of a family from outside FAMILIES (see get_family)

    @property
    def seed(self):
        """A fixed seed per family: the same name always builds the same weights."""
        return zlib.crc32(self.name.encode("utf-8")) & 0x7FFFFFFF


# --- input generators -------------------------------------------------------------------------


def uniform(name, shape, low=0.0, high=1.0):
    """float32 inputs drawn uniformly from [low, high)."""

    def generate(rng, n):
        return {name: rng.uniform(low, high, size=(n, *shape)).astype("float32")}

    return generate


def tokens(name, length, vocabulary):
    """int32 token ids in [1, vocabulary) (0 is left for padding)."""

    def generate(rng, n):
        return {name: rng.integers(1, vocabulary, size=(n, length)).astype("int32")}

    return generate


def padded_sequences(name, steps, features, min_length=3):
    """Sequences of random length, zero-padded at the end: what a Masking layer is for."""

    def generate(rng, n):
        x = rng.normal(0.0, 1.0, size=(n, steps, features)).astype("float32")
        lengths = rng.integers(min_length, steps + 1, size=n)
        x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
        return {name: x}

    return generate


def combined(*generators):
    """Several inputs, each from its own generator."""

    def generate(rng, n):
        feeds = {}
        for g in generators:
            feeds.update(g(rng, n))
        return feeds

    return generate


# --- builders: build(x) -> outputs (or a whole keras.Model); x is the named keras.Input
# (a dict of them for several inputs), made from the family's input generator -------------------


def stack(*layers):
    """A builder applying Keras layers, each given as (class name, keyword arguments), in order."""

    def build(x):
        import keras

        for name, kwargs in layers:
            x = getattr(keras.layers, name)(**kwargs)(x)
        return x

    return build


def batchnorm_statistics(model, feeds):
    """Sets every BatchNormalization's moving mean/variance to the statistics of `feeds`
    (momentum 0, one training-mode call), so the outputs are not the degenerate ones of
    initial statistics (STACK-NOTES)."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    model(x, training=True)


def mish(x):
    """A custom activation (Mish, x * tanh(softplus(x))), passed to Dense as a Python function."""
    import keras

    return x * keras.ops.tanh(keras.ops.softplus(x))


def _input_sequential(x):
    """keras.Sequential starting with keras.Input (tf2onnx fails on raw Sequentials: STACK-NOTES)."""
    import keras

    return keras.Sequential(
        [keras.Input(shape=x.shape[1:], name=x.name), keras.layers.Dense(48, activation="relu"), keras.layers.Dense(8)],
        name="input_sequential",
    )


def _wrapped(wrapper, inner, inner_kwargs, *after):
    """A wrapper layer (Bidirectional, TimeDistributed) around `inner`, then `after` layers."""

    def build(x):
        import keras

        x = getattr(keras.layers, wrapper)(getattr(keras.layers, inner)(**inner_kwargs))(x)
        return stack(*after)(x)

    return build


def _additive_attention(x):
    import keras

    query, value = keras.layers.Dense(32)(x), keras.layers.Dense(32)(x)
    return keras.layers.Dense(8)(keras.layers.AdditiveAttention()([query, value]))


def _multi_head_attention(x):
    import keras

    return keras.layers.Dense(8)(keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)(x, x))


def _lambda(x):
    import keras

    h = keras.layers.Dense(64)(x)
    h = keras.layers.Lambda(lambda t: keras.ops.concatenate([t, keras.ops.abs(t)], axis=-1))(h)
    return keras.layers.Dense(8)(h)


def _multi_io(inputs):
    """Two same-shape inputs on different scales (a mix-up shows) plus an image; two named outputs."""
    import keras

    image, left, right = inputs["image"], inputs["left"], inputs["right"]
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(image))
    merged = keras.layers.Concatenate()([h, keras.layers.Dense(8)(left), keras.layers.Dense(8)(right)])
    merged = keras.layers.Dense(64, activation="relu")(merged)
    logits = keras.layers.Dense(4, name="class_logits")(merged)
    score = keras.layers.Dense(1, name="score")(keras.layers.Subtract()([left, right]))
    return {"class_logits": logits, "score": score}


def _subclassed(x):
    """A subclassed keras.Model as a user holds it after training: called once, not wrapped."""
    import keras

    class TwoTower(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.hidden = keras.layers.Dense(64, activation="relu")
            self.skip = keras.layers.Dense(8)
            self.head = keras.layers.Dense(8)

        def call(self, x):
            return self.head(self.hidden(x)) + self.skip(x)

    model = TwoTower()
    model(np.zeros((1, *x.shape[1:]), "float32"))
    return model


def _dense(units, **kwargs):
    return ("Dense", {"units": units, **kwargs})


def _conv(kind, filters, kernel=3, **kwargs):
    return (kind, {"filters": filters, "kernel_size": kernel, **kwargs})


def _normal(stddev):
    return {"class_name": "RandomNormal", "config": {"stddev": stddev}}


def _uniform(low, high):
    return {"class_name": "RandomUniform", "config": {"minval": low, "maxval": high}}


_RELU = {"activation": "relu"}
# Glorot's default leaves these small models' outputs at ~0.02; He keeps them near unit scale,
# so absolute error limits (scaled by max(1, output range)) are not loose by accident.
_HE = {"kernel_initializer": "he_normal"}
_HE_SEPARABLE = {"depthwise_initializer": "he_normal", "pointwise_initializer": "he_normal"}
_SEQUENCE = uniform("x", (10, 6), -1.0, 1.0)

# Every model has a weight tensor of >= 1024 elements where the family allows, so that
# dynamic-range quantization has something to quantize (STACK-NOTES).
FAMILIES = {
    f.name: f
    for f in [
        Family(
            "Dense", "core", stack(_dense(64, **_RELU), _dense(32)), uniform("x", (16,)), "Dense(64, relu) -> Dense(32)"
        ),
        Family("Flatten", "core", stack(("Flatten", {}), _dense(16)), uniform("x", (8, 8, 2)), "Flatten -> Dense(16)"),
        Family(
            "Input",
            "core",
            _input_sequential,
            uniform("x", (32,)),
            "keras.Sequential([keras.Input, Dense(48, relu), Dense(8)])",
        ),
        Family(
            "Reshape",
            "core",
            stack(("Reshape", {"target_shape": (6, 16)}), _dense(64)),
            uniform("x", (96,)),
            "Reshape((6, 16)) -> Dense(64)",
        ),
        Family(
            "Conv1D",
            "convolution",
            stack(_conv("Conv1D", 48, **_RELU), _conv("Conv1D", 8)),
            uniform("x", (32, 8)),
            "Conv1D(48, 3, relu) -> Conv1D(8, 3)",
        ),
        Family(
            "Conv2D",
            "convolution",
            stack(_conv("Conv2D", 16, **_RELU), _conv("Conv2D", 8)),
            uniform("x", (16, 16, 3)),
            "Conv2D(16, 3, relu) -> Conv2D(8, 3)",
        ),
        Family(
            "Conv3D",
            "convolution",
            stack(_conv("Conv3D", 8, **_RELU), _conv("Conv3D", 8)),
            uniform("x", (8, 8, 8, 2)),
            "Conv3D(8, 3, relu) -> Conv3D(8, 3)",
        ),
        Family(
            "SeparableConv2D",
            "convolution",
            stack(
                _conv("SeparableConv2D", 32, **_RELU, **_HE_SEPARABLE), _conv("SeparableConv2D", 64, **_HE_SEPARABLE)
            ),
            uniform("x", (16, 16, 3)),
            "SeparableConv2D(32, 3, relu) -> SeparableConv2D(64, 3)",
        ),
        Family(
            "Conv2DTranspose",
            "convolution",
            stack(
                _conv("Conv2DTranspose", 32, strides=2, padding="same", **_RELU, **_HE),
                _conv("Conv2DTranspose", 4, **_HE),
            ),
            uniform("x", (8, 8, 4)),
            "Conv2DTranspose(32, 3, strides 2, relu) -> Conv2DTranspose(4, 3)",
        ),
        *[
            Family(
                name,
                "pooling",
                stack(_conv("Conv2D", 16), (name, kwargs)),
                uniform("x", (16, 16, 8)),
                f"Conv2D(16, 3) -> {name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
            )
            for name, kwargs in (
                ("MaxPooling2D", {"pool_size": 2}),
                ("AveragePooling2D", {"pool_size": 2}),
                ("GlobalMaxPooling2D", {}),
                ("GlobalAveragePooling2D", {}),
            )
        ],
        Family(
            "SimpleRNN",
            "recurrent",
            stack(("SimpleRNN", {"units": 32}), _dense(4)),
            _SEQUENCE,
            "SimpleRNN(32) -> Dense(4)",
        ),
        Family("LSTM", "recurrent", stack(("LSTM", {"units": 16}), _dense(4)), _SEQUENCE, "LSTM(16) -> Dense(4)"),
        Family("GRU", "recurrent", stack(("GRU", {"units": 24}), _dense(4)), _SEQUENCE, "GRU(24) -> Dense(4)"),
        Family(
            "Bidirectional",
            "recurrent",
            _wrapped("Bidirectional", "LSTM", {"units": 16}, _dense(4)),
            _SEQUENCE,
            "Bidirectional(LSTM(16)) -> Dense(4)",
        ),
        Family(
            "TimeDistributed",
            "recurrent",
            _wrapped(
                "TimeDistributed",
                "Conv2D",
                {"filters": 16, "kernel_size": 3, **_RELU},
                ("Reshape", {"target_shape": (5, 6 * 6 * 16)}),
                _dense(4),
            ),
            uniform("x", (5, 8, 8, 8)),
            "TimeDistributed(Conv2D(16, 3, relu)) -> Reshape((5, 576)) -> Dense(4)",
        ),
        Family(
            "BatchNormalization",
            "normalization",
            stack(
                _conv("Conv2D", 16),
                ("BatchNormalization", {"beta_initializer": _normal(0.5), "gamma_initializer": _uniform(0.5, 1.5)}),
                ("ReLU", {}),
                _conv("Conv2D", 8),
            ),
            uniform("x", (12, 12, 3)),
            "Conv2D(16, 3) -> BatchNormalization (moving statistics from a batch) -> ReLU -> Conv2D(8, 3)",
            prepare=batchnorm_statistics,
        ),
        Family(
            "LayerNormalization",
            "normalization",
            stack(_dense(64), ("LayerNormalization", {}), _dense(8)),
            uniform("x", (10, 16)),
            "Dense(64) -> LayerNormalization -> Dense(8)",
        ),
        Family(
            "ReLU",
            "activation",
            stack(_dense(64), ("ReLU", {}), _dense(8)),
            uniform("x", (16,)),
            "Dense(64) -> ReLU() -> Dense(8)",
        ),
        # Few classes and wide logits, so the probabilities are not ~1/N everywhere.
        Family(
            "Softmax",
            "activation",
            stack(_dense(64, **_RELU), _dense(6, kernel_initializer=_normal(1.5)), ("Softmax", {})),
            uniform("x", (16,)),
            "Dense(64, relu) -> Dense(6, wide logits) -> Softmax()",
        ),
        Family(
            "sigmoid",
            "activation",
            stack(_dense(64, **_RELU), _dense(8, activation="sigmoid", kernel_initializer=_normal(1.0))),
            uniform("x", (16,)),
            "Dense(64, relu) -> Dense(8, activation='sigmoid')",
        ),
        Family(
            "custom activation",
            "activation",
            stack(_dense(64, activation=mish), _dense(8)),
            uniform("x", (16,)),
            "Dense(64, activation=mish) (a Python function: x * tanh(softplus(x))) -> Dense(8)",
        ),
        # AlphaDropout is made for selu (whose where(x > 0, ...) int16x8 cannot run); the others follow relu.
        *[
            Family(
                name,
                "regularization",
                stack(_dense(64, activation=act), (name, {"rate": rate}), _dense(8)),
                uniform("x", (16,)),
                f"Dense(64, {act}) -> {name}({rate}) -> Dense(8)",
            )
            for name, rate, act in (
                ("Dropout", 0.5, "relu"),
                ("AlphaDropout", 0.1, "selu"),
                ("GaussianDropout", 0.2, "relu"),
            )
        ],
        Family(
            "SpatialDropout2D",
            "regularization",
            stack(_conv("Conv2D", 16, **_RELU), ("SpatialDropout2D", {"rate": 0.3}), _conv("Conv2D", 8)),
            uniform("x", (12, 12, 3)),
            "Conv2D(16, 3, relu) -> SpatialDropout2D(0.3) -> Conv2D(8, 3)",
        ),
        Family(
            "Embedding",
            "embedding",
            stack(
                ("Embedding", {"input_dim": 200, "output_dim": 16, "embeddings_initializer": _normal(1.0)}),
                ("GlobalAveragePooling1D", {}),
                _dense(8),
            ),
            tokens("tokens", 12, 200),
            "int32 token ids -> Embedding(200, 16) -> GlobalAveragePooling1D -> Dense(8)",
        ),
        Family(
            "AdditiveAttention",
            "attention",
            _additive_attention,
            uniform("x", (8, 32)),
            "AdditiveAttention()([Dense(32)(x), Dense(32)(x)]) -> Dense(8)",
        ),
        Family(
            "MultiHeadAttention",
            "attention",
            _multi_head_attention,
            uniform("x", (8, 32)),
            "MultiHeadAttention(4 heads, key_dim 16)(x, x) -> Dense(8)",
        ),
        Family(
            "Lambda", "other", _lambda, uniform("x", (16,)), "Dense(64) -> Lambda(concatenate([t, abs(t)])) -> Dense(8)"
        ),
        Family(
            "Cropping2D",
            "other",
            stack(("Cropping2D", {"cropping": ((1, 2), (2, 1))}), _conv("Conv2D", 8)),
            uniform("x", (12, 12, 16)),
            "Cropping2D(((1, 2), (2, 1))) -> Conv2D(8, 3)",
        ),
        Family(
            "Masking",
            "other",
            stack(("Masking", {"mask_value": 0.0}), ("LSTM", {"units": 16}), _dense(4)),
            padded_sequences("x", 10, 6),
            "zero-padded sequences -> Masking(0.0) -> LSTM(16) -> Dense(4)",
        ),
        Family(
            "multi-input/multi-output",
            "models",
            _multi_io,
            combined(uniform("image", (8, 8, 1)), uniform("left", (6,)), uniform("right", (6,), -5.0, 5.0)),
            "functional: inputs image (8, 8, 1), left (6,), right (6,) on another scale; "
            "outputs class_logits (4), score (1)",
        ),
        Family(
            "subclassed model",
            "models",
            _subclassed,
            uniform("x", (16,)),
            "a subclassed keras.Model (Dense layers and a skip sum in call()), called once, not wrapped",
        ),
    ]
}


def make_model(family):
    """`family`'s model with its fixed seed: named `keras.Input`s shaped like its generator's
    arrays, the builder's outputs, and the `prepare` hook run on calibration-sized data."""
    import keras

    keras.utils.set_random_seed(family.seed)
    sample = family.inputs(np.random.default_rng(family.seed), 1)
    inputs = {name: keras.Input(shape=a.shape[1:], dtype=str(a.dtype), name=name) for name, a in sample.items()}
    built = family.build(inputs if len(inputs) > 1 else next(iter(inputs.values())))
    if isinstance(built, keras.Model):
        return built
    name = "".join(c if c.isalnum() else "_" for c in family.name.lower())
    return keras.Model(inputs if len(inputs) > 1 else next(iter(inputs.values())), built, name=name)


def get_family(name):
    """The family called `name` (case-insensitive), or one of your own as 'module:name' (a
    `Family` in an importable module, e.g. around a custom layer); else an InputError with the
    closest name."""
    if REF.match(str(name)) and name not in FAMILIES:
        return _imported_family(name)
    if name in FAMILIES:
        return FAMILIES[name]
    by_lower = {n.lower(): f for n, f in FAMILIES.items()}
    if str(name).lower() in by_lower:
        return by_lower[str(name).lower()]
    raise expected_one_of("--family", name, FAMILIES)


def _imported_family(ref):
    import dataclasses
    import importlib
    from pathlib import Path

    module_name, _, attr = ref.partition(":")
    with importable_from(Path.cwd()):
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise InputError(
                f"Expected --family module:name to name an importable module. Received: "
                f"'{ref}' ({e}). Put the module in the current folder or on PYTHONPATH."
            ) from None
    family = getattr(module, attr, None)
    if not isinstance(family, Family):
        raise InputError(
            f"Expected '{ref}' to be an edgekeras.coverage.families.Family. Received: "
            f"{type(family).__name__ if family is not None else 'no such name'}."
        )
    return dataclasses.replace(family, ref=ref)
