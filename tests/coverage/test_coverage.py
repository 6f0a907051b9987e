"""The coverage table (`edgekeras coverage`): produced by the code, and still true.

- A small subset is run for real (child processes, real converters and runtimes) and its
  markdown is checked to be derived from its JSON, cell by cell.
- docs/coverage.md must equal what the renderer makes of docs/coverage.json (no hand edits),
  and the JSON must cover every family and exporter.
- Cells that passed in docs/coverage.json must still pass: a deterministic sample in the
  default suite, every one of them in the slow suite.
- A converter process that dies becomes an "error: converter crashed" cell; the family's
  other cells still run.
"""

from __future__ import annotations

import zlib

import pytest
from conftest import REPO, invoke, run_without_tensorflow

from edgekeras.coverage import cell, families, matrix, table

DOC_MD = REPO / "docs" / "coverage.md"
DOC_JSON = REPO / "docs" / "coverage.json"


def _committed():
    document = table.load_document(DOC_JSON)
    assert document is not None, "docs/coverage.json is missing: run `make coverage`"
    return document


def _passed_cells(document):
    return [
        (row["name"], column)
        for row in document["families"]
        for column, entry in row["cells"].items()
        if entry["status"] == "pass"
    ]


def test_subset_table_is_derived_from_its_results(tmp_path):
    from edgekeras.coverage import coverage

    out = tmp_path / "coverage.md"
    document, regressed = coverage(
        out=out,
        families=["Embedding", "LayerNormalization"],
        formats=["tflite", "onnx"],
        precisions=["fp32", "int16x8"],
        progress=False,
    )
    assert regressed == []
    assert document["columns"] == ["tflite fp32", "tflite int16x8", "onnx fp32"]  # no ONNX int16x8 exporter
    saved = table.load_document(out.with_suffix(".json"))
    assert saved == document
    markdown = out.read_text()
    assert markdown == table.render_markdown(saved)

    rows = {row["name"]: row for row in saved["families"]}
    for name, row in rows.items():
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in line.strip("|").split(" | ")][1:]
        assert cells == [table.cell_text(row["cells"][c]).replace("|", "\\|") for c in saved["columns"]]
        assert all(v > cell.MIN_OUTPUT_STD for v in row["output_std"].values())

    for name in rows:
        for column in ("tflite fp32", "onnx fp32"):
            entry = rows[name]["cells"][column]
            assert entry["status"] == "pass", entry
            assert entry["max_abs_error"] < 1e-4 and entry["cosine"] > 0.9999
            assert table.cell_text(entry) == f"pass (max err {entry['max_abs_error']:.2g})"
    embedding = rows["Embedding"]["cells"]["tflite int16x8"]
    assert embedding["status"] == "unsupported" and "integer inputs" in embedding["reason"]
    assert table.cell_text(embedding) == "n/a: int16x8 cannot calibrate integer inputs ['tokens']"
    norm = rows["LayerNormalization"]["cells"]["tflite int16x8"]
    assert norm["status"] == "unsupported" and "NEG" in norm["reason"]
    assert table.cell_text(norm).startswith("n/a: no int16x8 kernel for NEG (layer_normalization")


def test_cell_text_follows_the_entry():
    base = {"format": "onnx", "precision": "int8", "max_abs_error": 0.3, "cosine": 0.71, "reason": None}
    failed = {
        **base,
        "status": "fail",
        "failed_checks": [
            {"output": "y", "metric": "cosine", "value": 0.71, "limit": 0.98, "comparison": ">="},
            {"output": "y", "metric": "top1_agreement", "value": 0.5, "limit": 0.95, "comparison": ">="},
        ],
    }
    assert table.cell_text(failed) == "fail (cosine 0.71, top-1 agreement 0.5)"
    assert table.cell_text({**base, "status": "pass", "max_abs_error": 3.2e-07}) == "pass (max err 3.2e-07)"
    assert (
        table.cell_text({**base, "status": "pass", "quantized": False}) == "pass (max err 0.3; weights not quantized)"
    )
    crashed = {**base, "status": "error", "reason": "converter crashed (signal 11, SIGSEGV)"}
    assert table.cell_text(crashed) == "error: converter crashed (signal 11, SIGSEGV)"
    long = {**base, "status": "unsupported", "reason": "Expected X. Received: " + "y" * 300 + ". Fix it."}
    assert len(table.cell_text(long)) < table.SHORT_LIMIT + 10


def test_committed_table_is_rendered_from_committed_results():
    document = _committed()
    assert DOC_MD.read_text() == table.render_markdown(document), (
        "docs/coverage.md differs from what docs/coverage.json renders to: regenerate it with `make coverage`"
    )
    assert [row["name"] for row in document["families"]] == list(families.FAMILIES)
    assert document["columns"] == [cell.pair_key(*p) for p in matrix.all_pairs()]
    for row in document["families"]:
        assert set(row["cells"]) == set(document["columns"]), row["name"]
        for entry in row["cells"].values():
            assert entry["status"] in cell.STATUSES
            if entry["status"] in ("pass", "fail"):
                assert entry["max_abs_error"] is not None and entry["cosine"] is not None
            else:
                assert entry["reason"]
        if row["output_std"] is not None:  # every model that built gives non-degenerate outputs
            assert min(row["output_std"].values()) > cell.MIN_OUTPUT_STD, row["name"]


