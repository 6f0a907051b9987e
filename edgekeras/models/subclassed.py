"""Subclassed Keras models as functional ones, on named `keras.Input`s.

A subclassed `keras.Model` (or an unbuilt Sequential) has no symbolic inputs, and converters
and validation need them (inputs and outputs are matched by name). Calling the model on
named `keras.Input`s and wrapping the result in `keras.Model(inputs, outputs)` gives a
functional model that shares the original's layers and weights.
"""

from __future__ import annotations

from edgekeras.errors import InputError

# The name of a single wrapped input (as `model.python`'s `input_name` default).
DEFAULT_INPUT_NAME = "input"


def has_inputs(model):
    """True if `model` has symbolic inputs (functional, or a Sequential with an Input)."""
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):  # subclassed: no `inputs`; unbuilt Sequential: ValueError
        return False


def wrap(model, inputs, what, source):
    """`model` called on `inputs` (a `keras.Input`, a list or {name: Input}) as a functional
    model named like `model`. Errors say `what` the model is and `source` of the shapes."""
    import keras

    try:
        outputs = model(inputs)
    except Exception as e:  # the model's own call(): report Keras' first line, not a traceback
        shape = (
            {k: tuple(v.shape) for k, v in inputs.items()}
            if isinstance(inputs, dict)
            else [tuple(v.shape) for v in inputs]
            if isinstance(inputs, (list, tuple))
            else tuple(inputs.shape)
        )
        text = str(e).strip()
        raise InputError(
            f"{what} could not be called on inputs of shape {shape} from {source}: "
            f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
        ) from None
    return keras.Model(inputs, outputs, name=model.name)


def functional(model):
    """`model` itself if it has symbolic inputs, else a functional model on named inputs
    shaped like the batch it was built on (`get_build_config()`: Keras records the shapes a
    subclassed model was first called with). One input is named 'input'; dict inputs keep
    their keys; a compiled model's wrapper is compiled alike. Keras does not record input dtypes: the inputs are float32 (wrap a model
    taking integers yourself: `keras.Model(inputs, model(inputs))`)."""
    if has_inputs(model):
        return model
    what = f"the subclassed model '{model.name}' ({type(model).__name__})"
    config = model.get_build_config() if model.built else None
    shapes = (config or {}).get("input_shape")
    if shapes is None and (config or {}).get("shapes_dict"):
        raise InputError(
            f"Expected a model whose call() takes one argument (a tensor, list or dict). Received: {what}, "
            f"whose call() takes {', '.join(k.removesuffix('_shape') for k in config['shapes_dict'])}. "
            "Pass a functional model instead: keras.Model(inputs, model(...)) on named keras.Inputs."
        )
    if shapes is None:
        raise InputError(
            f"Expected a keras.Model with known input shapes. Received: {what}, which has never been "
            "called, so its input shapes are unknown. Call it on a batch first (model(x)), or pass a "
            "functional model: keras.Model(inputs, outputs) on named keras.Inputs."
        )
    wrapper = wrap(model, _inputs(shapes), what, "the batch it was built on")
    _compile_like(wrapper, model)
    return wrapper


def _compile_like(wrapper, model):
    """Compiles `wrapper` as `model` was (a reloaded model evaluates with its loss and metrics)."""
    config = getattr(model, "_compile_config", None)  # Keras keeps compile()'s arguments here
    if getattr(model, "compiled", False) and config is not None:
        wrapper.compile(**config.config)


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, int) for d in value)


def _inputs(shapes):
    """Named `keras.Input`s (batch dim dropped) for the build shapes: one, a list or a dict."""
    import keras

    def make(shape, name):
        return keras.Input(shape=tuple(shape[1:]), name=name, dtype="float32")

    if isinstance(shapes, dict):
        return {name: make(shape, name) for name, shape in shapes.items()}
    if _is_shape(shapes):
        return make(shapes, DEFAULT_INPUT_NAME)
    return [make(shape, f"{DEFAULT_INPUT_NAME}_{i}") for i, shape in enumerate(shapes)]
