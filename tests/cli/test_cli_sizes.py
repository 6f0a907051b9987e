"""One size rule (`edgekeras.units.format_size`: binary units, IEC names) in every table and message."""

from __future__ import annotations

import re

import pytest
from conftest import invoke

from edgekeras.constraints import CHECKS
from edgekeras.units import format_size


@pytest.mark.parametrize(
    "n_bytes, text",
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (157_286, "153.6 KiB"),
        (4_509_000, "4.30 MiB"),
        (3 * 1024**3, "3.00 GiB"),
    ],
)
def test_format_size(n_bytes, text):
    assert format_size(n_bytes) == text


def test_size_limits_say_both_sizes_the_same_way():
    passed, value, detail = CHECKS["max_size_kb"][1]({"size_kb": 1200.0}, 1024)
    assert (passed, value, detail) == (False, 1200.0, "1.17 MiB against 1.00 MiB")


def _cell(table, row_start, column):
    """The `column` cell of the row starting with `row_start` in an artifact table (cells 2+ spaces apart)."""
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("artifact "))
    columns = re.split(r"\s{2,}", lines[header].strip())
    row = next(line for line in lines[header + 1 :] if line.startswith(row_start))
    return re.split(r"\s{2,}", row.strip())[columns.index(column)]


def test_convert_bench_and_inspect_print_one_size_for_one_file(ws):
    """A file just over 1 MiB: convert printed '1.17 MB' and bench '1202.6 KB' for it before."""
    import keras

    model = keras.Sequential([keras.Input((600,), name="x"), keras.layers.Dense(512, name="out")], name="wide")
    model.save(ws / "wide.keras")
    converted = invoke("convert", ws / "wide.keras", "--format", "tflite", "--no-validate", "--out", ws)
    assert converted.exit_code == 0, converted.describe()
    artifact = ws / "wide-tflite-fp32.tflite"
    expected = format_size(artifact.stat().st_size)
    assert expected.endswith(" MiB")
    benched = invoke("bench", artifact, "--runs", 3, "--warmup", 1)
    assert benched.exit_code == 0, benched.describe()
    inspected = invoke("inspect", artifact)
    assert inspected.exit_code == 0, inspected.describe()
    assert _cell(converted.stdout, artifact.name, "size") == expected
    assert _cell(benched.stdout, artifact.name, "size") == expected
    assert re.search(rf"^\s+size\s+{re.escape(expected)} \(", inspected.stdout, re.M), inspected.stdout
