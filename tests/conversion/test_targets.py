"""Deployment targets: the shipped YAMLs, --target on convert and bench, constraint checks."""

import json

import pytest
import yaml
from conftest import invoke, run_without_tensorflow

from edgekeras.errors import InputError
from edgekeras.targets import get_target, list_targets

REQUIRED = {
    "x86-64-litert",
    "x86-64-onnxruntime",
    "rpi4-arm64",
    "edgetpu",
    "nvidia-gpu-cuda",
    "nvidia-gpu-tensorrt",
    "intel-openvino",
    "mcu-int8",
}


def test_shipped_targets_load_and_list():
    targets = {t.name: t for t in list_targets()}
    assert set(targets) >= REQUIRED
    assert targets["edgetpu"].constraints["int8_only"] and targets["edgetpu"].io_dtype == "int8"
    assert targets["mcu-int8"].constraints["max_size_kb"] and targets["mcu-int8"].constraints["max_arena_kb"]
    assert targets["nvidia-gpu-cuda"].provider == "CUDAExecutionProvider"
    assert targets["rpi4-arm64"].threads == 4
    code = "r = run_cli('targets')\nassert r.exit_code == 0, r.output\nprint(r.output)\n"
    out = run_without_tensorflow(code, heavy=("tensorflow",))
    for name in REQUIRED:
        assert name in out
    assert targets["mcu-int8"].description in out


def test_target_schema_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "description": "x",
                "format": "tflite",
                "precision": "int8",
                "runtime": "litert",
                "constraints": {"max_size_k": 10},
            }
        )
    )
    with pytest.raises(InputError, match="Did you mean 'max_size_kb'"):
        get_target(str(bad))
    bad.write_text(yaml.safe_dump({"description": "x", "format": "onnx", "precision": "int8", "runtime": "litert"}))
    with pytest.raises(InputError, match="runtime that runs onnx"):
        get_target(str(bad))
    bad.write_text(
        yaml.safe_dump(
            {
                "description": "x",
                "format": "onnx",
                "precision": "int8",
                "runtime": "onnxruntime",
                "constraints": {"int8_only": True},
            }
        )
    )
    with pytest.raises(InputError, match="only on tflite targets"):
        get_target(str(bad))
    r = invoke("targets", "edgetpuu")
    assert r.exit_code == 2 and "Did you mean 'edgetpu'?" in r.output


def test_convert_for_mcu_records_constraints(digits_run, tmp_path):
    r = invoke("convert", digits_run.path, "--target", "mcu-int8", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.describe()
    (art,) = r.json()["artifacts"]
    assert (art["format"], art["precision"], art["target"]) == ("tflite", "int8", "mcu-int8")
    assert {i["dtype"] for i in art["inputs"]} == {"float32"}  # the Keras side; the file itself takes int8
    checks = {c["name"]: c for c in art["constraints"]}
    assert set(checks) == {"max_size_kb", "no_select_ops", "int8_only", "max_arena_kb"}
    assert all(c["passed"] for c in checks.values())
    assert checks["int8_only"]["value"] == []  # int8 I/O: no QUANTIZE/DEQUANTIZE in float
    assert 0 < checks["max_arena_kb"]["value"] < 64
    assert art["validation"]["passed"]


def test_constraint_violations_exit_1_and_name_limits(digits_run, tmp_path):
    tiny = tmp_path / "tiny-mcu.yaml"
    tiny.write_text(
        yaml.safe_dump(
            {
                "description": "a board with 8 KB of flash",
                "format": "tflite",
                "precision": "fp32",
                "runtime": "litert",
                "constraints": {"max_size_kb": 8, "int8_only": True},
            }
        )
    )
    r = invoke("convert", digits_run.path, "--target", tiny, "--out", tmp_path / "out")
    assert r.exit_code == 1, r.describe()
    assert "max_size_kb" in r.output and "limit 8" in r.output and "int8_only" in r.output
    assert "CONV_2D" in r.output  # the float ops are named
    manifest = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert manifest["target"] == "tiny-mcu" and not all(c["passed"] for c in manifest["constraints"])


def test_target_conflicts_with_explicit_format(digits_run, tmp_path):
    r = invoke("convert", digits_run.path, "--target", "mcu-int8", "--format", "onnx", "--out", tmp_path)
    assert r.exit_code == 2 and "--format" in r.output and "mcu-int8" in r.output
    assert not any(tmp_path.iterdir())


def test_bench_with_target_checks_latency(digits_run, tmp_path):
    import shutil

    art = next(a for a in digits_run.artifacts if (a.format, a.precision) == ("onnx", "fp32"))
    shutil.copy(art.path, tmp_path / art.path.name)
    shutil.copy(art.manifest_path, tmp_path / art.manifest_path.name)
    fast = tmp_path / "fast.yaml"
    fast.write_text(
        yaml.safe_dump(
            {
                "description": "needs 1 ns",
                "format": "onnx",
                "precision": "fp32",
                "runtime": "onnxruntime",
                "threads": 1,
                "constraints": {"max_p50_ms": 1e-6},
            }
        )
    )
    r = invoke("bench", tmp_path / art.path.name, "--target", fast, "--runs", "10")
    assert r.exit_code == 1, r.describe()
    assert "max_p50_ms" in r.output
    manifest = json.loads((tmp_path / art.manifest_path.name).read_text())
    p50 = {c["name"]: c for c in manifest["constraints"]}["max_p50_ms"]
    assert p50["passed"] is False and p50["value"] > 0
    assert manifest["benchmarks"][-1]["threads"] == 1  # the target's threads were used

    r = invoke("bench", tmp_path / art.path.name, "--target", "x86-64-onnxruntime", "--runs", "10")
    assert r.exit_code == 0, r.describe()
