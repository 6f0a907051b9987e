"""Loading a big `.keras` / `.weights.h5` file with its weights held about once.

`keras.saving.load_model` of a model with 2.1 GB of weights (benchmarks/convert_memory.py's
Dense2G) peaks at 7.8 GiB: every variable is first filled by its random initializer (a draw
the size of the variable, then the variable), then read whole from HDF5 into numpy, converted
to a tensor and assigned (three more copies of the largest variable at once). Within
`lean_loading`, for variables of `CHUNK` bytes or more:

- a variable is created filled with zeros instead of drawn (the file overwrites it);
- HDF5 datasets are handed to `Variable.assign` unread (`_OnDisk`), which copies them into the
  variable `CHUNK` bytes of rows at a time.

Dense2G: 7.8 -> 3.9 GiB. The patches hold only inside the block, only for files of
`LEAN_FROM` bytes or more (smaller models load exactly as Keras loads them), and only on the
Keras they were written against (`drift`); anything else reading a store entry gets the array
(`_OnDisk.__array__`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
from pathlib import Path

CHUNK = 64 * 2**20  # variables from this size are loaded in row blocks of about this size
LEAN_FROM = 256 * 2**20  # files from this size load through the patches
KERAS_VERSIONS = ("3.15.1",)
# "module:qualified name" -> sha256 (16 hex digits) of the source patched or relied on.
FINGERPRINTS = {
    "keras.src.saving.saving_lib:H5IOStore.__getitem__": "ef8c082dd4fcf4e4",
    "keras.src.backend.common.variables:Variable.assign": "4fdea6a6244132ab",
    "keras.src.backend.tensorflow.core:Variable._initialize_with_initializer": "14c5c207bc313aec",
}


def drift() -> list[str]:
    """What differs from the Keras this module was written against (empty: nothing)."""
    return list(_drift())


@functools.cache
def _drift() -> tuple[str, ...]:
    import keras

    found = [] if keras.__version__ in KERAS_VERSIONS else [f"keras {keras.__version__}"]
    return tuple(found + [name for name, expected in FINGERPRINTS.items() if fingerprint(name) != expected])


def fingerprint(name: str) -> str:
    import importlib

    module, _, attribute = name.partition(":")
    target = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()[:16]


class _OnDisk:
    """An HDF5 dataset not yet read: what `Variable.assign` copies in blocks."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.shape = tuple(dataset.shape)
        self.dtype = dataset.dtype
        self.ndim = len(self.shape)

    def __array__(self, dtype=None, copy=None):
        values = self.dataset[()]
        return values if dtype is None else values.astype(dtype)


@contextlib.contextmanager
def lean_loading(path):
    """Within the block, Keras loads the file at `path` as the module docstring says (a no-op for
    small files, directories and a Keras this was not written for)."""
    source = Path(path)
    if not source.is_file() or source.stat().st_size < LEAN_FROM or drift():
        yield
        return
    from unittest.mock import patch

    import numpy as np
    import tensorflow as tf
    from keras.src.backend.common import variables
    from keras.src.backend.tensorflow import core
    from keras.src.saving import saving_lib

    get, assign, initialize = (
        saving_lib.H5IOStore.__getitem__,
        variables.Variable.assign,
        core.Variable._initialize_with_initializer,
    )

    def lean_get(store, key):
        group = store._h5_entry_group
        dataset = saving_lib.safe_get_h5_dataset(group, key) if key in group else None
        if dataset is not None and dataset.ndim and dataset.nbytes >= CHUNK and "dtype" not in dataset.attrs:
            return _OnDisk(dataset)  # ("dtype" marks bfloat16, which Keras converts on reading)
        return get(store, key)

    def lean_assign(variable, value):
        if not isinstance(value, _OnDisk) or value.shape != tuple(variable.shape) or variables.in_stateless_scope():
            return assign(variable, np.asarray(value) if isinstance(value, _OnDisk) else value)
        rows = max(1, CHUNK // max(1, value.dataset.nbytes // value.shape[0]))
        target = variable._value
        for start in range(0, value.shape[0], rows):
            target[start : start + rows].assign(tf.convert_to_tensor(value.dataset[start : start + rows], target.dtype))
        return variable

    def lean_initialize(variable, initializer):
        size = int(np.prod(variable._shape)) * np.dtype(variable._dtype).itemsize
        if size >= CHUNK:
            return initialize(variable, lambda shape, dtype=None: tf.zeros(shape, dtype))
        return initialize(variable, initializer)

    with (
        patch.object(saving_lib.H5IOStore, "__getitem__", lean_get),
        patch.object(variables.Variable, "assign", lean_assign),
        patch.object(core.Variable, "_initialize_with_initializer", lean_initialize),
    ):
        yield
