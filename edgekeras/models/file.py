"""`model.type: file` — start from an existing `.keras`/`.h5` model (e.g. to fine-tune)."""

from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'model.path: model.keras'."),
    "unsafe": Field("bool", False, doc="Allow Lambda layers' code to load (Keras safe_mode off)."),
}


def build(section):
    from edgekeras.model_io import load_model

    return load_model(section["path"], safe_mode=not section["unsafe"]).model
