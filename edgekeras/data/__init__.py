"""Data sources for training (`data.source` in a recipe) and data files for the CLI.

Each source is one module in this package with `FIELDS` (its own recipe keys),
`load(section, seed=0, fitted=None)` returning `(x, y)` arrays or a `Loaded`, and optionally
`check(section, path)` (checks across keys, no TensorFlow) and `restore(run_folder)` (the
preprocessing state a finished run saved, e.g. the text vocabulary). `load` finds files
with `source_path(section)` and names keys in errors with `key_path(section, key)`
('data.path', or 'data.validation.path'). The registry below is
the only place that lists them. Splitting, the tf.data pipeline and the run folder's data
assets are shared (see `bundle`, `augment`, `assets`).

Common keys (every source): `validation_split`, `test_split`, `batch_size`, `shuffle_buffer`,
`cache` (false, true = in memory, or a folder for file caches), `prefetch`, `augment`
(Keras preprocessing layers for training batches only), and `validation`: an explicit
validation set, written as the data section of its own: `validation: {path: val/}` reuses
the main source and its keys (only `path` changes); `validation: {source: npz, path: v.npz}`
names another source. With `validation`, `validation_split` is 0 (it cannot also be set).
"""

from __future__ import annotations

import importlib

from edgekeras.data.augment import build_augment, check_augment, check_single_input
from edgekeras.data.bundle import (  # noqa: F401  (DataBundle, DatasetSplit, Loaded, Split: public)
    DataBundle,
    DatasetSplit,
    Loaded,
    Split,
    fingerprint,
    split_arrays,
)
from edgekeras.data.files import existing_path, load_data_file  # noqa: F401  (load_data_file: public)
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field, check_section

# source name -> module under edgekeras.data
SOURCES = {
    "digits": "edgekeras.data.digits",
    "npz": "edgekeras.data.npz",
    "csv": "edgekeras.data.csv_table",
    "image_dir": "edgekeras.data.image_dir",
    "text_dir": "edgekeras.data.text_dir",
    "timeseries": "edgekeras.data.timeseries",
}

COMMON_FIELDS = {
    "source": Field("str", "digits", choices=lambda: list(SOURCES)),
    "validation_split": Field("fraction", 0.1),
    "test_split": Field("fraction", 0.2),
    "batch_size": Field("posint", 32),
    "shuffle_buffer": Field("posint", 1024),
    "cache": Field("any", False, doc="false, true (in memory) or a folder for file caches."),
    "prefetch": Field("bool", True),
    "augment": Field("list", [], doc="Keras preprocessing layers, e.g. [{RandomFlip: {mode: horizontal}}]."),
    "validation": Field("dict", None, doc="An explicit validation set, e.g. {path: data/val}."),
}
_SPLIT_KEYS = ("validation_split", "test_split")


def _source(name):
    return importlib.import_module(SOURCES[name])


def _check_source_name(name, path):
    if name not in SOURCES:
        check_section({"source": name}, {"source": COMMON_FIELDS["source"]}, path)


def check_data_section(section):
    """Validates `data:` with the common keys plus the chosen source's own keys."""
    if section is not None and not isinstance(section, dict):
        check_section(section, COMMON_FIELDS, "data")  # raises: not a mapping
    section = dict(section or {})
    name = section.get("source", "digits")
    _check_source_name(name, "data")
    module = _source(name)
    checked = check_section(section, {**COMMON_FIELDS, **module.FIELDS}, "data")
    if checked["validation_split"] + checked["test_split"] >= 0.9:
        raise InputError(
            "Expected data.validation_split + data.test_split below 0.9 so training keeps data. "
            f"Received: {checked['validation_split']} + {checked['test_split']}."
        )
    cache = checked["cache"]
    if not (isinstance(cache, bool) or (isinstance(cache, str) and cache.strip())):
        raise InputError(
            f"Expected 'data.cache' to be false, true (cache in memory) or a folder path for file "
            f"caches. Received: {cache!r}."
        )

    check_augment(checked["augment"])
    if checked["validation"] is not None:
        if section.get("validation_split"):
            raise InputError(
                "Expected either 'data.validation' (an explicit validation set) or "
                f"'data.validation_split'. Received: both (validation_split: {section['validation_split']}). "
                "Remove one of them."
            )
        checked["validation_split"] = 0.0
        checked["validation"] = _check_validation(checked["validation"], checked, name)
    if hasattr(module, "check"):
        module.check(checked, "data")
    return checked


