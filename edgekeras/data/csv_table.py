"""`source: csv` — a table with a header row; the recipe names the columns.

    data: {source: csv, path: table.csv, features: [age, height, color], label: species}

`features` is a list of columns (one model input), a mapping {input name: [columns]} (one
input per group, matched to the model's inputs by name), or omitted (every column but the
label). `label` is a column, or {output name: column} for a multi-output model.
Categorical handling is kept simple: a feature column with any non-numeric cell is one-hot
encoded (categories sorted; unseen ones in a validation file encode as all zeros), and a
non-numeric label becomes class indices in sorted order (`class_names` in data.json). A
numeric label is int32 when every value is whole, else float32.
"""

from __future__ import annotations

import numpy as np

from edgekeras.data import key_path, source_path
from edgekeras.data.assets import read_data_info
from edgekeras.data.bundle import Loaded
from edgekeras.data.columns import read_table
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'data.path: table.csv'."),
    "features": Field("any", None, doc="Columns: [a, b], or {input name: [a, b]} per input."),
    "label": Field("any", doc="Give 'data.label: COLUMN' (or {output name: column})."),
    "delimiter": Field("str", ","),
}


def _is_names(value):
    return isinstance(value, list) and value and all(isinstance(v, str) for v in value)


def check(section, path="data"):
    features, label = section["features"], section["label"]
    if not (
        features is None
        or _is_names(features)
        or (isinstance(features, dict) and features and all(_is_names(v) for v in features.values()))
    ):
        raise InputError(
            f"Expected '{path}.features' to be a list of column names, or {{input name: [columns]}} "
            f"for a multi-input model. Received: {features!r}."
        )
    if not (
        isinstance(label, str)
        or (isinstance(label, dict) and label and all(isinstance(v, str) for v in label.values()))
    ):
        raise InputError(
            f"Expected '{path}.label' to be a column name, or {{output name: column}} for a "
            f"multi-output model. Received: {label!r}."
        )
    if len(section["delimiter"]) != 1:
        raise InputError(f"Expected '{path}.delimiter' to be one character. Received: {section['delimiter']!r}.")


def _groups(section, table, label_columns):
    """[(input name or None, [(column, recipe key)])] the features section describes."""
    features = section["features"]
    if features is None:
        columns = [c for c in table.names if c not in label_columns]
        if not columns:
            raise InputError(f"Expected feature columns besides the label in '{table.path}'. Received: {table.names}.")
        return [(None, [(c, key_path(section, "features")) for c in columns])]
    if isinstance(features, list):
        return [(None, [(c, key_path(section, f"features[{i}]")) for i, c in enumerate(features)])]
    return [
        (name, [(c, key_path(section, f"features.{name}[{i}]")) for i, c in enumerate(cols)])
        for name, cols in features.items()
    ]


def _encode_feature(table, column, key, categories):
    """(float32 block of shape (N, k), k feature names); records new categories."""
    values = table.column(column, key)
    if table.is_numeric(column):
        return table.numbers(column, key)[:, None].astype("float32"), [column]
    known = categories.setdefault(column, sorted(set(values.tolist())))
    onehot = (values[:, None] == np.array(known, dtype=str)[None, :]).astype("float32")
    return onehot, [f"{column}={v}" for v in known]


def _encode_label(table, column, key, classes):
    if column in classes or not table.is_numeric(column):
        values = table.column(column, key)
        known = classes.setdefault(column, sorted(set(values.tolist())))
        index = {v: i for i, v in enumerate(known)}
        unknown = sorted(set(values.tolist()) - set(index))
        if unknown:
            raise InputError(
                f"Expected the labels in column '{column}' ({key}) of '{table.path}' to be classes "
                f"seen in training {known}. Received: {unknown}."
            )
        return np.array([index[v] for v in values.tolist()], dtype="int32")
    numbers = table.numbers(column, key)
    return numbers.astype("int32") if np.all(numbers == np.round(numbers)) else numbers.astype("float32")


def load(section, seed=0, fitted=None):
    table = read_table(source_path(section, suffixes=(".csv", ".npz")), section["delimiter"])
    label = section["label"]
    labels = {None: label} if isinstance(label, str) else dict(label)
    label_keys = {out: key_path(section, "label" if out is None else f"label.{out}") for out in labels}
    for out, column in labels.items():
        table.column(column, label_keys[out])
    fitted = fitted or {"categories": {}, "classes": {}}
    categories, classes = dict(fitted["categories"]), dict(fitted["classes"])

    x, feature_names = {}, {}
    for name, columns in _groups(section, table, set(labels.values())):
        blocks, names = [], []
        for column, key in columns:
            if column in labels.values():
                raise InputError(
                    f"Expected the label column '{column}' not to be a feature too ({key}). "
                    "Received: it in both. Remove it from data.features."
                )
            block, block_names = _encode_feature(table, column, key, categories)
            blocks.append(block)
            names += block_names
        x[name] = np.concatenate(blocks, axis=1)
        feature_names[name] = names
    y = {out: _encode_label(table, column, label_keys[out], classes) for out, column in labels.items()}

    single = list(x) == [None]
    metadata = {
        "features": feature_names[None] if single else feature_names,
        "label": label,
        "categories": categories,
        "label_classes": classes,
    }
    if isinstance(label, str) and label in classes:
        metadata["class_names"] = classes[label]
    return _loaded(x[None] if single else x, y.get(None, y), metadata, {"categories": categories, "classes": classes})


def _loaded(x, y, metadata, fitted):
    return Loaded(x, y, metadata=metadata, fitted=fitted)


def restore(run_folder):
    """The categories and label classes a finished run encoded its table with."""
    info = read_data_info(run_folder)
    return {"categories": info.get("categories", {}), "classes": info.get("label_classes", {})}
