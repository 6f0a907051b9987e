"""`quantize_aware`: a quantization-aware copy of a trained model, calibrated and fine-tuned.

See the package docstring (`edgekeras.qat`) for what the copy simulates and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from edgekeras.adaptation import refresh_adapted_state
from edgekeras.data.coerce import as_split
from edgekeras.data.labels import fit_split
from edgekeras.errors import InputError
from edgekeras.pruning.pruner import preserve_zeros, strip_pruning
from edgekeras.qat import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_DECAY, DEFAULT_EPOCHS, fake_quant_layers
from edgekeras.qat.transform import consumers_of, insert_fake_quant
from edgekeras.qat.weights import snap_weights
from edgekeras.sources import as_keras_model

if TYPE_CHECKING:
    import keras

    from edgekeras.data.coerce import DataLike
    from edgekeras.sources import ModelLike


def calibrate(model: keras.Model, feeds: Mapping[str, np.ndarray], batch_size: int = 32) -> int:
    """Sets every `FakeQuant` range of `model` to the min/max its input takes over `feeds`
    ({input name: array}) in the float model, the ranges a post-training calibration finds."""
    import keras

    layers = fake_quant_layers(model)
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    for layer in layers:
        layer.enabled = False
    try:
        lows, highs = _ranges(probe, feeds, len(layers), batch_size)
    finally:
        for layer in layers:
            layer.enabled = True
    for layer, low, high in zip(layers, lows, highs):
        layer.set_range(low, high)
    return len(layers)


def _ranges(
    probe: keras.Model, feeds: Mapping[str, np.ndarray], count: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    lows, highs = np.full(count, np.inf), np.full(count, -np.inf)
    n = len(next(iter(feeds.values())))
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in feeds.items()}
        values = probe(batch, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for i, value in enumerate(values):
            value = np.asarray(value, dtype=np.float32)
            lows[i], highs[i] = min(lows[i], value.min()), max(highs[i], value.max())
    return lows, highs


def _optimizer(model: keras.Model, learning_rate: float | None) -> keras.optimizers.Optimizer:
    """A fresh optimizer of the model's kind at `learning_rate` (default: a tenth of its own)."""
    import keras

    source = getattr(model, "optimizer", None)
    if source is None:
        return keras.optimizers.Adam(learning_rate or 1e-4)
    config = source.get_config()
    if learning_rate is None:
        current = config.get("learning_rate")
        learning_rate = float(current) / 10 if isinstance(current, (int, float)) else 1e-4
    config["learning_rate"] = float(learning_rate)
    return type(source).from_config(config)


def quantize_aware(
    model: ModelLike,
    data: DataLike,
    calibration: DataLike | None = None,
    epochs: int = DEFAULT_EPOCHS,
    learning_rate: float | None = None,
    batch_size: int = 32,
    validation_data: DataLike | None = None,
    decay: float = DEFAULT_DECAY,
    safe_mode: bool = True,
    verbose: int = 0,
) -> keras.Model:
    """A quantization-aware copy of `model`, calibrated and fine-tuned on labelled `data`.

    Args:
        model: a trained, compiled functional or Sequential `keras.Model`, or a `.keras`
            file / run folder (its loss and metrics are reused).
        data: labelled training data: (x, y), {input: array, 'y': labels}, a `.npz` path or a
            `tf.data.Dataset` of (x, y).
        calibration: inputs to set the starting ranges (default: the first 200 of `data`).
        epochs: fine-tuning epochs (0: calibrate only, no training).
        learning_rate: fine-tuning rate (default: a tenth of the model's optimizer's).
        batch_size: fine-tuning batch size.
        validation_data: labelled data evaluated after each epoch (same forms as `data`).
        decay: moving-average weight of the old range when a batch updates a tensor's range.

    Returns:
        A compiled `keras.Model` with `FakeQuant` layers. BatchNormalization layers are
        frozen (inference statistics) so training and inference quantize the same tensors.
        A pruned model keeps its zeros: kernels with zero weights are masked while they
        fine-tune, so the int8 artifact is as sparse as the float model.
    """
    import keras

    if not isinstance(epochs, int) or epochs < 0:
        raise InputError(f"Expected epochs as an integer >= 0. Received: {epochs!r}.")
    source = as_keras_model(model, safe_mode=safe_mode)
    original = source.model
    consumers_of(original)  # a subclassed model, nested too, is refused before anything is copied
    if getattr(original, "loss", None) is None and epochs:
        raise InputError(
            f"Expected a compiled model (its loss drives the fine-tuning). Received: '{original.name}', "
            "not compiled. Call model.compile(loss=..., metrics=...) first, or pass epochs=0."
        )
    if fake_quant_layers(original):
        raise InputError(
            f"Expected a model without FakeQuant layers. Received: '{original.name}', which is "
            "already quantization-aware. Fine-tune it with model.fit instead."
        )
    split = fit_split(source.model, data, "training data")  # y, y_<output> or y as a dict
    if split is None or (epochs and split.y is None):
        raise InputError(
            "Expected labelled training data (x, y) for quantization-aware training. "
            "Received: " + ("none." if split is None else "inputs without labels 'y'.")
        )
    feeds = split.feeds(source.inputs, what="training data")
    calib = (
        as_split(calibration, "calibration data").feeds(source.inputs, what="calibration data")
        if calibration is not None
        else {k: v[:DEFAULT_CALIBRATION_SAMPLES] for k, v in feeds.items()}
    )

    copy = keras.models.clone_model(original)
    copy.set_weights(original.get_weights())
    refresh_adapted_state(copy)  # e.g. an adapted Normalization's statistics
    qat = insert_fake_quant(copy, decay)
    calibrate(qat, calib, batch_size)
    for layer in qat._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    preserve_zeros(qat)  # a pruned model's zeros stay zero while it fine-tunes (sparsity-preserving QAT)
    _compile_like(qat, original, _optimizer(original, learning_rate))
    if epochs:
        x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
        val = None
        if validation_data is not None:
            v = fit_split(source.model, validation_data, "validation data")
            vf = v.feeds(source.inputs, what="validation data")
            val = (vf if len(vf) > 1 else next(iter(vf.values())), v.y)
        qat.fit(x, split.y, batch_size=batch_size, epochs=epochs, validation_data=val, verbose=verbose)
    strip_pruning(qat)
    snap_weights(qat)
    return qat


def _compile_like(qat: keras.Model, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Compiles `qat` with `model`'s loss and metrics (Keras keeps compile()'s arguments)."""
    compile_config = getattr(model, "_compile_config", None)
    args = dict(compile_config.config) if compile_config is not None else {}
    args.pop("auto_scale_loss", None)
    qat.compile(**{**args, "optimizer": optimizer})
