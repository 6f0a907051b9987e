"""`source: timeseries` — sliding windows over a series in a `.csv` or a `.npz` of 1-D arrays
(`keras.utils.timeseries_dataset_from_array`).

    data: {source: timeseries, path: sensor.csv, features: [temp, humidity],
           target_column: temp, sequence_length: 24, target_offset: 1}

Each sample is a window of `sequence_length` steps of the `features` columns (default:
every numeric column), float32 of shape (sequence_length, n_features); its label is
`target_column` `target_offset` steps after the window's last step (1: the next value;
0: the last step itself). `sequence_stride` steps between window starts, `sampling_rate`
between steps inside a window. Splits follow time, never shuffled across: a window
belongs to the split its target's time falls in — train first, then validation, then
test (the latest part of the series), so no target the model validates on precedes one it
trained on. Training windows are still shuffled within the train split.
"""

from __future__ import annotations

import numpy as np

from edgekeras.data import key_path, source_path
from edgekeras.data.bundle import DatasetSplit, Loaded
from edgekeras.data.columns import read_table
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'data.path: series.csv' (or a .npz of 1-D arrays)."),
    "features": Field("strlist", None, doc="Columns fed to the model (default: every numeric column)."),
    "target_column": Field("str", doc="Give 'data.target_column', the column to predict."),
    "sequence_length": Field("posint", doc="Give 'data.sequence_length', the steps per window."),
    "sequence_stride": Field("posint", 1),
    "sampling_rate": Field("posint", 1),
    "target_offset": Field("int", 1, doc="Steps after the window's last step (0 = that step)."),
    "delimiter": Field("str", ","),
}


def check(section, path="data"):
    if section["target_offset"] < 0:
        raise InputError(
            f"Expected '{path}.target_offset' to be 0 or more (steps after the window's last step). "
            f"Received: {section['target_offset']}."
        )


def _span(section):
    """Steps a window covers, first to last."""
    return (section["sequence_length"] - 1) * section["sampling_rate"] + 1


def _windows(section, steps):
    """Start positions of every window that has a target inside a series of `steps` steps."""
    count = steps - _span(section) + 1 - section["target_offset"]
    return np.arange(0, max(count, 0), section["sequence_stride"])


def load(section, seed=0, fitted=None):
    import keras

    table = read_table(source_path(section, suffixes=(".csv", ".npz")), section["delimiter"])
    names = section["features"] or [n for n in table.names if table.is_numeric(n)]
    if not names:
        raise InputError(
            f"Expected numeric columns in '{table.path}' to use as features. Received: columns "
            f"{table.names}, none all numbers. List them in '{key_path(section, 'features')}'."
        )
    keys = (
        [key_path(section, f"features[{i}]") for i in range(len(names))]
        if section["features"]
        else [key_path(section, "features")] * len(names)
    )
    data = np.stack([table.numbers(n, k) for n, k in zip(names, keys)], axis=1).astype("float32")
    target = table.numbers(section["target_column"], key_path(section, "target_column")).astype("float32")
    steps = len(table)
    starts = _windows(section, steps)
    if len(starts) == 0:
        raise InputError(
            f"Expected '{key_path(section, 'sequence_length')}' ({section['sequence_length']} steps, "
            f"sampling_rate {section['sampling_rate']}) plus target_offset {section['target_offset']} to "
            f"fit in the series. Received: a series of {steps} steps in '{table.path}'. Use a "
            "shorter sequence_length or a longer series."
        )
    first_target = _span(section) - 1 + section["target_offset"]
    # A window's split is the split its target's time falls in (train, then validation, then test).
    target_times = starts + first_target
    ends = np.round(
        steps
        * np.cumsum(
            [1 - section.get("validation_split", 0) - section.get("test_split", 0), section.get("validation_split", 0)]
        )
    ).astype(int)
    counts = np.diff(np.searchsorted(target_times, [0, *ends, steps]))
    if counts[0] == 0:
        raise InputError(
            f"Expected at least one training window in '{table.path}'. Received: a series of {steps} "
            f"steps whose first {ends[0]} (the train part) are fewer than a window needs "
            f"({first_target + 1}). Lower '{key_path(section, 'sequence_length')}' or the splits."
        )
    try:
        windows = keras.utils.timeseries_dataset_from_array(
            data,
            target[first_target:],
            sequence_length=section["sequence_length"],
            sequence_stride=section["sequence_stride"],
            sampling_rate=section["sampling_rate"],
            batch_size=None,
            shuffle=False,
        )
    except ValueError as e:  # e.g. a stride longer than the series
        raise InputError(
            f"Could not cut windows from '{table.path}' ({key_path(section, 'sequence_stride')}, "
            f"{key_path(section, 'sampling_rate')}): {str(e).strip().splitlines()[0]}"
        ) from None
    splits, offset = [], 0
    for count in counts:
        part = windows.skip(offset).take(count)
        splits.append(DatasetSplit(part, count, random_order=False) if count else None)
        offset += count
    metadata = {
        "features": list(names),
        "target_column": section["target_column"],
        "sequence_length": section["sequence_length"],
        "target_offset": section["target_offset"],
        "steps": steps,
    }
    return Loaded(splits=tuple(splits), metadata=metadata)
