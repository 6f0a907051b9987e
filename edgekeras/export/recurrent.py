"""Recurrent models: finding their RNN layers, and the unrolled clone full-int8 needs.

TFLite converts recurrent layers only with a fixed batch (STACK-NOTES: `TensorListReserve`
needs a static element shape), and its int8 quantizer crashes on the resulting while-loops;
unrolling the layers (`unroll=True`, fixed sequence length) turns the loop into plain ops
that quantize to int8 builtins.
"""

from __future__ import annotations

from edgekeras.adaptation import refresh_adapted_state
from edgekeras.errors import InputError


def _children(layer):
    import keras

    if isinstance(layer, keras.Model):
        return list(layer.layers)
    found = []
    for attr in ("layer", "forward_layer", "backward_layer"):  # Bidirectional, TimeDistributed
        child = getattr(layer, attr, None)
        if isinstance(child, keras.layers.Layer):
            found.append(child)
    return found


def recurrent_layers(model):
    """Names of every `keras.layers.RNN` in `model` (nested models and wrappers included)."""
    import keras

    names, stack = [], list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.layers.RNN):
            names.append(layer.name)
        else:
            stack.extend(_children(layer))
    return names


def _unrolled_config(config):
    """A layer config with every nested `unroll` flag set (Bidirectional nests two RNNs)."""
    if isinstance(config, dict):
        return {k: True if k == "unroll" else _unrolled_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_unrolled_config(v) for v in config]
    return config


def check_fixed_length(model, what):
    """Unrolling needs the time dimension of every input to be known."""
    from edgekeras.keras_model import input_specs

    for spec in input_specs(model):
        if len(spec.shape) >= 2 and spec.shape[1] is None:
            raise InputError(
                f"Expected a fixed sequence length for {what} of a recurrent model (its RNN layers "
                f"are unrolled for int8). Received: input '{spec.name}' of shape "
                f"{tuple(spec.shape)}. Build the model with keras.Input(shape=(steps, ...)) "
                "instead of (None, ...)."
            )


def unrolled_clone(model):
    """A copy of `model` with every RNN layer unrolled, sharing its weights' values."""
    import keras

    def clone_layer(layer):
        if layer.name in set(recurrent_layers(model)) or _children(layer):
            return layer.__class__.from_config(_unrolled_config(layer.get_config()))
        return layer.__class__.from_config(layer.get_config())

    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
        refresh_adapted_state(clone)  # e.g. an adapted Normalization's statistics
    except Exception as e:  # subclassed models have no graph to clone
        raise InputError(
            f"Expected a Sequential or functional model to unroll its recurrent layers for int8. "
            f"Received: {type(model).__name__}, which Keras could not clone ({str(e).splitlines()[0]}). "
            "Build the model with unroll=True, or use --precision fp32/fp16/dynamic."
        ) from None
    return clone
