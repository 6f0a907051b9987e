"""`evaluate` (a Keras model's compiled loss and metrics on labelled data) and `predict`
(a Keras model or a `.tflite`/`.onnx` artifact on inputs, outputs by name).

Predicting with an artifact goes through `edgekeras.runtimes`, so it needs only numpy and
the artifact's runtime: TensorFlow is not imported.

Data: a `.npz` path (arrays named after the model's inputs, a single-input model also takes
`x`; labels in `y`, or `y_OUTPUT` per output of a multi-output model: see `data.labels`),
{name: array}, an array, (x, y), a `Split`, or a `tf.data.Dataset`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekeras.data.coerce import as_split
from edgekeras.data.labels import check_labels
from edgekeras.errors import InputError
from edgekeras.export import format_of_path
from edgekeras.head_metrics import metric_value, output_structure
from edgekeras.model_io import predict as keras_predict
from edgekeras.run_folder import RunFolder
from edgekeras.runtimes import open_session
from edgekeras.signature import TensorSpec
from edgekeras.sources import as_keras_model

if TYPE_CHECKING:
    from edgekeras.data.bundle import Split
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Architecture, Arrays, PathLike
    from edgekeras.keras_model import KerasModel
    from edgekeras.signature import TensorSpec
    from edgekeras.sources import ModelLike

BATCH = 256
ARTIFACT_BATCH = 64


def _load(
    model: ModelLike, safe_mode: bool, custom_objects: Iterable[str] | None, architecture: Architecture | None
) -> KerasModel:
    """A `KerasModel` from a path, a run folder, a live model, a `KerasModel` or a training Run."""
    return as_keras_model(model, safe_mode=safe_mode, custom_objects=custom_objects or (), architecture=architecture)


def _run_folder_test_split(folder: PathLike) -> Split | None:
    """The test split of the data a run folder was trained on, or None."""
    if not RunFolder.is_run_folder(folder):
        return None
    run = RunFolder(Path(folder))
    return run.load_data().test if run.has_recipe_data else None


def evaluate(
    model: ModelLike,
    data: DataLike | None = None,
    batch_size: int = BATCH,
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = None,
    architecture: Architecture | None = None,
) -> dict[str, float | list[float]]:
    """The model's compiled loss and metrics on labelled `data`: {name: value}.

    `model` is a `.keras`/`.h5` file, a run folder (whose test split is the default data),
    a SavedModel/weights file (only if compiled; they are not), or a `keras.Model`.
    """
    if data is None and isinstance(model, (str, Path)) and Path(model).is_dir():
        data = _run_folder_test_split(model)
    if data is None:
        raise InputError(
            "Expected labelled data to evaluate on. Received: none. Pass --data DATA.npz (arrays named "
            "after the model's inputs, labels in 'y' or 'y_<output>'); a run folder uses its test split by default."
        )
    keras_model = _load(model, safe_mode, custom_objects, architecture)
    m = keras_model.model
    if not getattr(m, "compiled", False) or getattr(m, "loss", None) is None:
        raise InputError(
            f"Expected a model saved with its loss and metrics (compiled). Received: "
            f"'{keras_model.path or type(m).__name__}', which has none. Evaluate the .keras file or run "
            "folder 'edgekeras train' wrote (SavedModels and weights files carry no loss)."
        )
    where = f"data ('{data}')" if isinstance(data, (str, Path)) else "data"
    labelled = check_labels(keras_model, data, what=where)
    if not labelled.labels:
        raise InputError(
            f"Expected labels in the {where}: 'y' for a single-output model, 'y_<output>' per output "
            f"({', '.join('y_' + o for o in labelled.unlabelled)}). Received: inputs only."
        )
    if labelled.unlabelled:  # the total loss needs every output's labels
        raise InputError(
            f"Expected labels for every output to evaluate the model's loss. Received: none for "
            f"{', '.join(labelled.unlabelled)} (add {', '.join('y_' + o for o in labelled.unlabelled)}). "
            "`edgekeras validate` judges the labelled outputs alone."
        )
    feeds = labelled.split.feeds(keras_model.inputs, what=where)
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    y = output_structure(m, labelled.labels)
    try:
        result = m.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    except (ValueError, TypeError) as e:
        shapes = {k: np.shape(v) for k, v in labelled.labels.items()}
        raise InputError(
            f"Expected labels that fit the model's loss and metrics. Received: labels of shape {shapes}, "
            f"which Keras rejected: {(str(e).strip().splitlines() or [type(e).__name__])[0]}"
        ) from None
    return {k: metric_value(v) for k, v in result.items()}


def is_artifact(path: PathLike) -> bool:
    """True for a path an exporter writes (.tflite, .onnx)."""
    try:
        format_of_path(path)
    except InputError:
        return False
    return True


def predict(
    model: ModelLike,
    inputs: DataLike,
    batch_size: int | None = None,
    runtime: str | None = None,
    threads: int | None = None,
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = None,
    architecture: Architecture | None = None,
) -> Arrays:
    """Runs `model` on `inputs`; returns {output name: array}.

    `model` is a Keras model (file, run folder, `keras.Model`) or a `.tflite`/`.onnx`
    artifact, which runs in its runtime (`runtime`, `threads`) without TensorFlow.
    """
    where = f"inputs ('{inputs}')" if isinstance(inputs, (str, Path)) else "inputs"
    split = as_split(inputs, where)
    if split is None:
        raise InputError("Expected inputs to predict on. Received: none. Pass --inputs DATA.npz.")
    if isinstance(model, (str, Path)) and is_artifact(model):
        return _predict_artifact(model, split, where, batch_size or ARTIFACT_BATCH, runtime, threads)

    keras_model = _load(model, safe_mode, custom_objects, architecture)
    return keras_predict(keras_model.model, split.feeds(keras_model.inputs, what=where), batch_size or BATCH)


def _predict_artifact(
    path: PathLike, split: Split, where: str, batch_size: int, runtime: str | None, threads: int | None
) -> Arrays:
    if not Path(path).exists():
        raise InputError(f"Expected an artifact file. Received: '{path}', which does not exist.")
    session = open_session(path, runtime=runtime, threads=threads)
    fixed = session.inputs[0].shape[0] if session.inputs and session.inputs[0].shape else None
    batch_size = fixed or batch_size  # an artifact exported with a fixed batch (e.g. recurrent: 1)
    feeds = _feeds_any_batch(split, session.inputs, where)
    n = len(next(iter(feeds.values())))
    parts = [session.run({k: v[i : i + batch_size] for k, v in feeds.items()}) for i in range(0, n, batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _feeds_any_batch(split: Split, specs: Sequence[TensorSpec], where: str) -> Arrays:
    """Feeds checked against `specs` with the batch dimension left free."""
    free = [TensorSpec(s.name, (None, *s.shape[1:]), s.dtype) for s in specs]
    return split.feeds(free, what=where)
