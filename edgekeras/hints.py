"""Type aliases the public API's annotations share.

Import them under `if TYPE_CHECKING:`; they cost nothing at run time (numpy is named only
for the type checker). Aliases that name Keras, TensorFlow or edgekeras' own classes live
beside those classes (`data.coerce.DataLike`, `sources.ModelLike`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import os

    import numpy as np

# A file or folder path: anything `pathlib.Path(...)` takes.
PathLike: TypeAlias = "str | os.PathLike[str]"

# Arrays by input or output name, as `predict` returns them and a `.npz` file holds them.
Arrays: TypeAlias = "dict[str, np.ndarray]"

# A JSON object (a manifest section, a `to_dict()`).
JSONDict: TypeAlias = dict[str, Any]

__all__ = ["Arrays", "JSONDict", "PathLike"]
