"""`model.type: file` — start from a saved model (e.g. to fine-tune it).

`path` is a `.keras` or `.h5` model, or a `.weights.h5` weights file with `architecture`
(a model config mapping, a `.json`/`.keras` file, or `module:function`). A SavedModel folder
loads for inference only (`keras.layers.TFSMLayer`), so it cannot be trained here.
`unsafe` (every model type's key, see `models.COMMON_FIELDS`) loads it with safe_mode off.
"""

from edgekeras.errors import InputError
from edgekeras.model_io import RECIPE, is_saved_model, is_weights_file, load_model
from edgekeras.models import find_file
from edgekeras.models.custom_objects import REF, import_refs
from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'model.path: model.keras'."),
    "architecture": Field("any", None, doc="For a .weights.h5 path: a config, .json/.keras file or module:function."),
    "custom_objects": Field("strlist", [], doc="Modules (or module:name) defining the model's custom objects."),
}


def build(section, base_dir=None):
    path = find_file(section["path"], base_dir, "model.path")
    if is_saved_model(path):
        raise InputError(
            f"Expected a .keras/.h5 model (or .weights.h5 with 'model.architecture') at 'model.path'. "
            f"Received: the SavedModel '{path}', which Keras reloads for inference only (TFSMLayer) and "
            "cannot fine-tune. Convert it directly with 'edgekeras convert', or give the Keras model file."
        )
    import_refs(section["custom_objects"], "'model.custom_objects'")
    architecture = section["architecture"]
    if architecture is not None and not is_weights_file(path):
        raise InputError(
            f"Expected 'model.architecture' only with a weights file (.weights.h5). Received: '{path}', "
            "which holds its own architecture. Remove 'model.architecture'."
        )
    if isinstance(architecture, str) and not _is_ref(architecture):
        architecture = str(find_file(architecture, base_dir, "model.architecture"))
    loaded = load_model(
        path, safe_mode=not section["unsafe"], architecture=architecture, float32=False, remedies=RECIPE
    )
    return loaded.model


def _is_ref(text):
    return bool(REF.match(text))
