"""Loading Keras models from disk with clear errors, and describing their signatures.

`safe_mode` stays on unless the caller asks: a model whose Lambda layers carry code is
refused with an error that says how to allow it. A run folder's `run.json` never turns it
off by itself (see `load_model`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.atomic import atomic_path
from edgekeras.errors import InputError
from edgekeras.export.graph import serving_function
from edgekeras.keras_lean_load import lean_loading
from edgekeras.keras_model import (  # noqa: F401  (re-exported while callers move over)
    KerasModel,
    _flat_outputs,
    input_specs,
    output_names,
    output_specs,
    outputs_by_name,
    predict,
    sha256_model,
)
from edgekeras.models import python as python_model
from edgekeras.models.custom_objects import REF, import_refs, importable_from, missing_object_message
from edgekeras.models.functional import from_config, from_json_file
from edgekeras.models.precision import float32_model, mixed_policy
from edgekeras.models.subclassed import functional
from edgekeras.quiet import captured_output, quiet_tensorflow

if TYPE_CHECKING:
    import keras

    from edgekeras.hints import Architecture, PathLike

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
WEIGHTS_SUFFIX = ".weights.h5"
SAVED_MODEL_FILE = "saved_model.pb"
# save_model's forms by how the path ends ("" = a folder: SavedModel).
SAVE_FORMS = {".keras": "keras", WEIGHTS_SUFFIX: "weights", ".h5": "h5", "": "saved_model"}


@dataclass(frozen=True)
class Remedies:
    """How a loading error tells the user to give what the model needs, in the words of
    where the model path came from. Each is a sentence ending without a full stop;
    `custom_objects` is formatted with the module's name (`{module}`)."""

    custom_objects: str
    unsafe: str
    architecture: str
    architecture_name: str  # what the architecture is called in other messages


# A path given on the command line (or to an `ek.*` function): options and their Python arguments.
COMMAND_LINE = Remedies(
    custom_objects="Pass --custom-objects {module} (the Python module that defines it; in Python: "
    "custom_objects=['{module}']), or load the run folder the model was trained in (it records its "
    "custom objects)",
    unsafe="If you trust this file, pass --unsafe (safe_mode=False)",
    architecture="Pass --architecture model.json (written by model.to_json()), a .keras file, or "
    "module:function returning the model (architecture=... in Python)",
    architecture_name="--architecture",
)
# A recipe's `model.type: file`: its keys.
RECIPE = Remedies(
    custom_objects="Add '{module}' (the Python module that defines it) to 'model.custom_objects'",
    unsafe="If you trust this file, set 'model.unsafe: true'",
    architecture="Give 'model.architecture': a model.json (written by model.to_json()), a .keras file, "
    "or module:function returning the model",
    architecture_name="model.architecture",
)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of every file in a folder (a SavedModel) by relative path."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
    return h.hexdigest()


def is_weights_file(path: PathLike) -> bool:
    return str(path).lower().endswith(WEIGHTS_SUFFIX)


def is_saved_model(path: PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / SAVED_MODEL_FILE).exists()


