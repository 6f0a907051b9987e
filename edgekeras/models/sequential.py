"""`model.type: sequential` — a list of Keras layers, each `{ClassName: config}`."""

from edgekeras.errors import InputError
from edgekeras.recipe.keras_objects import resolve
from edgekeras.recipe.schema import Field

FIELDS = {
    "input_shape": Field("shape", doc="Give 'model.input_shape', e.g. [8, 8, 1] (no batch dim)."),
    "input_name": Field("str", "input"),
    "input_dtype": Field("str", "float32"),
    "layers": Field("list", doc="Give 'model.layers: [{Dense: {units: 10}}, ...]'."),
    "name": Field("str", None),
}


def resolve_layers(specs, path):
    """Keras layers from recipe entries; errors name `path[i]`."""
    if not specs:
        raise InputError(f"Expected at least one layer in '{path}'. Received: an empty list.")
    return [resolve(spec, "layers", f"{path}[{i}]") for i, spec in enumerate(specs)]


def fit_error(layer, where, shape, error):
    """The error for a layer that cannot take its input (Keras' own reason, first line)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return InputError(f"Layer '{where}' ({type(layer).__name__}) does not fit its input of shape {shape}: {reason}")


def stack(tensor, specs, path):
    """Applies the layers `specs` describes to a symbolic `tensor` (e.g. a head on a base)."""
    for i, layer in enumerate(resolve_layers(specs, path)):
        try:
            tensor = layer(tensor)
        except Exception as e:  # Keras raises ValueError/TypeError with the shapes involved
            raise fit_error(layer, f"{path}[{i}]", tuple(tensor.shape), e) from None
    return tensor


def build(section, base_dir=None):
    import keras

    layers = resolve_layers(section["layers"], "model.layers")
    inputs = keras.Input(shape=tuple(section["input_shape"]), name=section["input_name"], dtype=section["input_dtype"])
    model = keras.Sequential([inputs], name=section["name"] or None)
    shape = (None, *section["input_shape"])
    for i, layer in enumerate(layers):
        try:
            model.add(layer)
        except Exception as e:  # Keras raises ValueError/TypeError with the shapes involved
            raise fit_error(layer, f"model.layers[{i}]", shape, e) from None
        shape = model.output_shape
    return model


def output_layer_path(section):
    """The recipe path of the layer that produces the output (for error messages)."""
    return f"model.layers[{len(section['layers']) - 1}]"