def _check_validation(sub, parent, parent_source):
    """`data.validation`: a data section of its own, inheriting the main source's keys."""
    name = sub.get("source", parent_source)
    _check_source_name(name, "data.validation")
    module = _source(name)
    if "path" in module.FIELDS and "path" not in sub:
        raise InputError(
            "Missing required key 'data.validation.path'. Give the validation set's own file or "
            "folder, e.g. 'data.validation: {path: data/val}'."
        )
    inherited = {k: parent[k] for k in module.FIELDS if k in parent} if name == parent_source else {}
    fields = {"source": Field("str", parent_source), **module.FIELDS}
    checked = check_section({**inherited, **sub, "source": name}, fields, "data.validation")
    if hasattr(module, "check"):
        module.check(checked, "data.validation")
    return checked


def key_path(section, key):
    """The recipe path of `key` in a section given to `load` ('data.path', 'data.validation.path')."""
    return f"{section.get('_at', 'data')}.{key}"


def source_path(section, key="path", kind="file", suffixes=None):
    """The existing file/folder `section[key]` names, found from the current folder or the
    recipe's folder; errors name the recipe key."""
    return existing_path(
        section[key], key_path(section, key), kind=kind, suffixes=suffixes, base_dir=section.get("_base")
    )


def _load(section, seed, fitted=None, at="data", base_dir=None):
    """Runs a source's `load` and returns a `Loaded` (tuples of arrays are wrapped)."""
    section = {**section, "_at": at, "_base": base_dir}
    result = _source(section["source"]).load(section, seed=seed, fitted=fitted)
    return result if isinstance(result, Loaded) else Loaded(*result)


def restore_fitted(section, run_folder):
    """The preprocessing state a run folder saved for `section`'s source, or None."""
    module = _source(section["source"])
    return module.restore(run_folder) if hasattr(module, "restore") else None


def load_data(section, seed=0, run_folder=None, base_dir=None):
    """Loads and splits the data a (checked) recipe `data:` section describes.

    With `run_folder`, preprocessing fitted during that run (e.g. the text vocabulary) is
    reused instead of fitted again, so a finished run's data is encoded exactly as it trained.
    `base_dir` (the recipe's folder) is where relative paths are looked for after the
    current folder.
    """
    section = check_data_section(section)  # defaults filled in (a checked section passes unchanged)
    fitted = restore_fitted(section, run_folder) if run_folder is not None else None
    main = _load(section, seed, fitted, base_dir=base_dir)
    if main.splits is not None:
        train, validation, test = main.splits
    else:
        train, validation, test = split_arrays(main.x, main.y, section["validation_split"], section["test_split"], seed)
    if section["validation"] is not None:
        validation = _load_validation(section["validation"], section["source"], seed, main.fitted, train, base_dir)
    augment = build_augment(section["augment"]) if section["augment"] else []
    if augment:
        check_single_input(train)
    sizes = [len(s) if s is not None else 0 for s in (train, validation, test)]
    return DataBundle(
        train,
        validation,
        test,
        batch_size=section["batch_size"],
        seed=seed,
        shuffle_buffer=section["shuffle_buffer"],
        cache=section["cache"],
        prefetch=section["prefetch"],
        augment=augment,
        metadata={"source": section["source"], **main.metadata},
        assets=main.assets,
        fingerprint=fingerprint(section, seed, sizes),
    )


def _load_validation(sub, main_source, seed, fitted, train, base_dir):
    section = {**sub, **dict.fromkeys(_SPLIT_KEYS, 0.0)}
    loaded = _load(
        section, seed, fitted if sub["source"] == main_source else None, at="data.validation", base_dir=base_dir
    )
    validation = loaded.splits[0] if loaded.splits is not None else Split(loaded.x, loaded.y)
    want, got = train.element_shapes(), validation.element_shapes()
    if want != got:
        raise InputError(
            f"Expected 'data.validation' samples shaped like the training data {want}. "
            f"Received: {got} from '{sub.get('path', sub['source'])}'."
        )
    return validation


def bundle_arrays(x, y, section, seed=0):
    """A `DataBundle` of arrays given to `train(model, data=...)`, split and piped as the
    recipe's `data:` section says (validation/test split, batch size, cache, augment)."""
    augment = build_augment(section["augment"]) if section.get("augment") else []
    bundle = DataBundle.from_arrays(
        x,
        y,
        section["validation_split"],
        section["test_split"],
        section["batch_size"],
        seed,
        shuffle_buffer=section["shuffle_buffer"],
        cache=section.get("cache", False),
        prefetch=section.get("prefetch", True),
        augment=augment,
        metadata={"source": "arrays"},
    )
    if augment:
        check_single_input(bundle.train)
    return bundle
