"""Loading Keras models from disk with clear errors, and describing their signatures.

`safe_mode` stays on unless the caller asks: a model whose Lambda layers carry code is
refused with an error that says how to allow it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgekeras.errors import InputError
from edgekeras.signature import TensorSpec

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class KerasModel:
    """A Keras model with the facts artifacts record about it."""

    model: object
    sha256: str
    path: Path | None = None

    @property
    def inputs(self):
        return input_specs(self.model)

    @property
    def outputs(self):
        return output_specs(self.model)


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
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


def resolve_model_path(path):
    """A run folder resolves to its `model.keras`; anything else must be a model file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Expected a model file (.keras, .h5) or a run folder. Received: '{path}', which does not exist.")
    if path.is_dir():
        candidate = path / "model.keras"
        if candidate.exists():
            return candidate
        raise InputError(
            f"Expected a run folder containing model.keras. Received: '{path}', a folder "
            "without one. Give the .keras/.h5 file itself, or a folder written by 'edgekeras train'."
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise InputError(
            f"Expected a Keras model file ({', '.join(MODEL_SUFFIXES)}) or a run folder. Received: '{path}'."
        )
    return path


def load_model(path, safe_mode=True, compile=True):
    """Loads a `.keras`/`.h5` model or a run folder's model; returns a `KerasModel`."""
    path = resolve_model_path(path)
    _check_container(path)
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    import warnings

    try:
        with warnings.catch_warnings():
            # A model saved before training has fewer optimizer variables than a built one.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = keras.models.load_model(path, safe_mode=safe_mode, compile=compile)
    except ValueError as e:
        text = str(e)
        if "safe_mode" in text or "Lambda" in text:
            raise InputError(
                f"'{path}' contains a Lambda layer, whose Python code Keras refuses to load in "
                "safe mode. If you trust this file, pass --unsafe (safe_mode=False)."
            ) from None
        raise InputError(f"Could not load a Keras model from '{path}': {_first_line(text)}") from None
    except Exception as e:  # corrupt zip/HDF5, truncated files, missing custom objects
        raise InputError(
            f"Could not load a Keras model from '{path}': {type(e).__name__}: {_first_line(str(e))}. "
            "Is the file complete and written by Keras?"
        ) from None
    return KerasModel(model, sha256_file(path), path)


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


def as_keras_model(model_or_path, safe_mode=True):
    """Accepts a path, a `KerasModel`, or a live `keras.Model`."""
    if isinstance(model_or_path, KerasModel):
        return model_or_path
    if isinstance(model_or_path, (str, Path)):
        return load_model(model_or_path, safe_mode=safe_mode)
    if hasattr(model_or_path, "model") and hasattr(model_or_path, "run_dir"):  # a training Run
        return as_keras_model(model_or_path.model)
    if hasattr(model_or_path, "predict") and hasattr(model_or_path, "get_weights"):
        return KerasModel(model_or_path, sha256_model(model_or_path))
    raise InputError(
        f"Expected a keras.Model, a model path or a training run. Received: {type(model_or_path).__name__}."
    )


def input_specs(model):
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
        names = [t._keras_history[0].name if hasattr(t, "_keras_history") else f"output_{i}"
                 for i, t in enumerate(model.outputs)]
    return list(names)


def output_specs(model):
    return [TensorSpec(name, (None, *t.shape[1:]), "float32")
            for name, t in zip(output_names(model), _flat_outputs(model, model.outputs))]


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
