"""Labels keyed by the model's output names, the same way in every command and `ek.*` function.

A single-output model takes its labels as `y` (or `y_<output name>`); a multi-output model
as `y_<output name>` arrays beside the inputs (an `.npz` or {name: array}), or as one `y`
that is a dict {output name: array} (a list in the model's output order also works, as in
Keras). Labels for only some outputs are allowed: those heads are judged, and the others
are named as unlabelled.

`check_labels` then holds each label array against its output before any work starts: the
row count of the inputs, the output's shape (a class index per sample, or one row per
class for a classifier) and, for class indices, the number of classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.data.coerce import as_split
from edgekeras.errors import InputError, suggest
from edgekeras.heads import keras_heads
from edgekeras.keras_model import KerasModel, input_specs, output_names
from edgekeras.model_io import from_live_model

LABEL_PREFIX = "y_"
# Binary crossentropy is defined for labels in [0, 1] only (hinge losses also take -1/1).
UNIT_INTERVAL_LOSSES = ("binary_crossentropy", "binary_focal_crossentropy")


@dataclass
class Labelled:
    """Inputs, and labels by output name, of one data set.

    `split.x` holds the inputs only; `split.y` is {output name: array} (None without any
    labels). `names` says what each label array was called where the user gave it (`y`,
    `y_cls`, `y['cls']`), so errors name what the user wrote; `unlabelled` lists the outputs
    without labels, in the model's order.
    """

    split: Split
    names: dict = field(default_factory=dict)
    unlabelled: list = field(default_factory=list)

    @property
    def labels(self):
        return self.split.y or {}


def labels_by_output(data, output_names, input_names=(), what="data"):
    """A `Labelled` from `data` (a `.npz` path, {name: array}, a `Split`, (x, y), an array or
    a `tf.data.Dataset`) for a model with outputs `output_names`.

    Arrays named `y_<output>` are labels unless a model input has that name. A `y_` array
    naming no output, a single `y` array for a model with several outputs, or labels given
    both ways are `InputError`s.
    """
    split = as_split(data, what)
    if split is None:
        return None
    outputs, inputs = list(output_names), set(input_names)
    x, y = split.x, split.y
    labels, names = {}, {}
    if isinstance(x, dict):
        x = dict(x)
        for key in [k for k in x if k.startswith(LABEL_PREFIX) and k not in inputs]:
            output = key[len(LABEL_PREFIX) :]
            if output not in outputs:
                expected = [LABEL_PREFIX + o for o in outputs]
                raise InputError(
                    f"Expected label arrays named after the model's outputs ({', '.join(expected)}) in "
                    f"the {what}. Received: '{key}', which names no output.{suggest(key, expected)}"
                )
            labels[output], names[output] = x.pop(key), key
    if y is not None:
        if labels:
            raise InputError(
                f"Expected labels either as 'y' or as {', '.join(LABEL_PREFIX + o for o in outputs)} in the "
                f"{what}. Received: both 'y' and {', '.join(names.values())}. Keep one of them."
            )
        labels, names = _from_y(y, outputs, what)
    labels = {o: labels[o] for o in outputs if o in labels}  # the model's order
    return Labelled(Split(x, labels or None), names, [o for o in outputs if o not in labels])


def _from_y(y, outputs, what):
    if isinstance(y, dict):
        labels, names = {}, {}
        for key, value in y.items():
            output = key[len(LABEL_PREFIX) :] if key.startswith(LABEL_PREFIX) and key not in outputs else key
            if output not in outputs:
                raise InputError(
                    f"Expected the labels 'y' in the {what} keyed by output name ({', '.join(outputs)}). "
                    f"Received: key '{key}'.{suggest(key, outputs)}"
                )
            labels[output], names[output] = value, f"y['{key}']"
        return labels, names
    if isinstance(y, (list, tuple)) and len(outputs) == 1 and len(y) != 1:  # rows of one output's labels
        y = np.asarray(y)
    if isinstance(y, (list, tuple)):
        if len(y) != len(outputs):
            raise InputError(
                f"Expected one label array per output ({', '.join(outputs)}) in the list 'y' of the {what}. "
                f"Received: {len(y)} arrays. Name them instead: {', '.join(LABEL_PREFIX + o for o in outputs)}."
            )
        return dict(zip(outputs, y)), {o: f"y[{i}]" for i, o in enumerate(outputs)}
    if len(outputs) != 1:
        raise InputError(
            f"Expected labels per output, named {', '.join(LABEL_PREFIX + o for o in outputs)}, for a model "
            f"with {len(outputs)} outputs. Received: one array 'y' in the {what}. Rename it after the output "
            "it labels (labels for some outputs only are fine)."
        )
    return {outputs[0]: y}, {outputs[0]: "y"}


def fit_split(model, data, what="training data"):
    """`data` as a `Split` whose `y` is what Keras' `fit` takes for the `keras.Model` `model`:
    the array of its single output, else {output name: array} (from `y`, `y_<output>` or a
    dict, as `labels_by_output` reads them); `y` None without labels. Labels for some
    outputs only are an `InputError`: training needs every output's. A model without
    symbolic outputs (subclassed, never wrapped) keeps `data`'s labels as they are."""
    split = as_split(data, what)
    if split is None:
        return None
    try:
        outputs, inputs = output_names(model), [s.name for s in input_specs(model)]
    except (AttributeError, ValueError):
        return split
    labelled = labels_by_output(split, outputs, inputs, what)
    if labelled.labels and labelled.unlabelled:
        raise InputError(
            f"Expected labels for every output in the {what}. Received: none for "
            f"{', '.join(labelled.unlabelled)} (add {', '.join(LABEL_PREFIX + o for o in labelled.unlabelled)})."
        )
    labels = labelled.labels
    y = (next(iter(labels.values())) if len(labels) == 1 else dict(labels)) if labels else None
    return Split(labelled.split.x, y)


