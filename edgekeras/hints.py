"""Type aliases the public API's annotations share, for values that are not edgekeras classes.

Import them under `if TYPE_CHECKING:`: they are strings the type checker reads, so importing
this module loads nothing (numpy, Keras and TensorFlow are named for the checker alone). Keras
and TensorFlow ship no type information: mypy reads their classes as `Any`, and the names here
document what is meant. Aliases that name edgekeras' own classes live beside those classes, so
this module depends on no other edgekeras module: `data.coerce.DataLike`,
`sources.ModelLike`, `training.TrainingData`, `recipe.RecipeSource`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import numpy as np

# A file or folder path: anything `pathlib.Path(...)` takes.
PathLike: TypeAlias = "str | os.PathLike[str]"

# Arrays by input or output name, as `predict` returns them and a `.npz` file holds them.
Arrays: TypeAlias = "dict[str, np.ndarray]"

# A JSON object (a manifest section, a `to_dict()`).
JSONDict: TypeAlias = dict[str, Any]

# A model's architecture for a weights-only file (`model_io.build_architecture`): a config
# dict, a `.json` (`model.to_json()`) or `.keras` path, or "module:function".
Architecture: TypeAlias = "str | Path | dict[str, Any]"

__all__ = [
    "Architecture",
    "Arrays",
    "JSONDict",
    "PathLike",
]
