"""`model.type: application` — a `keras.applications` network, optionally with a new head.

Nothing is downloaded: `weights` is a local weights file or null (random init). `freeze`
freezes the whole base; `fine_tune_from` (a layer name or index) freezes the base up to
that layer and trains the rest. `head` is a list of layers, like `sequential`'s, added on
the base's output.
"""

from __future__ import annotations

from edgekeras.errors import InputError, suggest
from edgekeras.models import find_file
from edgekeras.models.sequential import stack
from edgekeras.recipe.schema import Field

FIELDS = {
    "application": Field("str", doc="Give 'model.application', e.g. MobileNetV2, ResNet50, VGG16."),
    "weights": Field("str", None, doc="A local weights file (.h5/.weights.h5) or null for random init."),
    "input_shape": Field("shape", None, doc="Input shape without the batch dim, e.g. [96, 96, 3]."),
    "input_name": Field("str", "input"),
    "include_top": Field("bool", True),
    "classes": Field("posint", 1000),
    "pooling": Field("str", None, choices=("avg", "max")),
    "kwargs": Field("dict", {}, doc="Other arguments of the application, e.g. {alpha: 0.35}."),
    "freeze": Field("bool", False, doc="Freeze every layer of the application (train the head only)."),
    "fine_tune_from": Field("any", None, doc="Layer name or index: layers before it stay frozen."),
    "head": Field("list", [], doc="Layers added on top, e.g. [{Dense: {units: 10, activation: softmax}}]."),
    "name": Field("str", None),
}


def applications():
    """{name: constructor} of every network in keras.applications."""
    import keras

    return {n: f for n, f in vars(keras.applications).items() if n[:1].isupper() and callable(f)}


def build(section, base_dir=None):
    import keras

    apps = applications()
    name = section["application"]
    if name not in apps:
        raise InputError(
            f"Unknown application '{name}' at 'model.application'.{suggest(name, apps)} "
            f"Expected one of keras.applications: {', '.join(sorted(apps))}."
        )
    weights = section["weights"]
    if weights == "imagenet":
        raise InputError(
            "Expected 'model.weights' to be a local weights file or null. Received: 'imagenet', which "
            "Keras would download; edgekeras does not download at run time. Download the weights file "
            "once (e.g. with keras.applications on a connected machine) and give its path."
        )
    if weights is not None:
        weights = str(find_file(weights, base_dir, "model.weights"))
    kwargs = dict(section["kwargs"])
    kwargs.update(
        weights=weights, include_top=section["include_top"], classes=section["classes"], pooling=section["pooling"]
    )
    if section["input_shape"]:
        kwargs["input_tensor"] = keras.Input(shape=tuple(section["input_shape"]), name=section["input_name"])
    try:
        base = apps[name](**kwargs)
    except Exception as e:  # Keras explains bad shapes, weights and arguments in ValueError/TypeError
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"Could not build {name} from 'model' ({type(e).__name__}): {text}") from None
    _freeze(base, section)
    if not section["head"]:
        return base if not section["name"] else keras.Model(base.inputs, base.outputs, name=section["name"])
    outputs = stack(base.output, section["head"], "model.head")
    return keras.Model(base.inputs, outputs, name=section["name"] or f"{base.name}_head")


def _freeze(base, section):
    start = section["fine_tune_from"]
    if section["freeze"] and start is not None:
        raise InputError("Expected one of 'model.freeze' and 'model.fine_tune_from'. Received: both.")
    if section["freeze"]:
        base.trainable = False
        return
    if start is None:
        return
    names = [layer.name for layer in base.layers]
    if isinstance(start, bool) or not isinstance(start, (int, str)):
        raise InputError(f"Expected 'model.fine_tune_from' to be a layer name or index. Received: {start!r}.")
    if isinstance(start, int):
        if not -len(names) <= start < len(names):
            raise InputError(
                f"Expected 'model.fine_tune_from' to be a layer index in [0, {len(names)}). Received: {start}."
            )
        index = start % len(names)
    elif start in names:
        index = names.index(start)
    else:
        raise InputError(
            f"Expected 'model.fine_tune_from' to name a layer of {base.name}. Received: {start!r}."
            f"{suggest(start, names)}"
        )
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= index
