"""Planning a conversion: pure, fast, no TensorFlow — every option name checked before any work."""

import subprocess
import sys
from pathlib import Path

import pytest

from edgekeras.conversion_plan import plan_conversion
from edgekeras.errors import InputError


def test_default_plan_is_fp32_in_every_format():
    plan = plan_conversion()
    assert [(j.format, j.precision) for j in plan.jobs] == [("tflite", "fp32"), ("onnx", "fp32")]
    assert not plan.needs_calibration and plan.calibration_count == 0
    assert [p.name for p in plan.paths("out", "m")] == ["m-tflite-fp32.tflite", "m-onnx-fp32.onnx"]


def test_int8_plan_needs_calibration_and_names_files_after_the_recipe():
    plan = plan_conversion(formats=["onnx"], precisions=["fp32", "int8"], recipe="int8-percentile")
    assert [j.label for j in plan.jobs] == ["fp32", "int8-percentile"]
    assert plan.needs_calibration and plan.calibration_count >= 10
    assert plan.precisions == ["fp32", "int8"]


def test_explicit_calibration_count_overrides_every_recipe():
    plan = plan_conversion(precisions=["int8", "int16x8"], formats=["tflite"], calibration_samples=17)
    assert plan.calibration_count == 17
    assert {j.recipe.calibration["samples"] for j in plan.jobs} == {17}


def test_pairs_that_do_not_exist_are_skipped_unless_named():
    plan = plan_conversion(precisions=["int16x8"])
    assert [(j.format, j.precision) for j in plan.jobs] == [("tflite", "int16x8")]
    with pytest.raises(InputError, match="only tflite produces"):
        plan_conversion(formats=["onnx"], precisions=["int16x8"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precisions": ["fp61"]}, r"Did you mean 'fp16'"),
        ({"formats": ["tfilte"]}, r"Did you mean 'tflite'"),
        ({"recipe": "int8-percentil"}, r"int8-percentile"),
        ({"target": "x86-64-litrt"}, r"x86-64-litert"),
        ({"opset": 3}, r"opset"),
        ({"fixed_batch": 0}, r"positive integer"),
        ({"calibration_samples": -1}, r"positive integer"),
        ({"precisions": []}, r"at least one"),
        ({"int8_io": True}, r"--precision int8 with --int8-io"),
        ({"int8_io": True, "precisions": ["int8"], "formats": ["onnx"]}, r"--format tflite with --int8-io"),
    ],
)
def test_bad_options_are_refused_while_planning(kwargs, message):
    with pytest.raises(InputError, match=message):
        plan_conversion(**kwargs)


def test_target_implies_format_precision_and_tolerances():
    plan = plan_conversion(target="mcu-int8")
    assert {j.precision for j in plan.jobs} == {"int8"} and plan.target.name == "mcu-int8"
    assert all(j.format == "tflite" for j in plan.jobs)


def test_planning_imports_no_tensorflow():
    code = (
        "import sys\nfrom edgekeras.conversion_plan import plan_conversion\n"
        "plan_conversion(formats=['tflite', 'onnx'], precisions=['fp32', 'int8', 'fp16'], target=None)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]


def test_cli_refuses_an_unknown_precision_before_tensorflow_loads(tmp_path):
    # The model does not even exist: the option is checked first, in a fraction of a second.
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom edgekeras.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['convert', {str(tmp_path / 'm.keras')!r}, '--precision', 'fp61'])\n"
        "print(r.exit_code, 'tensorflow' in sys.modules)\nprint(r.output)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, *rest = r.stdout.splitlines()
    assert first == "2 False", r.stdout
    assert "Did you mean 'fp16'" in "\n".join(rest)
    assert not (Path(tmp_path) / "artifacts").exists()
