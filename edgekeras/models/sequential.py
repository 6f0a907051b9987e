"""`model.type: sequential` — a list of Keras layers, each `{ClassName: config}`."""

from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field

FIELDS = {
    "input_shape": Field("shape", doc="Give 'model.input_shape', e.g. [8, 8, 1] (no batch dim)."),
    "input_name": Field("str", "input"),
    "input_dtype": Field("str", "float32"),
    "layers": Field("list", doc="Give 'model.layers: [{Dense: {units: 10}}, ...]'."),
    "name": Field("str", None),
}


def build(section):
    import keras

    from edgekeras.recipe.keras_objects import resolve

    if not section["layers"]:
        raise InputError("Expected at least one layer in 'model.layers'. Received: an empty list.")
    inputs = keras.Input(shape=tuple(section["input_shape"]), name=section["input_name"],
                         dtype=section["input_dtype"])
    layers = [resolve(spec, "layers", f"model.layers[{i}]") for i, spec in enumerate(section["layers"])]
    model = keras.Sequential([inputs], name=section["name"] or None)
    shape = (None, *section["input_shape"])
    for i, layer in enumerate(layers):
        try:
            model.add(layer)
        except Exception as e:  # Keras raises ValueError/TypeError with the shapes involved
            raise InputError(
                f"Layer 'model.layers[{i}]' ({type(layer).__name__}) does not fit its input of "
                f"shape {shape}: {str(e).strip().splitlines()[0]}"
            ) from None
        shape = model.output_shape
    return model
