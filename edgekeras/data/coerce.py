"""Turns whatever the Python API is given as data into a `Split`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.data.files import load_data_file
from edgekeras.errors import InputError

if TYPE_CHECKING:
    import tensorflow as tf

# Data as the API takes it (`as_split`): a `.npz` path, {name: array} (labels under 'y' or
# 'y_<output>'), an array, (x, y), a `Split` or a `tf.data.Dataset`.
DataLike: TypeAlias = "str | Path | dict[str, Any] | np.ndarray | tuple[Any, Any] | Split | tf.data.Dataset"


@overload
def as_split(value: None, what: str = ...) -> None: ...
@overload
def as_split(value: DataLike, what: str = ...) -> Split: ...
def as_split(value: DataLike | None, what: str = "data") -> Split | None:
    """Accepts a Split, a .npz path, {name: array} (with optional 'y'), an array, an (x, y)
    tuple, or a `tf.data.Dataset` of x or (x, y) batches.

    Labels stay as given: an array, {output name: array} or a list per output (`y_<output>`
    arrays among the inputs are sorted out by `data.labels`, which knows the model's outputs).
    """
    if value is None or isinstance(value, Split):
        return value
    if isinstance(value, (str, Path)):
        return load_data_file(value)
    if isinstance(value, dict):
        arrays = {k: np.asarray(v) for k, v in value.items() if k != "y"}
        return Split(arrays, _labels(value.get("y")))
    if isinstance(value, np.ndarray):
        return Split(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Split(value[0], _labels(value[1]))
    if type(value).__name__.endswith("Dataset") and hasattr(value, "as_numpy_iterator"):
        return _from_dataset(value)
    raise InputError(
        f"Expected {what} as a .npz path, {{input name: array}}, an array, (x, y) or a "
        f"tf.data.Dataset. Received: {type(value).__name__}."
    )


def _labels(y):
    """Labels as arrays, keeping a dict (by output) or a list (per output) as it is."""
    if y is None:
        return None
    if isinstance(y, dict):
        return {k: np.asarray(v) for k, v in y.items()}
    if isinstance(y, (list, tuple)) and len(y) > 1 and all(isinstance(v, np.ndarray) for v in y):
        return list(y)  # one array per output, as Keras takes them
    return np.asarray(y)


def _from_dataset(dataset):
    xs, ys = [], []
    for element in dataset.as_numpy_iterator():
        if isinstance(element, tuple):
            xs.append(element[0])
            ys.append(element[1] if len(element) > 1 else None)
        else:
            xs.append(element)
            ys.append(None)
    if not xs:
        raise InputError("Expected a non-empty tf.data.Dataset. Received: a dataset with no elements.")

    def cat(parts):
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)

    return Split(cat(xs), None if ys[0] is None else cat(ys))
