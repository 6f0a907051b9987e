"""The keras.applications table (`edgekeras coverage --applications`): produced by the code,
and still true.

- docs/applications.md must equal what the renderer makes of docs/applications.json, and the
  JSON must list every architecture this Keras ships (found from Keras, not from a list).
- One small row (MobileNetV3Small, fp32 in both formats) is converted again and must match
  its JSON row; the slow suite re-runs a few more, ConvNeXt included.
- The memory watchdog stops a conversion above its limit and records it as not converted.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, invoke, run_without_tensorflow

from edgekeras.coverage import applications, applications_table, cell, families, matrix, memory, table

DOC_MD = REPO / "docs" / "applications.md"
DOC_JSON = REPO / "docs" / "applications.json"


def _committed():
    document = table.load_document(DOC_JSON)
    assert document is not None, "docs/applications.json is missing: run `make applications`"
    return document


def _row(document, name):
    return next(r for r in document["applications"] if r["name"] == name)


def test_committed_table_is_rendered_from_committed_results():
    document = _committed()
    assert DOC_MD.read_text() == applications_table.render_markdown(document), (
        "docs/applications.md differs from what docs/applications.json renders to: rerun `make applications`"
    )
    assert document["generated_by"] == applications_table.GENERATED_BY
    expected = [cell.pair_key(f, p) for f in ("tflite", "onnx") for p in applications.PRECISIONS]
    assert document["columns"] == expected
    names = [d["name"] for d in document["discovered"]]
    for row in document["applications"]:
        assert row["name"] in names
        # fp32 in both formats for every row (what every architecture must show); fp16/int8 where run
        assert {"tflite fp32", "onnx fp32"} <= set(row["cells"]) <= set(expected), row["name"]
        for entry in row["cells"].values():
            assert entry["status"] in cell.STATUSES
            if entry["status"] in ("pass", "fail"):
                assert entry["max_abs_error"] is not None and entry["cosine"] is not None and entry["size_bytes"]
            else:
                assert entry["reason"]
        if row["output_std"] is not None:  # BN statistics set: no degenerate reference
            assert min(row["output_std"].values()) > cell.MIN_OUTPUT_STD, row["name"]


def test_enumeration_finds_every_keras_applications_constructor():
    import keras

    found = applications.discover()
    # Independently: every public callable of keras.applications that builds a keras.Model.
    constructors = {
        name
        for name in dir(keras.applications)
        if not name.startswith("_")
        and not inspect.ismodule(getattr(keras.applications, name))
        and callable(getattr(keras.applications, name))
        and inspect.signature(getattr(keras.applications, name)).parameters.keys() >= {"weights", "classes"}
    }
    assert set(found) == constructors
    assert len(found) >= 38 and {"ConvNeXtXLarge", "EfficientNetV2L", "NASNetLarge", "MobileNetV3Small"} <= set(found)
    assert [d["name"] for d in _committed()["discovered"]] == list(found), "the table misses architectures"
    # Sizes come from Keras' own refusals; these are the documented ones.
    sizes = {n: d["min_size"] for n, d in found.items()}
    assert sizes["InceptionV3"] == sizes["InceptionResNetV2"] == 75 and sizes["Xception"] == 71
    assert sizes["ResNet50"] == sizes["ConvNeXtTiny"] == sizes["NASNetMobile"] == 32
    for info in found.values():
        preprocess = getattr(keras.applications, info["module"]).preprocess_input
        assert callable(preprocess)
        with pytest.raises(ValueError, match=f"at least {info['min_size']}x{info['min_size']}"):
            getattr(keras.applications, info["name"])(
                weights=None, input_shape=(info["min_size"] - 1,) * 2 + (3,), classes=10
            )


def test_inputs_look_like_images_for_the_architecture():
    """Digits upscaled to RGB, through the network's own preprocess_input: VGG ('caffe':
    BGR, mean subtracted), MobileNetV2 ('tf': [-1, 1]), EfficientNet (none: 0..255)."""
    import numpy as np

    rng = np.random.default_rng(0)
    vgg = applications.digit_images(32, "vgg16")(rng, 8)["image"]
    mobile = applications.digit_images(32, "mobilenet_v2")(rng, 8)["image"]
    efficient = applications.digit_images(32, "efficientnet")(rng, 8)["image"]
    assert vgg.shape == mobile.shape == efficient.shape == (8, 32, 32, 3) and vgg.dtype == np.float32
    assert efficient.min() == 0.0 and 200 < efficient.max() <= 255
    assert mobile.min() == -1.0 and mobile.max() > 0.5
    assert vgg.min() < -100 and vgg.max() > 50
    assert not np.allclose(efficient[..., 0], efficient[..., 1])  # tinted: channels differ


def test_an_application_family_may_take_a_larger_input_than_the_tables():
    """benchmarks/auto_precision.py --size: the same family, images and BatchNormalization pass at
    another size (the table's own, Keras' smallest, by default)."""
    import numpy as np

    info = {"name": "MobileNetV2", "module": "mobilenet_v2", "min_size": 32}
    assert "at 32x32x3" in applications.family("MobileNetV2", info).description
    larger = applications.family("MobileNetV2", info, size=64)
    assert "at 64x64x3" in larger.description
    assert larger.inputs(np.random.default_rng(0), 2)["image"].shape == (2, 64, 64, 3)


def test_cell_text_follows_the_entry():
    base = {"format": "onnx", "max_abs_error": 3.1e-06, "cosine": 0.99999, "size_bytes": 9_412_000, "reason": None}
    assert (
        applications_table.cell_text({**base, "precision": "fp32", "status": "pass"}) == "pass, 8.98 MiB, err 3.1e-06"
    )
    failed = {
        **base,
        "precision": "int8",
        "status": "fail",
        "cosine": 0.67213,
        "size_bytes": 812_000,
        "failed_checks": [{"metric": "cosine", "value": 0.67213}],
    }
    assert applications_table.cell_text(failed) == "fail, 793.0 KiB, cos 0.6721"
    over = matrix._over_memory(("onnx", "fp32"), 6 * memory.GB)
    assert applications_table.cell_text(over) == "not converted: needed > 6.00 GiB"
    assert applications_table.cell_text(None) == "not run yet"
    refused = {
        **base,
        "precision": "fp32",
        "status": "unsupported",
        "reason": "Expected an ONNX graph of ONNX operators. Received: TensorFlow ops tf2onnx cannot convert: "
        "Erfc (layers: block_1); ONNX Runtime would refuse the file. Use --format tflite.",
    }
    assert applications_table.cell_text(refused) == "n/a: tf2onnx cannot convert Erfc (block_1)"


def _tiny_document():
    discovered = [{"name": "A", "module": "m", "min_size": 32}, {"name": "B", "module": "m", "min_size": 75}]
    entry = {"format": "tflite", "precision": "fp32", "max_abs_error": 1e-6, "cosine": 1.0, "size_bytes": 1000}
    return {
        "generated_by": applications_table.GENERATED_BY,
        "date": "2026-12-03",
        "discovered": discovered,
        "columns": ["tflite fp32"],
        "memory_limit_bytes": 6 * memory.GB,
        "applications": [
            {
                "name": "A",
                "params": 1234,
                "cells": {"tflite fp32": {**entry, "status": "unsupported", "reason": "why " * 50}},
            }
        ],
    }


def test_rendered_table_lists_every_architecture_and_the_whole_reasons():
    text = applications_table.render_markdown(_tiny_document())
    assert "| B | 75×75 | — | not run yet |" in text
    assert "**2 architectures (1 of 2 run so far)" in text
    assert ("why " * 50).strip() in text  # the whole reason, under *Not converted*


def test_watchdog_stops_a_conversion_above_the_memory_limit():
    """A child holding more than the limit (TensorFlow alone takes ~700 MB) is stopped with
    everything it started, and its cells say so instead of passing or crashing."""
    row = matrix.run_family_isolated(
        families.get_family("Dense"), [("tflite", "fp32"), ("onnx", "fp32")], timeout=600, memory_limit=300 * 1024**2
    )
    assert row["peak_rss_bytes"] > 300 * 1024**2
    for entry in row["cells"].values():
        assert entry["status"] == "memory", entry
        assert table.cell_text(entry) == "not converted: needed > 300.00 MiB"


def test_tree_rss_counts_the_children_too():
    code = "import time; b = b'x' * (150 * 2**20); time.sleep(30)"  # touched pages: resident
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])"]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and memory.tree_rss(parent.pid) < 150 * 2**20:
            time.sleep(0.2)
        assert len(memory.tree_pids(parent.pid)) == 2
        assert memory.tree_rss(parent.pid) >= 150 * 2**20
    finally:
        for pid in reversed(memory.tree_pids(parent.pid)):
            os.kill(pid, signal.SIGKILL)
        parent.wait()


def _rerun(name, pairs, tmp_path):
    """Re-runs `pairs` of application `name` in this process; returns (family event, {column: entry})."""
    events = []
    cell.run_family(applications.family(name), pairs, events.append, tmp_path)
    cells = {cell.pair_key(e["format"], e["precision"]): e for e in events if e["event"] == "cell"}
    return next(e for e in events if e["event"] == "family"), cells


def _same_result(recorded, now):
    assert now["status"] == recorded["status"], (recorded, now)
    if recorded["status"] in ("pass", "fail"):
        assert abs(now["size_bytes"] - recorded["size_bytes"]) <= 0.01 * recorded["size_bytes"]
        if recorded["precision"] in ("fp32", "fp16"):  # float kernels: the same cosine to 3 decimals
            assert abs(now["cosine"] - recorded["cosine"]) < 1e-3, (recorded, now)
        else:  # calibration is deterministic; the runtimes' int8 kernels are not bit-exact across CPUs
            assert abs(now["cosine"] - recorded["cosine"]) < 0.02, (recorded, now)


def test_a_small_row_converts_as_recorded(tmp_path):
    recorded = _row(_committed(), "MobileNetV3Small")
    family, cells = _rerun("MobileNetV3Small", [("tflite", "fp32"), ("onnx", "fp32")], tmp_path)
    std, was = family["output_std"]["predictions"], recorded["output_std"]["predictions"]
    assert abs(std - was) < 1e-3 * was, "the same seed and inputs must build the same reference"
    for column in ("tflite fp32", "onnx fp32"):
        _same_result(recorded["cells"][column], cells[column])
        assert cells[column]["status"] == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ConvNeXtTiny", "EfficientNetV2B0", "InceptionV3"])
def test_more_rows_convert_as_recorded(name):
    """ConvNeXt (grouped convolutions, exact GELU), EfficientNetV2 (preprocessing inside the
    model: validated on 0..255 images), InceptionV3 (75x75): every column, in a child process
    under the memory watchdog, as the table says."""
    document = _committed()
    recorded = _row(document, name)
    pairs = [tuple(c.split(" ", 1)) for c in recorded["cells"] if recorded["cells"][c]["status"] != "memory"]
    limit = document["memory_limit_bytes"]  # the limit the table was made under (ConvNeXt's ONNX needs > 10 GB)
    row = matrix.run_family_isolated(applications.family(name), pairs, memory_limit=limit, niceness=19)
    for column, entry in row["cells"].items():
        _same_result(recorded["cells"][column], entry)
    for column in ("tflite fp32", "onnx fp32"):
        assert row["cells"][column]["status"] == "pass", row["cells"][column]


def test_bad_choices_are_input_errors(tmp_path):
    out = ["--out", str(tmp_path / "a.md")]
    for args, message in [
        (["--applications", "--only", "ResNet5O", *out], "Did you mean 'ResNet50'?"),
        (["--applications", "--family", "Dense", *out], "--only NAME"),
        (["--only", "ResNet50", *out], "--applications"),
        (["--applications", "--memory-limit", "0", *out], "positive number of GB"),
        (["--applications", "--precision", "int16x8", *out], "no exporter combines"),
    ]:
        result = invoke("coverage", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "a.md").exists()


def test_help_does_not_import_tensorflow():
    code = (
        "r = run_cli('coverage', '--help')\nassert r.exit_code == 0, r.output\n"
        "assert '--applications' in r.output and '--memory-limit' in r.output\n"
        "import edgekeras.coverage.applications_run, edgekeras.coverage.applications_table\n"
    )
    run_without_tensorflow(code)


def test_fp32_error_within_the_references_own_float32_floor_passes_and_says_so():
    """An fp32 cell failing only on error size passes when within FLOOR_FACTOR x what Keras shows
    against itself (eager vs XLA), cosine included; other precisions and bigger errors stay failed."""
    floor = {"max_abs_error": 20.0, "relative_error": 0.002, "cosine": 0.99995}

    def failed(precision, *checks):
        return {
            "format": "tflite",
            "precision": precision,
            "status": "fail",
            "max_abs_error": checks[0][1],
            "cosine": 0.99999,
            "size_bytes": 1024,
            "failed_checks": [{"metric": m, "value": v} for m, v in checks],
        }

    within = failed("fp32", ("max_abs_error", 59.0), ("relative_error", 0.005))
    beyond = failed("fp32", ("max_abs_error", 61.0))
    cosine = failed("fp32", ("max_abs_error", 1.0), ("cosine", 0.99))  # 1 - cos: 0.01 > 3 x 5e-5
    close = failed("fp32", ("max_abs_error", 50.0), ("cosine", 0.99987))  # 1.3e-4 <= 1.5e-4
    fp16 = failed("fp16", ("max_abs_error", 1.0))
    asked = []
    cell.judge_by_floor([within, beyond, cosine, close, fp16], lambda: asked.append(1) or floor)
    assert asked == [1]  # computed once, only because some fp32 cell needed it
    assert within["status"] == "pass" and within["passed_at_floor"] and within["reference_floor"] == floor
    assert close["status"] == "pass"
    assert [beyond["status"], cosine["status"], fp16["status"]] == ["fail", "fail", "fail"]
    assert applications_table.cell_text(within) == "pass, 1.0 KiB, err 59 (Keras floor 20)"
    healthy = {**within, "status": "pass", "failed_checks": []}
    healthy.pop("passed_at_floor")
    cell.judge_by_floor([healthy], lambda: pytest.fail("no floor needed for a passing cell"))