def resolve_model_path(path: PathLike) -> Path:
    """A model file (.keras, .h5, .weights.h5) or a SavedModel folder, checked to exist."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"Expected a model file (.keras, .h5, .weights.h5), a SavedModel folder or a run folder. "
            f"Received: '{path}', which does not exist."
        )
    if path.is_dir():
        if is_saved_model(path):
            return path
        raise InputError(
            f"Expected a run folder (with run.json and model.keras), or a SavedModel folder (with "
            f"{SAVED_MODEL_FILE}). Received: '{path}', a folder with neither. Give the model file itself, or a "
            "folder written by 'edgekeras train' or model.export()."
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise InputError(
            f"Expected a Keras model file ({', '.join(MODEL_SUFFIXES)}, {WEIGHTS_SUFFIX}), a SavedModel "
            f"folder or a run folder. Received: '{path}'."
        )
    return path


def load_model(
    path: PathLike,
    safe_mode: bool = True,
    compile: bool = True,
    architecture: Architecture | None = None,
    custom_objects: Iterable[str] | None = None,
    float32: bool = True,
    recorded_custom_objects: Iterable[str] = (),
    import_paths: Iterable[PathLike] = (),
    recipe_unsafe: bool = False,
    recorded_in: PathLike | None = None,
    remedies: Remedies = COMMAND_LINE,
) -> KerasModel:
    """Loads a model file from disk; returns a `KerasModel`.

    A run folder is opened by `edgekeras.run_folder.RunFolder.load_model`, which passes what
    its `run.json` records (`recorded_custom_objects`, `import_paths`, `recipe_unsafe`).

    Args:
        path: a `.keras`/`.h5` file, a SavedModel folder (inference only, through
            `keras.layers.TFSMLayer`) or a `.weights.h5` file with `architecture`.
        safe_mode: Keras' safe mode; a Lambda layer's code loads only with False (`--unsafe`).
            A run whose recipe set `model.unsafe` (`recipe_unsafe`) still loads in safe mode
            unless the caller passes False: a folder cannot vouch for itself (whoever can write
            its model.keras can write its run.json), so the trust stays the user's, as
            `--unsafe` means for a file. Its error then says the recipe asked for it.
        architecture: for a weights file: a model config mapping, a `.json` file written by
            `model.to_json()`, a `.keras` file, or `module:function` returning the model.
        custom_objects: modules (`module`) or objects (`module:name`) defining custom classes.
        float32: hold a mixed-precision model in its float32 form (what converters need).
        recorded_custom_objects: references a run recorded; one that no longer imports is an
            error only if the model needs it. `recorded_in` names the file for that error.
        import_paths: folders (besides the current one) custom objects are imported from.
        remedies: how errors say to give the settings above (`COMMAND_LINE` or `RECIPE`).
    """
    path = resolve_model_path(path)
    quiet_tensorflow()
    with importable_from(Path.cwd(), *map(Path, import_paths)):
        registered = import_refs(custom_objects or [], "--custom-objects")
        unavailable = []  # a recorded module may be gone; only an error if the model needs it
        for ref in recorded_custom_objects:
            try:
                registered += import_refs([ref], f"'{recorded_in}' custom_objects")
            except InputError as e:
                unavailable.append(str(e))
        log.debug(f"Loading '{path}' (safe_mode={safe_mode}); custom objects: {_names(registered) or 'none'}")
        try:
            if is_saved_model(path):
                model, digest = _load_saved_model(path), sha256_file(path)
            elif is_weights_file(path):
                model, digest = _load_weights(path, architecture, safe_mode, remedies)
            else:
                _check_container(path)
                model, digest = _load_keras(path, safe_mode, compile, remedies, recipe_unsafe), sha256_file(path)
        except InputError as e:
            if unavailable:
                raise InputError(f"{e} {' '.join(unavailable)}") from None
            raise

    model = functional(model)  # a registered subclassed model reloads without symbolic inputs
    precision = mixed_policy(model) or "float32"
    if float32 and precision != "float32":
        model = float32_model(model)
    return KerasModel(model, digest, path, precision)


def _names(objects):
    return ", ".join(f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', o)}" for o in objects)


def _load_keras(path, safe_mode, compile, remedies, recipe_unsafe=False):
    """`keras.models.load_model` with InputErrors; `recipe_unsafe`: the run's recipe set
    `model.unsafe: true` (only said in the error: it does not turn safe mode off)."""
    import warnings

    import keras

    import edgekeras.qat.fake_quant  # noqa: F401  (registers the layer quantization-aware models hold)

    try:
        # A model saved before training has fewer optimizer variables than a built one; an .h5
        # model logs that its metrics are unbuilt. Neither is news to the user.
        with warnings.catch_warnings(), captured_output(), lean_loading(path):
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=safe_mode, compile=compile)
    except (ValueError, TypeError) as e:
        text = str(e)
        if "safe_mode" in text or "Lambda" in text:
            recorded = (
                " Its run.json records that the recipe set 'model.unsafe: true', which "
                "'edgekeras train' honours for its own export, but a run folder cannot vouch "
                "for itself."
                if recipe_unsafe
                else ""
            )
            raise InputError(
                f"'{path}' contains a Lambda layer, whose Python code Keras refuses to load in "
                f"safe mode.{recorded} {remedies.unsafe}."
            ) from None
        missing = missing_object_message(text, path, remedies.custom_objects)
        if missing:
            raise InputError(missing) from None
        raise InputError(f"Could not load a Keras model from '{path}': {_first_line(text)}") from None
    except Exception as e:  # corrupt zip/HDF5, truncated files
        raise InputError(
            f"Could not load a Keras model from '{path}': {type(e).__name__}: {_first_line(str(e))}. "
            "Is the file complete and written by Keras?"
        ) from None


def layers_needing_unsafe(model: keras.Model) -> list[str]:
    """Names of `model`'s layers that Keras saves as Python bytecode (an anonymous `lambda`),
    which reload only with safe_mode off; innermost layers only."""
    import json

    flagged = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        try:
            config = layer.get_config()
        except Exception:  # a layer without a config cannot be saved either; not ours to report
            continue
        if "__lambda__" in json.dumps(config, default=str):  # Keras' tag for a lambda's bytecode
            flagged.append(layer)
    inner = [
        layer for layer in flagged if not any(child in flagged for child in layer._flatten_layers(include_self=False))
    ]
    return [layer.name for layer in inner]


def _load_weights(path, architecture, safe_mode, remedies):
    """A `.weights.h5` file loaded into the model `architecture` describes."""
    if architecture is None:
        raise InputError(
            f"Expected an architecture for the weights-only file '{path}'. Received: none. {remedies.architecture}."
        )
    import warnings

    model = build_architecture(architecture, safe_mode, name=remedies.architecture_name)
    try:
        with warnings.catch_warnings(), lean_loading(path):  # optimizer variables saved with the weights
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(path))
    except Exception as e:  # wrong layer count/shapes, corrupt HDF5
        raise InputError(
            f"Could not load the weights '{path}' into the given architecture: {type(e).__name__}: "
            f"{_first_line(str(e))}. Are they from the same model?"
        ) from None
    return model, hashlib.sha256((sha256_file(path) + sha256_model(model)).encode()).hexdigest()


def build_architecture(
    architecture: Architecture, safe_mode: bool = True, base_dir: PathLike | None = None, name: str = "--architecture"
) -> keras.Model:
    """A fresh model from a config mapping, a `.json`/`.keras` file or `module:function`;
    `name` is what errors call the architecture."""
    if isinstance(architecture, dict):
        return from_config(architecture, "the architecture")
    text = str(architecture)
    if REF.match(text) and not Path(text).exists():
        section = {k: f.default for k, f in python_model.FIELDS.items()}
        section["function"] = text
        return python_model.build(section, base_dir)
    if text.lower().endswith((".keras", ".h5")) and not is_weights_file(text):
        return load_model(text, safe_mode=safe_mode, compile=False, float32=False).model

    return from_json_file(text, base_dir, name)


def _load_saved_model(path):
    """A SavedModel folder as an inference-only Keras model (a TFSMLayer on named inputs)."""
    import keras
    import tensorflow as tf

    try:
        with captured_output():
            loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise InputError(f"Could not load the SavedModel '{path}': {type(e).__name__}: {_first_line(str(e))}") from None
    endpoint = "serve" if hasattr(loaded, "serve") else "serving_default"
    if endpoint == "serve":
        args, kwargs = loaded.serve.concrete_functions[0].structured_input_signature
        spec = args[0] if len(args) == 1 and not kwargs else None
    else:
        if endpoint not in loaded.signatures:
            raise InputError(f"Expected a SavedModel with a 'serve' or 'serving_default' endpoint. Received: '{path}'.")
        spec = loaded.signatures[endpoint].structured_input_signature[1]
    if spec is None:
        raise InputError(f"Expected a SavedModel whose endpoint takes one argument. Received: '{path}'.")

    def keras_input(s, name=None):
        return keras.Input(shape=tuple(s.shape[1:]), dtype=s.dtype.name, name=name or s.name)

    inputs: Any  # the structure the endpoint takes: {name: input}, [input, ...] or one input
    if isinstance(spec, dict):
        inputs = {k: keras_input(s, k) for k, s in spec.items()}
    elif isinstance(spec, (list, tuple)):
        inputs = [keras_input(s) for s in spec]
    else:
        inputs = keras_input(spec)
    layer = _signature_layer(str(path), endpoint)
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        outputs = {k: keras.layers.Identity(name=k)(v) for k, v in outputs.items()}
    elif isinstance(outputs, (list, tuple)):
        outputs = [keras.layers.Identity(name=f"output_{i}")(v) for i, v in enumerate(outputs)]
    return keras.Model(inputs, outputs, name=Path(path).name or "saved_model")


def _signature_layer(path, endpoint):
    """A TFSMLayer that can also call signature endpoints (which take keyword arguments only)."""
    import keras

    class SignatureLayer(keras.layers.TFSMLayer):
        def call(self, inputs, training=False, **kwargs):
            if self.call_endpoint in self._reloaded_obj.signatures and isinstance(inputs, dict):
                return self.call_endpoint_fn(**inputs)
            return super().call(inputs, training=training, **kwargs)

    return SignatureLayer(path, call_endpoint=endpoint, trainable=False, name="saved_model")


def save_model(model: keras.Model, path: PathLike, force: bool = False) -> Path:
    """Saves `model` atomically in the form `path` names: `.keras` (everything), `.h5`
    (legacy HDF5), `.weights.h5` (weights only; reload with an architecture) or a folder
    (a TensorFlow SavedModel with a named `serve` endpoint, for inference). Returns the path."""
    path = Path(path)
    form = save_form(path)
    suffix = next(s for s, f in SAVE_FORMS.items() if f == form) or ".saved_model"
    with atomic_path(path, force=force, suffix=suffix) as tmp:
        if form == "weights":
            model.save_weights(str(tmp))
        elif form == "saved_model":
            _export_saved_model(model, tmp)
        else:
            with captured_output():  # .h5: Keras logs that the format is legacy
                model.save(str(tmp))
    return path


def save_form(path: PathLike) -> str:
    name = str(path).lower()
    for suffix, form in SAVE_FORMS.items():
        if suffix and name.endswith(suffix):
            return form
    if Path(path).suffix:
        raise InputError(
            f"Expected a model path ending in .keras, .h5 or {WEIGHTS_SUFFIX}, or a folder name (SavedModel). "
            f"Received: '{path}'."
        )
    return "saved_model"


def _export_saved_model(model, path):
    """ExportArchive with Keras input names in and Keras output names out (see export.graph)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serving_function(model))
    with captured_output():
        archive.write_out(str(path), verbose=False)


def _check_container(path):
    """A cheap look at the file's container before Keras reads it: .keras is a zip, .h5 HDF5."""
    import zipfile

    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise InputError(
            f"'{path}' is not a .keras archive (a zip file): it is truncated, corrupt, or not "
            "written by Keras. Re-save the model with model.save('model.keras')."
        )
    if path.suffix in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            signature = f.read(8)
        if signature != b"\x89HDF\r\n\x1a\n":
            raise InputError(
                f"'{path}' is not an HDF5 file: it is truncated, corrupt, or not written by Keras. "
                "Re-save the model with model.save('model.h5') or use .keras."
            )


def from_live_model(model: keras.Model) -> KerasModel:
    """A `KerasModel` for a live `keras.Model`: a subclassed model is wrapped in a functional
    model on named inputs shaped like the batch it was built on (`models.subclassed.functional`;
    one never called is an `InputError`), a mixed-precision one held in its float32 form."""
    wrapped = functional(model)  # a subclassed model: on named inputs, same weights
    policy = mixed_policy(wrapped)  # converters lower float32 compute only
    if policy:
        return KerasModel(float32_model(wrapped), sha256_model(model), precision=policy)
    return KerasModel(wrapped, sha256_model(model))


def _first_line(text):
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"
