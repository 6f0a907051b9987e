"""Recurrent models: finding their RNN layers, and the unrolled clone full-int8 needs.

TFLite converts recurrent layers only with a fixed batch (STACK-NOTES: `TensorListReserve`
needs a static element shape), and its int8 quantizer crashes on the resulting while-loops;
unrolling the layers (`unroll=True`, fixed sequence length) turns the loop into plain ops
that quantize to int8 builtins. A free sequence length (`keras.Input((None, ...))`) is fixed
for that: from `input_lengths` ({input name: length}) when given, else from the calibration
data's shape, which is the length the quantization ranges were measured on.
"""

from __future__ import annotations

import numpy as np

from edgekeras.adaptation import refresh_adapted_state
from edgekeras.errors import InputError
from edgekeras.keras_model import input_specs

TIME_AXIS = 1  # (batch, steps, ...): the axis an RNN layer iterates over


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
    return _rnn_names(getattr(model, "layers", []))


def _rnn_names(layers):
    import keras

    names, stack = [], list(layers)
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


def check_input_lengths(input_lengths, specs):
    """`input_lengths` ({input name: length}) checked against the model's inputs `specs`.

    Each named input must exist, have a sequence axis, and not already be fixed to another
    length; each length must be a positive integer. Returns a plain {name: int} ({} for None).
    """
    if input_lengths is None:
        return {}
    described = ", ".join(s.describe() for s in specs)
    if not isinstance(input_lengths, dict):
        raise InputError(
            f"Expected input_lengths as {{input name: length}}. Received: {type(input_lengths).__name__} "
            f"{input_lengths!r}. The model's inputs: {described}."
        )
    checked = {}
    by_name = {s.name: s for s in specs}
    for name, length in input_lengths.items():
        if name not in by_name:
            raise InputError(
                f"Expected --input-length to name one of the model's inputs ({described}). Received: '{name}'."
            )
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise InputError(
                f"Expected a positive integer length for input '{name}' (--input-length {name}=LENGTH). "
                f"Received: {length!r}."
            )
        spec = by_name[name]
        if len(spec.shape) <= TIME_AXIS:
            raise InputError(
                f"Expected --input-length to name an input with a sequence axis (batch, steps, ...). "
                f"Received: '{name}', of shape {tuple(spec.shape)}. The model's inputs: {described}."
            )
        fixed = spec.shape[TIME_AXIS]
        if fixed is not None and fixed != length:
            raise InputError(
                f"Expected --input-length {name}={fixed} or none: the model fixes the sequence length of "
                f"input '{name}' (shape {tuple(spec.shape)}). Received: {name}={length}."
            )
        checked[name] = int(length)
    return checked


def sequence_lengths(model, input_lengths, calibration, what):
    """{input name: (length, source)} for every input of `model` whose sequence length is free.

    `source` is "input_lengths" (given) or "calibration" (the calibration arrays' length).
    An input with neither is an `InputError`; so is calibration data of another length than
    the one given.
    """
    found = {}
    for spec in input_specs(model):
        if len(spec.shape) <= TIME_AXIS or spec.shape[TIME_AXIS] is not None:
            continue
        given = input_lengths.get(spec.name)
        data = None if calibration is None else calibration.get(spec.name)
        measured = None if data is None else int(np.shape(data)[TIME_AXIS])
        if given is not None and measured is not None and given != measured:
            raise InputError(
                f"Expected calibration data of sequence length {given} for input '{spec.name}' "
                f"(--input-length {spec.name}={given}). Received: arrays of shape {tuple(np.shape(data))}. "
                "Pass calibration sequences of that length, or drop --input-length to use theirs."
            )
        if given is not None:
            found[spec.name] = (given, "input_lengths")
        elif measured is not None:
            found[spec.name] = (measured, "calibration")
        else:
            raise InputError(
                f"Expected a fixed sequence length for {what} of a recurrent model (its RNN layers "
                f"are unrolled). Received: input '{spec.name}' of shape {tuple(spec.shape)} and no "
                f"length for it. Pass --input-length {spec.name}=N (input_lengths={{'{spec.name}': N}}), "
                "or build the model with keras.Input(shape=(steps, ...))."
            )
    return found


def unrolled_clone(model, lengths=None):
    """A copy of `model` with every RNN layer unrolled, sharing its weights' values.

    `lengths` ({input name: steps}) fixes free sequence lengths: unrolling needs them known.
    """
    import keras

    recurrent = set(recurrent_layers(model))

    def clone_layer(layer):
        if layer.name in recurrent or _children(layer):
            return layer.__class__.from_config(_unrolled_config(layer.get_config()))
        return layer.__class__.from_config(layer.get_config())

    def fixed(t):  # the same input with its free sequence length fixed
        shape = tuple(lengths.get(t.name, d) if axis == TIME_AXIS else d for axis, d in enumerate(t.shape))
        return keras.Input(shape=shape[1:], dtype=t.dtype, name=t.name)

    inputs = keras.tree.map_structure(fixed, model.input) if lengths else None
    try:
        clone = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
        refresh_adapted_state(clone)  # e.g. an adapted Normalization's statistics
    except Exception as e:  # subclassed models have no graph to clone
        raise InputError(
            f"Expected a Sequential or functional model to unroll its recurrent layers for int8. "
            f"Received: {type(model).__name__}, which Keras could not clone ({str(e).splitlines()[0]}). "
            "Build the model with unroll=True, or use --precision fp32/fp16/dynamic."
        ) from None
    return clone


def unrolled_steps(model):
    """{recurrent layer: steps it is unrolled over}, read from the sequence axis of the input
    of the layer that is or wraps it (None where Keras does not know that length)."""
    import keras

    steps = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            steps.update(unrolled_steps(layer))
            continue
        names = _rnn_names([layer])
        if names:
            inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
            shape = tuple(inputs[0].shape) if inputs else ()
            length = shape[TIME_AXIS] if len(shape) > TIME_AXIS else None
            steps.update(dict.fromkeys(names, None if length is None else int(length)))
    return steps