def _rerun(name, columns, workdir):
    """Re-runs `columns` of family `name` in this process; returns {column: entry}."""
    pairs = [tuple(c.split(" ", 1)) for c in columns]
    events = []
    cell.run_family(families.get_family(name), pairs, events.append, workdir)
    return {cell.pair_key(e["format"], e["precision"]): e for e in events if e["event"] == "cell"}


def _sample(passed, columns=("tflite int8", "onnx fp32", "tflite fp16", "onnx int8")):
    """One passed cell per column, each from another family, chosen by a fixed hash order;
    recurrent families (child processes, slower) are left to the slow test."""
    recurrent = {n for n, f in families.FAMILIES.items() if f.group == "recurrent"} | {"Masking"}
    order = sorted({n for n, _ in passed} - recurrent, key=lambda n: zlib.crc32(n.encode()))
    chosen, used = [], set()
    for column in columns:
        for name in order:
            if name not in used and (name, column) in passed:
                chosen.append((name, column))
                used.add(name)
                break
    return chosen


def test_a_sample_of_passed_cells_still_passes(tmp_path):
    sample = _sample(set(_passed_cells(_committed())))
    assert len(sample) == 4 and len({n for n, _ in sample}) == 4
    for name, column in sample:
        entry = _rerun(name, [column], tmp_path)[column]
        assert entry["status"] == "pass", (name, column, entry)


@pytest.mark.slow
def test_every_passed_cell_still_passes():
    by_family = {}
    for name, column in _passed_cells(_committed()):
        by_family.setdefault(name, []).append(column)
    broken = []
    for name, columns in by_family.items():
        row = matrix.run_family_isolated(families.get_family(name), [tuple(c.split(" ", 1)) for c in columns])
        broken += [f"{name}: {c} -> {table.cell_text(e)}" for c, e in row["cells"].items() if e["status"] != "pass"]
    assert not broken, "\n".join(broken)


CRASHING_FAMILY = '''
import os, signal
from pathlib import Path

import keras

from edgekeras.coverage.families import Family, uniform


class SegfaultOnce(keras.layers.Layer):
    """Identity; its get_config (which convert calls to hash the model) kills the process once."""

    def call(self, x):
        return x

    def get_config(self):
        marker = Path("crashed-once")
        if not marker.exists():
            marker.write_text("1")
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().get_config()


def build(x):
    return keras.layers.Dense(4)(SegfaultOnce()(keras.layers.Dense(8)(x)))


CRASH_ONCE = Family("crash once", "test", build, uniform("x", (6,)), "a layer that segfaults its process once")
'''


def test_a_crashed_converter_process_is_an_error_cell(tmp_path, monkeypatch):
    (tmp_path / "crashing_family.py").write_text(CRASHING_FAMILY)
    monkeypatch.chdir(tmp_path)
    family = families.get_family("crashing_family:CRASH_ONCE")
    row = matrix.run_family_isolated(family, [("tflite", "fp32"), ("onnx", "fp32")], timeout=600)
    crashed, survived = row["cells"]["tflite fp32"], row["cells"]["onnx fp32"]
    assert crashed["status"] == "error"
    assert table.cell_text(crashed) == "error: converter crashed (signal 11, SIGSEGV)"
    assert survived["status"] == "pass", survived


def test_bad_choices_are_input_errors(tmp_path):
    out = ["--out", str(tmp_path / "c.md")]
    for args, message in [
        (["--family", "Dens", *out], "Did you mean 'Dense'?"),
        (["--precision", "int4", *out], "Did you mean 'int8'?"),
        (["--format", "onnx", "--precision", "int16x8", *out], "no exporter combines"),
        (["--family", "no_such_module:X", *out], "importable module"),
        (["--family", "Dense", "--out", str(tmp_path / "table.txt")], "markdown file"),
    ]:
        result = invoke("coverage", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    (tmp_path / "mine.md").write_text("my notes\n")
    result = invoke(
        "coverage", "--family", "Dense", "--format", "onnx", "--precision", "fp32", "--out", tmp_path / "mine.md"
    )
    assert result.exit_code == 2 and "--force" in result.output
    assert (tmp_path / "mine.md").read_text() == "my notes\n"


def test_help_and_list_do_not_import_tensorflow():
    code = (
        "for args in (['coverage', '--help'], ['coverage', '--list']):\n"
        "    r = run_cli(*args)\n    assert r.exit_code == 0, r.output\n"
        "assert 'LSTM' in r.output and 'multi-input/multi-output' in r.output\n"
    )
    run_without_tensorflow(code)
