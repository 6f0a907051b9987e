"""`model.type: python` — `module:function` (or `module:Class`) returning a Keras model.

The module is imported from the current folder, the recipe's folder or PYTHONPATH. A
functional model is used as it is; a subclassed `keras.Model` (or an unbuilt Sequential)
has no symbolic inputs, so it is called on named `keras.Input`s from `input_shape`
(or `inputs: {name: shape}`) and wrapped in a functional model (`models.subclassed`) —
which is what the converters and validation need (named inputs and outputs). Custom layer and model classes
are registered with Keras so the saved `.keras` file reloads, and recorded in `run.json`.
"""

from __future__ import annotations

import traceback

from edgekeras.errors import InputError
from edgekeras.models.custom_objects import REF, custom_classes_in, import_refs
from edgekeras.models.subclassed import has_inputs, wrap
from edgekeras.recipe.schema import Field

FIELDS = {
    "function": Field("str", doc="Give 'model.function: mymodule:build_model' (returns a keras.Model)."),
    "kwargs": Field("dict", {}, doc="Keyword arguments for the function."),
    "input_shape": Field("shape", None, doc="Input shape (no batch dim) for a subclassed model."),
    "input_name": Field("str", "input"),
    "input_dtype": Field("str", "float32"),
    "inputs": Field("dict", None, doc="{name: shape} for a subclassed model with several inputs."),
}


def build(section, base_dir=None):
    import keras

    ref = section["function"]
    if not REF.match(ref):
        raise InputError(f"Expected 'model.function' as module:function. Received: {ref!r}.")
    fn = import_refs([ref], "'model.function'")[0]
    if not callable(fn):
        raise InputError(f"Expected 'model.function' ({ref}) to be callable. Received: {type(fn).__name__}.")
    try:
        model = fn(**section["kwargs"])
    except Exception as e:  # the user's code: say where it failed, briefly
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise InputError(
            f"'model.function' ({ref}) raised {type(e).__name__}: {str(e).strip() or '(no message)'} "
            f"at {frame.filename}:{frame.lineno}. Check 'model.kwargs' and the function."
        ) from None
    if not isinstance(model, keras.Model):
        raise InputError(
            f"Expected 'model.function' ({ref}) to return a keras.Model. Received: {type(model).__name__}."
        )
    if not has_inputs(model):
        model = _wrap(model, section, ref)
    custom_classes_in(model)  # registers them, so model.save() then load round-trips
    return model


def _wrap(model, section, ref):
    """A functional model around a subclassed one, on the recipe's named inputs."""
    import keras

    if section["inputs"]:
        inputs = {
            name: keras.Input(shape=tuple(shape), name=name, dtype=section["input_dtype"])
            for name, shape in section["inputs"].items()
        }
    elif section["input_shape"]:
        inputs = keras.Input(
            shape=tuple(section["input_shape"]), name=section["input_name"], dtype=section["input_dtype"]
        )
    else:
        raise InputError(
            f"Expected 'model.input_shape' (or 'model.inputs: {{name: shape}}') for the subclassed model "
            f"{type(model).__name__} that {ref} returns. Received: neither. A subclassed model has no "
            "input shape of its own; give it, e.g. 'input_shape: [8, 8, 1]'."
        )

    return wrap(
        model, inputs, f"The model {ref} returns ({type(model).__name__})", "'model.input_shape'/'model.inputs'"
    )
