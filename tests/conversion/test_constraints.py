"""Target constraints as pure logic (`constraints.check_constraints`): each check on facts given
here, without an artifact, a model or TensorFlow. The end-to-end checks on real artifacts
(convert and bench with --target) are in test_targets.py."""

from __future__ import annotations

import pytest
from conftest import run_without_tensorflow

from edgekeras.constraints import CHECKS, COMMON_FACTS, ConstraintResult, check_constraints, formats_for
from edgekeras.errors import CheckFailed, ConstraintViolation
from edgekeras.formats import all_formats
from edgekeras.targets import CONSTRAINT_FIELDS, Target

# What a small int8 TFLite artifact's reader and manifest say (constraints.artifact_facts).
FACTS = {
    "artifact": "m-tflite-int8.tflite",
    "size_kb": 40.0,
    "precision": "int8",
    "ops": ["CONV_2D", "FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE"],
    "select_ops": [],
    "float_ops": ["QUANTIZE", "DEQUANTIZE"],
    "arena_kb": 12.5,
}


def _target(**constraints):
    return Target("board", "a test board", "tflite", "int8", "litert", constraints=constraints)


def _one(facts=FACTS, **constraint):
    [result] = check_constraints(_target(**constraint), facts, raise_on_failure=False)
    return result


def test_every_constraint_field_has_a_check_and_back():
    assert set(CHECKS) == set(CONSTRAINT_FIELDS)


@pytest.mark.parametrize(
    "constraint, limit, passed, value",
    [
        ("max_size_kb", 64, True, 40.0),
        ("max_size_kb", 40, True, 40.0),  # the limit itself is within it
        ("max_size_kb", 39.9, False, 40.0),
        ("max_arena_kb", 8, False, 12.5),
        ("allowed_precisions", ["int8", "int16x8"], True, "int8"),
        ("allowed_precisions", ["fp16"], False, "int8"),
        ("ops_allow", ["CONV_2D", "FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE", "SOFTMAX"], True, sorted(FACTS["ops"])),
        ("ops_deny", ["SOFTMAX"], True, []),
        ("ops_deny", ["QUANTIZE", "SOFTMAX"], False, ["QUANTIZE"]),
        ("no_select_ops", True, True, []),
        ("int8_only", True, False, FACTS["float_ops"]),
    ],
)
def test_each_check_compares_its_fact_with_the_limit(constraint, limit, passed, value):
    result = _one(**{constraint: limit})
    assert (result.name, result.limit, result.passed, result.value) == (constraint, limit, passed, value)


def test_failures_say_what_broke_the_limit():
    assert _one(ops_allow=["CONV_2D"]).detail == "not allowed: DEQUANTIZE, FULLY_CONNECTED, QUANTIZE"
    assert _one(ops_deny=["CONV_2D"]).detail == "denied ops present: CONV_2D"
    assert _one(int8_only=True).detail == "ops computing in float"
    assert _one({**FACTS, "select_ops": ["FlexMatrixInverse"]}, no_select_ops=True).detail == (
        "needs TensorFlow select ops"
    )
    # sizes are said the way every table says them (units.format_size), the limit too
    assert _one(max_size_kb=32).detail == "40.0 KiB against 32.0 KiB"
    text = str(_one(max_size_kb=32))
    assert text.startswith("max_size_kb: 40.0 (limit 32) VIOLATED") and "KiB" in text
    assert str(_one(max_size_kb=64)).startswith("max_size_kb: 40.0 (limit 64) ok")


def test_values_are_rounded_and_latency_waits_for_a_benchmark():
    assert _one({**FACTS, "size_kb": 40.123456}, max_size_kb=64).value == 40.123
    target = _target(max_p50_ms=5.0, max_size_kb=64)
    assert [r.name for r in check_constraints(target, FACTS)] == ["max_size_kb"]  # no p50 before bench
    [p50] = check_constraints(target, {**FACTS, "p50_ms": 7.25}, raise_on_failure=False, only=["max_p50_ms"])
    assert (p50.passed, p50.value, p50.limit) == (False, 7.25, 5.0)


def test_unset_and_false_constraints_are_not_checked():
    assert check_constraints(_target(int8_only=False, max_size_kb=None, no_select_ops=False), FACTS) == []


def test_a_fact_the_format_does_not_give_is_skipped():
    onnx_facts = {k: v for k, v in FACTS.items() if k not in ("arena_kb", "float_ops")}
    assert check_constraints(_target(max_arena_kb=1, int8_only=True), onnx_facts) == []


def test_violations_raise_one_error_listing_every_failing_check():
    target = _target(max_size_kb=8, int8_only=True, ops_deny=["SOFTMAX"])
    with pytest.raises(ConstraintViolation) as info:
        check_constraints(target, FACTS)
    error = info.value
    assert isinstance(error, CheckFailed)  # exit 1 on the CLI: the artifact, not the input, is at fault
    text = str(error)
    assert "Not within the constraints of target 'board'" in text
    assert "m-tflite-int8.tflite: max_size_kb: 40.0 (limit 8) VIOLATED" in text
    assert "int8_only" in text and "ops_deny" not in text  # passing checks are not listed
    [(path, results)] = error.violations
    assert path == "m-tflite-int8.tflite" and [r.passed for r in results] == [False, False, True]


def test_results_serialize_for_the_manifest():
    assert ConstraintResult("max_size_kb", 40.0, 32, False, "x").to_dict() == {
        "name": "max_size_kb",
        "value": 40.0,
        "limit": 32,
        "passed": False,
        "detail": "x",
    }


def test_format_only_constraints_follow_the_format_records():
    every = sorted(all_formats())
    for name, (fact, _) in CHECKS.items():
        if fact in COMMON_FACTS:
            assert sorted(formats_for(name)) == every, name
        else:
            assert formats_for(name) == [f.name for f in all_formats().values() if fact in f.facts], name
    assert formats_for("max_arena_kb") == ["tflite"] and formats_for("int8_only") == ["tflite"]


def test_constraints_import_no_tensorflow():
    run_without_tensorflow(
        "from edgekeras.constraints import check_constraints\nfrom edgekeras.targets import get_target\n"
        "check_constraints(get_target('mcu-int8'), {'size_kb': 1.0, 'precision': 'int8', 'ops': [],"
        " 'select_ops': [], 'float_ops': [], 'arena_kb': 1.0})\n"
    )