def check_labels(model, data, what="data", outputs=None):
    """The `Labelled` form of `data` for `model`, each label array checked against its output.

    Raises `InputError`, naming the array, for labels of a row count other than the inputs',
    a shape the output cannot be compared with, non-finite values, or class indices outside
    a classifier's classes (negative, or not below the number of classes). `outputs`
    ({name: array} of predictions) only helps decide heads with a custom loss. Returns None
    for `data` None.
    """
    keras_model = model if isinstance(model, KerasModel) else from_live_model(model)
    specs = {s.name: tuple(s.shape[1:]) for s in keras_model.outputs}
    labelled = labels_by_output(data, list(specs), [s.name for s in keras_model.inputs], what)
    if labelled is None or not labelled.labels:
        return labelled
    rows = len(labelled.split)
    heads = keras_heads(keras_model, outputs)
    checked = {}
    for output, values in labelled.labels.items():
        name = labelled.names[output]
        checked[output] = _check_one(np.asarray(values), name, heads[output], specs[output], rows, what)
    return Labelled(Split(labelled.split.x, checked), labelled.names, labelled.unlabelled)


def _check_one(values, name, head, shape, rows, what):
    where = f"output '{head.output}' ({head.kind}, by {head.basis})"
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise InputError(
            f"Expected numeric labels in {name} for {where}. Received: an array of dtype {values.dtype}. "
            "Encode classes as integer indices."
        )
    if values.ndim == 0 or len(values) != rows:
        got = "a scalar" if values.ndim == 0 else f"{len(values)} rows"
        raise InputError(
            f"Expected {name} with {rows} rows, like the inputs in the {what}. Received: {got}. "
            "Give one label per input sample."
        )
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        raise InputError(
            f"Expected finite values in {name}. Received: {int(np.sum(~np.isfinite(values)))} NaN/Inf values."
        )
    if head.kind == "other":  # e.g. CTC or a custom head: Keras' loss knows its label form
        return values
    per_sample = tuple(values.shape[1:])
    index_shapes = [shape[:-1], shape[:-1] + (1,)]
    full_shapes = [shape] + ([shape[:-1]] if shape[-1:] == (1,) else [])
    if head.kind == "classifier":
        allowed = {"index": index_shapes, "one_hot": [shape]}.get(head.labels, index_shapes + [shape])
    else:
        allowed = full_shapes
    if not any(_fits(per_sample, s) for s in allowed):
        want = " or ".join(_describe(rows, s) for s in allowed)
        hint = {
            "index": " (one class index per sample)",
            "one_hot": " (one row per class: one-hot)",
        }.get(head.labels or "", "")
        raise InputError(f"Expected {name} of shape {want}{hint} for {where}. Received: shape {values.shape}.")
    if head.kind == "classifier" and any(_fits(per_sample, s) for s in index_shapes) and head.labels != "one_hot":
        _check_classes(values, name, where, shape[-1])
    if head.loss in UNIT_INTERVAL_LOSSES and values.size and (values.min() < 0 or values.max() > 1):
        raise InputError(
            f"Expected {name} in [0, 1] for {where}: {head.loss} takes 0/1 labels or probabilities. "
            f"Received: values from {values.min():g} to {values.max():g}."
        )
    return values


def _check_classes(values, name, where, classes):
    if classes is None or not values.size:
        return
    if not np.all(np.equal(np.mod(values, 1), 0)):
        sample = values[np.mod(values, 1) != 0].ravel()[0]
        raise InputError(
            f"Expected {name} to hold class indices (whole numbers) for {where}. Received: values such as {sample:g}."
        )
    outside = (values < 0) | (values >= classes)
    if np.any(outside):
        raise InputError(
            f"Expected {name} to hold class indices in [0, {classes - 1}] for {where}, which has {classes} "
            f"classes. Received: values from {values.min():g} to {values.max():g} ({int(outside.sum())} "
            "outside that range). Check the label encoding, or the number of units of that output."
        )


def _fits(shape, expected):
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))


def _describe(rows, shape):
    return str((rows, *("N" if d is None else d for d in shape)))
