"""Type aliases the public API's annotations share.

Import them under `if TYPE_CHECKING:`: they are strings the type checker reads, so importing
this module loads nothing (numpy, Keras, TensorFlow and edgekeras' own classes are named for
the checker alone). Keras and TensorFlow ship no type information: mypy reads their classes
as `Any`, and the names here document what is meant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf

    from edgekeras.data.bundle import DataBundle, Split
    from edgekeras.model_io import KerasModel
    from edgekeras.recipe import Recipe
    from edgekeras.sources import ModelSource
    from edgekeras.training import Run

# A file or folder path: anything `pathlib.Path(...)` takes.
PathLike: TypeAlias = "str | os.PathLike[str]"

# Arrays by input or output name, as `predict` returns them and a `.npz` file holds them.
Arrays: TypeAlias = "dict[str, np.ndarray]"

# A JSON object (a manifest section, a `to_dict()`).
JSONDict: TypeAlias = dict[str, Any]

# Data as the API takes it (`data.coerce.as_split`): a `.npz` path, {name: array} (labels
# under 'y' or 'y_<output>'), an array, (x, y), a `Split` or a `tf.data.Dataset`.
DataLike: TypeAlias = "str | Path | dict[str, Any] | np.ndarray | tuple[Any, Any] | Split | tf.data.Dataset"

# A model as the API takes it (`sources.open_model`): a `keras.Model`, a model file or run
# folder path, a training `Run`, a `KerasModel` or a `ModelSource`.
ModelLike: TypeAlias = "keras.Model | str | Path | Run | KerasModel | ModelSource"

# A model's architecture for a weights-only file (`model_io.build_architecture`): a config
# dict, a `.json` (`model.to_json()`) or `.keras` path, or "module:function".
Architecture: TypeAlias = "str | Path | dict[str, Any]"

# Training data for a model passed in memory (`train`): a `DataBundle` (splits), or data to
# split: (x, y), (x, y, sample_weight), {..., 'y': ..., 'sample_weight': ...}.
TrainingData: TypeAlias = "DataBundle | DataLike | tuple[Any, ...]"

# A recipe (`recipe.load_recipe`): a YAML path, a shipped recipe name, a dict or a `Recipe`.
RecipeSource: TypeAlias = "str | Path | dict[str, Any] | Recipe"

__all__ = [
    "Architecture",
    "Arrays",
    "DataLike",
    "JSONDict",
    "ModelLike",
    "PathLike",
    "RecipeSource",
    "TrainingData",
]
