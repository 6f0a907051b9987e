"""`data.augment`: Keras preprocessing layers applied to training batches in the tf.data
pipeline only (never to validation or test data, and never part of the exported model).

Each entry is written the way Keras serializes a layer, e.g.
`[{RandomFlip: {mode: horizontal}}, {RandomRotation: {factor: 0.1}}]`, and resolved in
Keras' `layers` namespace, so every preprocessing layer Keras has works.
"""

from __future__ import annotations

from edgekeras.errors import InputError
from edgekeras.recipe.keras_objects import is_short_form, resolve


def check_augment(specs, path="data.augment"):
    """Checks the shape of each entry (no Keras import); names are resolved at load time."""
    for i, spec in enumerate(specs):
        if not (is_short_form(spec) or isinstance(spec, str) or (isinstance(spec, dict) and "class_name" in spec)):
            raise InputError(
                f"Expected '{path}[{i}]' to be a Keras preprocessing layer as {{ClassName: {{config}}}}, "
                f"e.g. {{RandomFlip: {{mode: horizontal}}}}. Received: {spec!r}."
            )


def build_augment(specs, path="data.augment"):
    """The Keras layers `specs` name (errors suggest the closest layer name)."""
    return [resolve(spec, "layers", f"{path}[{i}]") for i, spec in enumerate(specs)]


def augment_fn(layers):
    """A tf.data map function applying `layers` to a batch of inputs with training=True."""

    def apply(x, y=None):
        for layer in layers:
            x = layer(x, training=True)
        return x if y is None else (x, y)

    return apply


def check_single_input(split, path="data.augment"):
    """Augmentation applies to one input tensor: multi-input data is refused clearly."""
    if split is not None and isinstance(split.element_shapes()["x"], dict):
        raise InputError(
            f"Expected single-input data for '{path}'. Received: inputs "
            f"{sorted(split.element_shapes()['x'])}. Put the preprocessing layers in the model instead."
        )
