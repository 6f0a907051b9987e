"""Loading Keras models from disk with clear errors, and describing their signatures.

`safe_mode` stays on unless the caller asks: a model whose Lambda layers carry code is
refused with an error that says how to allow it. A run folder's `run.json` never turns it
off by itself (see `load_model`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from edgekeras.errors import InputError
from edgekeras.signature import TensorSpec

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


@dataclass
class KerasModel:
    """A Keras model with the facts artifacts record about it.

    `precision` is the dtype policy the model was trained under: a mixed-precision model is
    held in its float32 form (same weights), which is what converters can lower.
    """

    model: object
    sha256: str
    path: Path | None = None
    precision: str = "float32"

    @property
    def inputs(self):
        return input_specs(self.model)

    @property
    def outputs(self):
        return output_specs(self.model)


def sha256_file(path, chunk=1 << 20):
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


def sha256_model(model):
    """A content hash of an in-memory model: architecture plus every weight."""
    import json

    h = hashlib.sha256()
    try:
        h.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    except Exception:  # subclassed models may not serialize their config
        h.update(type(model).__name__.encode())
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def is_weights_file(path):
    return str(path).lower().endswith(WEIGHTS_SUFFIX)


def is_saved_model(path):
    return Path(path).is_dir() and (Path(path) / SAVED_MODEL_FILE).exists()


def resolve_model_path(path):
    """A run folder resolves to its `model.keras`; a SavedModel folder and model files
    (.keras, .h5, .weights.h5) stand for themselves."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"Expected a model file (.keras, .h5, .weights.h5), a SavedModel folder or a run folder. "
            f"Received: '{path}', which does not exist."
        )
    if path.is_dir():
        if is_saved_model(path):
            return path
        candidate = path / "model.keras"
        if candidate.exists():
            return candidate
        raise InputError(
            f"Expected a run folder containing model.keras, or a SavedModel folder (with {SAVED_MODEL_FILE}). "
            f"Received: '{path}', a folder with neither. Give the model file itself, or a folder "
            "written by 'edgekeras train' or model.export()."
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise InputError(
            f"Expected a Keras model file ({', '.join(MODEL_SUFFIXES)}, {WEIGHTS_SUFFIX}), a SavedModel "
            f"folder or a run folder. Received: '{path}'."
        )
    return path


def load_model(
    path, safe_mode=True, compile=True, architecture=None, custom_objects=None, float32=True, remedies=COMMAND_LINE
):
    """Loads a model from disk; returns a `KerasModel`.

    Args:
        path: a `.keras`/`.h5` file, a SavedModel folder (inference only, through
            `keras.layers.TFSMLayer`), a `.weights.h5` file with `architecture`, or a run
            folder (its `model.keras`, with the custom objects its `run.json` records).
        safe_mode: Keras' safe mode; a Lambda layer's code loads only with False (`--unsafe`).
            A run folder whose `run.json` records `unsafe: true` (its recipe set
            `model.unsafe`) loads in safe mode too unless the caller passes False: a folder
            cannot vouch for itself (whoever can write its model.keras can write its run.json),
            so the trust stays the user's, as `--unsafe` means for a file. Its error then says
            the recipe asked for it. `edgekeras train` exports its own run with the recipe's
            setting (training._export).
        architecture: for a weights file: a model config mapping, a `.json` file written by
            `model.to_json()`, a `.keras` file, or `module:function` returning the model.
        custom_objects: modules (`module`) or objects (`module:name`) defining custom classes.
        float32: hold a mixed-precision model in its float32 form (what converters need).
        remedies: how errors say to give the settings above (`COMMAND_LINE` or `RECIPE`).
    """
    from edgekeras.models.custom_objects import import_refs, importable_from
    from edgekeras.quiet import quiet_tensorflow

    given = Path(path)
    path = resolve_model_path(given)
    quiet_tensorflow()
    run_folder = given if given.is_dir() and not is_saved_model(given) else None
    folders, recorded, state = [Path.cwd()], [], {}
    if run_folder is not None:
        state = _run_state(run_folder)
        folders += [Path(p) for p in state.get("import_paths", [])]
        recorded = list(state.get("custom_objects", []))
    with importable_from(*folders):
        registered = import_refs(custom_objects or [], "--custom-objects")
        unavailable = []  # a recorded module may be gone; only an error if the model needs it
        for ref in recorded:
            try:
                registered += import_refs([ref], f"'{run_folder / 'run.json'}' custom_objects")
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
                recipe_unsafe = bool(state.get("unsafe"))
                model, digest = _load_keras(path, safe_mode, compile, remedies, recipe_unsafe), sha256_file(path)
        except InputError as e:
            if unavailable:
                raise InputError(f"{e} {' '.join(unavailable)}") from None
            raise
    from edgekeras.models.precision import float32_model, mixed_policy
    from edgekeras.models.subclassed import functional

    model = functional(model)  # a registered subclassed model reloads without symbolic inputs
    precision = mixed_policy(model) or "float32"
    if float32 and precision != "float32":
        model = float32_model(model)
    return KerasModel(model, digest, path, precision)


def _names(objects):
    return ", ".join(f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', o)}" for o in objects)


def _run_state(folder):
    import json

    state = Path(folder) / "run.json"
    try:
        return json.loads(state.read_text()) if state.exists() else {}
    except json.JSONDecodeError as e:
        raise InputError(f"Expected JSON in '{state}'. Received: a corrupt file ({e}).") from None


def _load_keras(path, safe_mode, compile, remedies, recipe_unsafe=False):
    """`keras.models.load_model` with InputErrors; `recipe_unsafe`: the run's recipe set
    `model.unsafe: true` (only said in the error: it does not turn safe mode off)."""
    import warnings

    import keras

    import edgekeras.qat.fake_quant  # noqa: F401  (registers the layer quantization-aware models hold)
    from edgekeras.models.custom_objects import missing_object_message
    from edgekeras.quiet import captured_output

    try:
        # A model saved before training has fewer optimizer variables than a built one; an .h5
        # model logs that its metrics are unbuilt. Neither is news to the user.
        with warnings.catch_warnings(), captured_output():
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


def safe_mode_scope(safe_mode):
    """A context in which Keras deserializes with `safe_mode` (False: lambdas' bytecode loads).

    Building a recipe's model deserializes configs deep inside Keras (Model.from_config,
    layers.deserialize), which take no safe_mode argument and read Keras' scope instead.
    """
    import contextlib

    if safe_mode:
        return contextlib.nullcontext()  # Keras' own default: safe
    from keras.src.saving.serialization_lib import SafeModeScope  # no public scoped form

    return SafeModeScope(False)


def layers_needing_unsafe(model):
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
        with warnings.catch_warnings():  # optimizer variables saved with the weights
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(path))
    except Exception as e:  # wrong layer count/shapes, corrupt HDF5
        raise InputError(
            f"Could not load the weights '{path}' into the given architecture: {type(e).__name__}: "
            f"{_first_line(str(e))}. Are they from the same model?"
        ) from None
    return model, hashlib.sha256((sha256_file(path) + sha256_model(model)).encode()).hexdigest()


def build_architecture(architecture, safe_mode=True, base_dir=None, name="--architecture"):
    """A fresh model from a config mapping, a `.json`/`.keras` file or `module:function`;
    `name` is what errors call the architecture."""
    from edgekeras.models.custom_objects import REF

    if isinstance(architecture, dict):
        from edgekeras.models.functional import from_config

        return from_config(architecture, "the architecture")
    text = str(architecture)
    if REF.match(text) and not Path(text).exists():
        from edgekeras.models.python import FIELDS, build

        section = {k: f.default for k, f in FIELDS.items()}
        section["function"] = text
        return build(section, base_dir)
    if text.lower().endswith((".keras", ".h5")) and not is_weights_file(text):
        return load_model(text, safe_mode=safe_mode, compile=False, float32=False).model
    from edgekeras.models.functional import from_json_file

    return from_json_file(text, base_dir, name)


def _load_saved_model(path):
    """A SavedModel folder as an inference-only Keras model (a TFSMLayer on named inputs)."""
    import keras
    import tensorflow as tf

    from edgekeras.quiet import captured_output

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


def save_model(model, path, force=False):
    """Saves `model` atomically in the form `path` names: `.keras` (everything), `.h5`
    (legacy HDF5), `.weights.h5` (weights only; reload with an architecture) or a folder
    (a TensorFlow SavedModel with a named `serve` endpoint, for inference). Returns the path."""
    from edgekeras.atomic import atomic_path
    from edgekeras.quiet import captured_output

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


def save_form(path):
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

    from edgekeras.export.graph import serving_function
    from edgekeras.quiet import captured_output

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


def as_keras_model(model_or_path, safe_mode=True, custom_objects=None, architecture=None):
    """Accepts a path (loaded by `load_model` with the other arguments), a `KerasModel`,
    or a live `keras.Model`.

    A subclassed model (no symbolic inputs) is wrapped in a functional model on named
    inputs shaped like the batch it was built on (`models.subclassed.functional`); one that
    was never called is an `InputError`.
    """
    if isinstance(model_or_path, KerasModel):
        return model_or_path
    if isinstance(model_or_path, (str, Path)):
        return load_model(model_or_path, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture)
    if hasattr(model_or_path, "model") and hasattr(model_or_path, "run_dir"):  # a training Run
        return as_keras_model(model_or_path.model)
    if hasattr(model_or_path, "predict") and hasattr(model_or_path, "get_weights"):
        from edgekeras.models.precision import float32_model, mixed_policy
        from edgekeras.models.subclassed import functional

        model = functional(model_or_path)  # a subclassed model: on named inputs, same weights
        policy = mixed_policy(model)  # converters lower float32 compute only
        if policy:
            return KerasModel(float32_model(model), sha256_model(model_or_path), precision=policy)
        return KerasModel(model, sha256_model(model_or_path))
    raise InputError(
        f"Expected a keras.Model, a model path or a training run. Received: {type(model_or_path).__name__}."
    )


def input_specs(model):
    """`TensorSpec`s (name, shape with a free batch dim, dtype) of a model's symbolic inputs."""
    specs = []
    for t in model.inputs:
        name = t.name
        specs.append(TensorSpec(name, (None, *t.shape[1:]), str(t.dtype).replace("tf.", "")))
    return specs


def output_names(model):
    """Keras output names (the output layers' names); Sequential keeps them on its graph."""
    names = getattr(model, "output_names", None)
    if names is None and getattr(model, "_functional", None) is not None:
        names = model._functional.output_names
    if names is None:
        names = [
            t._keras_history[0].name if hasattr(t, "_keras_history") else f"output_{i}"
            for i, t in enumerate(model.outputs)
        ]
    return list(names)


def output_specs(model):
    return [
        TensorSpec(name, (None, *t.shape[1:]), "float32")
        for name, t in zip(output_names(model), _flat_outputs(model, model.outputs))
    ]


def _flat_outputs(model, outputs):
    if isinstance(outputs, dict):
        return [outputs[n] for n in output_names(model)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def outputs_by_name(model, outputs):
    """{output name: tensor} from whatever structure `model(...)` returned."""
    if isinstance(outputs, dict):
        return dict(outputs)
    return dict(zip(output_names(model), _flat_outputs(model, outputs)))


def predict(model, feeds, batch_size=256):
    """Runs the Keras model on {input name: array}; returns {output name: numpy array}."""
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    y = model.predict(x, batch_size=batch_size, verbose=0)
    import numpy as np

    return {k: np.asarray(v) for k, v in outputs_by_name(model, y).items()}


def _first_line(text):
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"
