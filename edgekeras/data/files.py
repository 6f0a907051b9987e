"""Data files given on the command line (`--data`, `--calibration`): `.npz` archives.

Arrays are named after the model's inputs (a single-input model also takes `x`); `y`
holds labels. Loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.errors import InputError, suggest


def read_npz(path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"Expected a data file. Received: '{path}', which does not exist.")
    if path.suffix != ".npz":
        raise InputError(
            f"Expected a .npz data file with arrays named after the model inputs (and 'y' for "
            f"labels). Received: '{path}'."
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"Could not read '{path}' as a .npz archive: {e}") from None


def load_data_file(path, labelled=False):
    """Reads `path` into a `Split`; with `labelled`, a `y` array is required."""
    arrays = read_npz(path)
    y = arrays.pop("y", None)
    if labelled and y is None:
        raise InputError(f"Expected a 'y' array of labels in '{path}'. Received: arrays {sorted(arrays)}.")
    if not arrays:
        raise InputError(f"Expected input arrays in '{path}'. Received: only {'y' if y is not None else 'nothing'}.")
    return Split(arrays, y)


def existing_path(value, key, kind="file", suffixes=None, base_dir=None):
    """`value` as a Path that exists (a file, or a folder with kind='folder'): as given
    (relative to the current folder), else relative to `base_dir` (the recipe's folder).
    Errors name the recipe `key`."""
    path = Path(value).expanduser()
    if not path.exists() and base_dir is not None and (Path(base_dir) / path).exists():
        path = Path(base_dir) / path
    if not path.exists():
        siblings = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
        hint = suggest(path.name, siblings)
        raise InputError(
            f"Expected '{key}' to name an existing {kind}. Received: '{value}', which does not exist."
            f"{hint} Relative paths are looked up from the current folder, then the recipe's folder."
        )
    if kind == "folder" and not path.is_dir():
        raise InputError(f"Expected '{key}' to be a folder. Received: '{value}', which is a file.")
    if kind == "file" and path.is_dir():
        raise InputError(f"Expected '{key}' to be a file. Received: '{value}', which is a folder.")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"Expected '{key}' to be a {' or '.join(suffixes)} file. Received: '{value}'.")
    return path
