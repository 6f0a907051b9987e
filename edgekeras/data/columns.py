"""Named columns read from a `.csv` (first row = header) or a `.npz` of 1-D arrays.

Shared by `source: csv` and `source: timeseries`. A column is numeric when every non-empty
cell is a number; an empty cell in a numeric column is an error naming the line. Missing
column names are answered with the closest name in the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgekeras.data.files import read_npz
from edgekeras.errors import InputError, suggest


class Table:
    """Columns of one file, in file order; errors name the file and the recipe key."""

    def __init__(self, path, columns, line_offset=2):
        self.path, self.columns, self.line_offset = Path(path), columns, line_offset

    @property
    def names(self):
        return list(self.columns)

    def __len__(self):
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name, key):
        """The raw column `name` (named in the recipe at `key`)."""
        if name not in self.columns:
            raise InputError(
                f"Expected a column named '{name}' ({key}) in '{self.path}'. Received: columns "
                f"{self.names}.{suggest(name, self.names)}"
            )
        return self.columns[name]

    def is_numeric(self, name):
        values = self.columns[name]
        if values.dtype.kind in "biuf":
            return True
        return values.dtype.kind in "US" and all(_is_number(v) for v in values if v != "")

    def numbers(self, name, key):
        """Column `name` as float64; a non-numeric or empty cell is an error naming its line."""
        values = self.column(name, key)
        if values.dtype.kind in "biuf":
            return values.astype("float64")
        for i, v in enumerate(values):
            if not _is_number(v):
                where = f"line {i + self.line_offset}" if self.path.suffix.lower() == ".csv" else f"index {i}"
                raise InputError(
                    f"Expected a number in every row of column '{name}' ({key}) in '{self.path}'. "
                    f"Received: {v!r} on {where}. Fill in or drop that row."
                )
        return values.astype("float64")


def _is_number(text):
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def read_table(path, delimiter=","):
    """Reads an existing `path` (.csv or .npz) into a `Table`."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return _read_npz_columns(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"Could not read '{path}' as CSV: {e}. Save it as UTF-8 text with a header row.") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise InputError(f"Expected a header row and at least one data row in '{path}'. Received: {len(rows)} rows.")
    header = [h.strip() for h in rows[0]]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates or "" in header:
        raise InputError(
            f"Expected distinct, non-empty column names in the header of '{path}'. "
            f"Received: {header}. Rename the columns {duplicates or ['(empty)']}."
        )
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise InputError(
                f"Expected {len(header)} cells per row in '{path}' (as in its header). Received: "
                f"{len(row)} cells in data row {i + 1}. Quote cells that contain '{delimiter}'."
            )
    cells = np.array([[c.strip() for c in r] for r in rows[1:]], dtype=str)
    return Table(path, {name: cells[:, j] for j, name in enumerate(header)})


def _read_npz_columns(path):
    arrays = read_npz(path)
    shapes = {k: a.shape for k, a in arrays.items()}
    if not arrays or any(len(s) != 1 for s in shapes.values()) or len({s[0] for s in shapes.values()}) > 1:
        raise InputError(
            f"Expected '{path}' to hold one 1-D array per column, all of the same length. Received: shapes {shapes}."
        )
    return Table(path, arrays, line_offset=0)
