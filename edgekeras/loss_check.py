"""Before training: does each output's loss fit its labels and its number of units?

Keras notices some mismatches only deep inside `fit` (a rank error naming internal
tensors) and others never: binary_crossentropy on labels 0..9 with a 1-unit sigmoid output
trains without complaint and learns nothing. These checks read the labels once and name
the recipe key (`compile.loss`, `compile.loss.OUT`) and the output layer at fault.
"""

from __future__ import annotations

import re

import numpy as np

from edgekeras.errors import InputError
from edgekeras.model_io import _flat_outputs, output_names

SAMPLE = 512  # labels read from a streamed split (an array split gives all of its labels)

# loss kind -> the losses (snake_case names; CamelCase classes are converted) of that kind
KINDS = {
    "sparse": {"sparse_categorical_crossentropy", "sparse_categorical_focal_crossentropy"},
    "one_hot": {"categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge"},
    "binary": {"binary_crossentropy", "binary_focal_crossentropy"},
}


def check_loss_fits(model, loss, labels, output_paths=None):
    """Raises InputError when `loss` (the recipe's `compile.loss`) cannot fit `labels`.

    `labels` is an array (one output) or {output name: array}; `output_paths` maps output
    names to recipe paths (e.g. 'model.layers[3]') for the message.
    """
    names = output_names(model)
    shapes = dict(zip(names, _output_shapes(model)))
    if isinstance(loss, dict) and set(loss) <= set(names):
        per_output = {name: (spec, f"compile.loss.{name}") for name, spec in loss.items()}
    elif isinstance(loss, list) and len(loss) == len(names):
        per_output = {name: (spec, f"compile.loss[{i}]") for i, (name, spec) in enumerate(zip(names, loss))}
    else:
        per_output = dict.fromkeys(names, (loss, "compile.loss"))
    if not isinstance(labels, dict):
        if len(names) != 1:
            return  # one label array for several outputs: Keras decides
        labels = {names[0]: labels}
    for name, (spec, key) in per_output.items():
        if name in labels and labels[name] is not None:
            at = f"{output_paths[name]}: " if output_paths and name in output_paths else ""
            _check(_loss_name(spec), key, np.asarray(labels[name]), shapes[name], name, at, _activation(model, name))


def _check(loss, key, y, shape, name, at, activation):
    units = shape[-1] if shape else None
    if units is None or y.size == 0 or not np.issubdtype(y.dtype, np.number):
        return
    kind = next((k for k, losses in KINDS.items() if loss in losses), None)
    integral = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.mod(y, 1) == 0))
    output = f"output '{name}' ({at}{units} unit{'s' if units != 1 else ''}{f', {activation}' if activation else ''})"
    classes = int(y.max()) + 1 if integral else None
    if kind == "sparse":
        if not integral or y.min() < 0:
            raise InputError(
                f"Expected integer class labels for '{key}' ({loss}) with {output}. Received: labels "
                f"of dtype {y.dtype} in [{y.min():g}, {y.max():g}]. Use integer class ids, or a "
                "regression loss such as mse."
            )
        if classes > units:
            raise InputError(
                f"Expected class labels below {units} for '{key}' ({loss}) with {output}. Received: "
                f"labels up to {int(y.max())} ({classes} classes). Give the output {classes} units, e.g. "
                f"{{Dense: {{units: {classes}, activation: softmax}}}}."
            )
    elif kind == "one_hot":
        if y.ndim == len(shape) or (y.ndim == len(shape) + 1 and y.shape[-1] == 1 and units > 1):
            raise InputError(
                f"Expected one-hot labels of shape (N, {units}) for '{key}' ({loss}) with {output}. "
                f"Received: {'integer class ids' if integral else 'labels'} of shape {y.shape}. Use "
                "'sparse_categorical_crossentropy' for integer labels, or one-hot encode them."
            )
        if y.shape[-1] != units:
            raise InputError(
                f"Expected one-hot labels with {units} columns for '{key}' ({loss}) with {output}. "
                f"Received: labels of shape {y.shape}. Give the output {y.shape[-1]} units, or fix the labels."
            )
    elif kind == "binary" and (y.min() < 0 or y.max() > 1):
        hint = (
            f" For {classes} classes, end with {{Dense: {{units: {classes}, activation: softmax}}}} and "
            "use sparse_categorical_crossentropy."
            if integral
            else ""
        )
        raise InputError(
            f"Expected labels in [0, 1] for '{key}' ({loss}) with {output}. Received: labels in "
            f"[{y.min():g}, {y.max():g}]{f' ({classes} classes)' if integral else ''}.{hint}"
        )


def _loss_name(spec):
    """snake_case name of a recipe loss (string, {Class: config}, or a Loss object)."""
    if isinstance(spec, dict) and len(spec) == 1:
        spec = next(iter(spec))
    if not isinstance(spec, str):
        spec = getattr(spec, "name", None) or getattr(spec, "__name__", None) or type(spec).__name__
    if ":" in spec:
        return spec  # a custom loss: not checked
    return re.sub(r"(?<!^)(?=[A-Z])", "_", spec).lower() if spec[:1].isupper() else spec


def _output_shapes(model):
    return [tuple(t.shape[1:]) for t in _flat_outputs(model, model.outputs)]


def _activation(model, name):
    """The activation name of the output layer `name`, if it has one."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return None if name in (None, "linear") else name
