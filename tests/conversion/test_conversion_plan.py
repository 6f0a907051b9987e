"""Planning a conversion: pure, fast, no TensorFlow — every option name checked before any work."""

from pathlib import Path

import pytest
from conftest import run_without_tensorflow

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


def test_target_implies_format_precision_and_tolerances(tmp_path):
    plan = plan_conversion(target="mcu-int8")
    assert {j.precision for j in plan.jobs} == {"int8"} and plan.target.name == "mcu-int8"
    assert all(j.format == "tflite" for j in plan.jobs)
    # mcu-int8 implies int8 I/O and batch 1: the file name says so, the plan carries the batch
    assert [p.name for p in plan.paths("out", "m")] == ["m-tflite-int8-int8io.tflite"]
    assert plan.fixed_batch == 1 and plan.jobs[0].recipe.io_dtype == "int8"

    board = tmp_path / "board.yaml"
    board.write_text(
        "description: a board that accepts a larger int8 error\nformat: onnx\nprecision: int8\n"
        "runtime: onnxruntime\ntolerances: {int8: {max_metric_ratio: 1.3}}\n"
    )
    [job] = plan_conversion(target=str(board), recipe="int8-percentile").jobs
    assert (job.format, job.label) == ("onnx", "int8-percentile")
    assert job.recipe.tolerance["max_metric_ratio"] == 1.3  # the target's, over the recipe's own


def test_explicit_choices_must_agree_with_the_target():
    with pytest.raises(InputError, match=r"Expected --format \['tflite'\] for target 'mcu-int8'"):
        plan_conversion(target="mcu-int8", formats=["onnx"])
    with pytest.raises(InputError, match=r"Expected --batch-size 1 for target 'mcu-int8'"):
        plan_conversion(target="mcu-int8", fixed_batch=4)
    plan = plan_conversion(target="mcu-int8", formats="tflite", precisions=["int8"], fixed_batch=1)
    assert [(j.format, j.precision) for j in plan.jobs] == [("tflite", "int8")]


def test_a_recipe_picks_its_precision_and_formats_and_options_reach_the_plan():
    plan = plan_conversion(recipe="int8-u8s8", opset=17, allow_select_ops=True, validate=False)
    assert [(j.format, j.label) for j in plan.jobs] == [("onnx", "int8-u8s8")]  # the recipe's formats
    assert (plan.opset, plan.allow_select_ops, plan.validate) == (17, True, False)
    assert plan.calibration_count == 200 and plan.calibration_scale is None
    fp16 = plan_conversion(recipe="fp16")  # a precision every format has: every format
    assert [(j.format, j.precision, j.label) for j in fp16.jobs] == [
        ("tflite", "fp16", "fp16"),
        ("onnx", "fp16", "fp16"),
    ]
    assert [(j.format, j.precision) for j in plan_conversion(recipe="int16x8").jobs] == [("tflite", "int16x8")]
    default = plan_conversion(precisions=["int8"], formats=["tflite"]).jobs[0]
    assert default.label == "int8" and default.recipe.name == "int8-default"  # the default recipe: no tag


def test_planning_imports_no_tensorflow():
    out = run_without_tensorflow(
        "from edgekeras.conversion_plan import plan_conversion\n"
        "plan = plan_conversion(formats=['tflite', 'onnx'], precisions=['fp32', 'int8', 'fp16'], target=None)\n"
        "print(len(plan.jobs), plan.needs_calibration)\n"
    )
    assert out.split() == ["6", "True"], out


def test_cli_refuses_an_unknown_precision_before_tensorflow_loads(tmp_path):
    # The model does not even exist: the option is checked first, in a fraction of a second.
    out = run_without_tensorflow(
        f"r = run_cli('convert', {str(tmp_path / 'm.keras')!r}, '--precision', 'fp61')\nprint(r.exit_code)\nprint(r.output)",
    )
    first, *rest = out.splitlines()
    assert first == "2", out
    assert "Did you mean 'fp16'" in "\n".join(rest)
    assert not (Path(tmp_path) / "artifacts").exists()
