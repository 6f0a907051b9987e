"""Class-per-folder data (`image_dir`, `text_dir`) read through Keras' own loaders.

`keras.utils.image_dataset_from_directory` / `text_dataset_from_directory` index the
folder (one sub-folder per class, class names sorted), shuffle the file list once with the
seed and hold out `validation_split` of it. edgekeras asks Keras to hold out
validation_split + test_split and cuts that held-out part into validation and test, so each
file lands in exactly one split, the same one every time for a given seed, and only the
files a split needs are decoded when it is read.
"""

from __future__ import annotations

import contextlib
import io

from edgekeras.data import key_path, source_path
from edgekeras.data.bundle import DatasetSplit
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field

# Keys every class-folder source shares (image_dir and text_dir add their own).
FOLDER_FIELDS = {
    "path": Field("str", doc="Give 'data.path: FOLDER' with one sub-folder per class."),
    "labels": Field("str", "inferred", choices=("inferred",), doc="Labels are inferred from the sub-folder names."),
    "class_names": Field("strlist", None, doc="Sub-folders to use, in label order (default: all, sorted)."),
    "follow_links": Field("bool", False),
}


def folder_splits(loader, section, seed, class_names=None, what="files", **options):
    """((train, validation, test) `DatasetSplit`s or None, class names) for `section['path']`.

    `loader` is the Keras `*_dataset_from_directory` function; `class_names` fixes the
    classes and their order (an explicit validation folder reuses the training classes).
    """
    key = key_path(section, "path")
    path = source_path(section, kind="folder")
    class_names = class_names or section.get("class_names")
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir())
    if class_names is None and len(subfolders) < 2:
        raise InputError(
            f"Expected at least two class sub-folders in '{path}' ({key}), one per class, each "
            f"holding that class's {what}. Received: {len(subfolders)} sub-folder(s) {subfolders}. "
            "Add a folder per class (e.g. pos/ and neg/)."
        )
    options = dict(
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        batch_size=None,
        shuffle=True,
        seed=seed,
        follow_links=section.get("follow_links", False),
        verbose=False,
        **options,
    )
    full = _call(loader, path, key, what, **options)
    n, class_names = int(full.cardinality()), list(full.class_names)
    if len(class_names) < 2:
        raise InputError(
            f"Expected at least two classes in '{path}' ({key}). Received: {class_names}. "
            "List two or more sub-folders in class_names, or leave it out to use them all."
        )
    fraction = section.get("validation_split", 0) + section.get("test_split", 0)
    held = int(fraction * n) if fraction else 0  # exactly how Keras counts its held-out part
    if held == 0:
        return (DatasetSplit(full, n), None, None), class_names
    train, rest = _call(loader, path, key, what, validation_split=fraction, subset="both", **options)
    n_test = min(held, round(section.get("test_split", 0) * n))
    n_val = held - n_test
    return (
        DatasetSplit(train, n - held),
        DatasetSplit(rest.take(n_val), n_val) if n_val else None,
        DatasetSplit(rest.skip(n_val), n_test) if n_test else None,
    ), class_names


def _call(loader, path, key, what, **options):
    """Calls the Keras loader quietly; its ValueErrors become InputErrors naming `key`."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # "Using N files for training."
            return loader(str(path), **options)
    except ValueError as e:
        raise InputError(f"Could not read {what} from '{path}' ({key}): {str(e).strip().splitlines()[0]}") from None
