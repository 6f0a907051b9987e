"""What the Python API accepts as "a model", turned into one `KerasModel` at the boundary.

A model is a `keras.Model`, a `KerasModel`, a training `Run`, a model file (.keras, .h5,
.weights.h5 with an architecture, a SavedModel folder) or a run folder. `open_model` returns
it with where it came from, so a run folder's (or a `Run`'s) data can calibrate and validate
what is converted from it: the same for `ek.convert`, `ek.validate`, `ek.evaluate` and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from edgekeras.errors import InputError
from edgekeras.model_io import KerasModel, from_live_model
from edgekeras.model_io import load_model as load_file
from edgekeras.run_folder import RunFolder

if TYPE_CHECKING:
    import keras

    from edgekeras.data.bundle import DataBundle
    from edgekeras.hints import Architecture, PathLike


class TrainedRun(Protocol):
    """What `open_model` reads of a training `Run` (`edgekeras.training.Run`), named by its
    shape because training imports this module."""

    @property
    def model(self) -> keras.Model: ...
    @property
    def run_dir(self) -> RunFolder: ...
    @property
    def data(self) -> DataBundle: ...


# A model as the API takes it (`open_model`): a `keras.Model`, a model file or run folder
# path, a training `Run`, a `KerasModel` or a `ModelSource`.
ModelLike: TypeAlias = "keras.Model | str | Path | TrainedRun | KerasModel | ModelSource"


@dataclass
class ModelSource:
    """A loaded model and the run it belongs to, if any."""

    keras_model: KerasModel
    run: RunFolder | None = None
    _data: Any = None  # a training Run's data, already in memory

    def data(self) -> DataBundle | None:
        """The data the model was trained on (`DataBundle`), or None when unknown."""
        if self._data is not None:
            return self._data
        if self.run is not None and self.run.has_recipe_data:
            return self.run.load_data()
        return None

    @property
    def name(self) -> str | None:
        """The run's recipe name, else None (the model's own name is used then)."""
        if self.run is not None and self.run.recipe_path.exists():
            return self.run.load_recipe().name
        return None


def open_model(
    model: ModelLike,
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = (),
    architecture: Architecture | None = None,
) -> ModelSource:
    """Any accepted model form as a `ModelSource` (see the module docstring)."""
    if isinstance(model, ModelSource):
        return model
    if isinstance(model, KerasModel):
        return ModelSource(model)
    if isinstance(model, (str, Path)):
        path = Path(model)
        run = RunFolder(path) if RunFolder.is_run_folder(path) else None
        keras_model = load_model(path, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture)
        return ModelSource(keras_model, run)
    if hasattr(model, "model") and hasattr(model, "run_dir"):  # a training Run
        return ModelSource(from_live_model(model.model), RunFolder(model.run_dir.root), model.data)
    if hasattr(model, "predict") and hasattr(model, "get_weights"):
        return ModelSource(from_live_model(model))
    raise InputError(f"Expected a keras.Model, a model path or a training run. Received: {type(model).__name__}.")


def load_model(
    path: PathLike,
    safe_mode: bool = True,
    compile: bool = True,
    architecture: Architecture | None = None,
    custom_objects: Iterable[str] | None = None,
    float32: bool = True,
) -> KerasModel:
    """Loads a model file, SavedModel folder or run folder (`ek.load_model`); see
    `model_io.load_model` for the arguments. A run folder adds the custom objects it recorded."""
    if RunFolder.is_run_folder(path):
        return RunFolder(Path(path)).load_model(
            safe_mode=safe_mode, custom_objects=custom_objects or (), compile=compile, float32=float32
        )
    return load_file(
        path,
        safe_mode=safe_mode,
        compile=compile,
        architecture=architecture,
        custom_objects=custom_objects,
        float32=float32,
    )


def as_keras_model(
    model: ModelLike,
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = (),
    architecture: Architecture | None = None,
) -> KerasModel:
    """Any accepted model form as a `KerasModel`."""
    return open_model(model, safe_mode, custom_objects, architecture).keras_model
