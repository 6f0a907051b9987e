"""Tolerances as pure logic: each precision's limits (`precisions.PRECISIONS`), overrides and
their errors, and how `validation._judge` holds a measured output to them — numbers given
here, no model, no artifact, no TensorFlow. test_validation.py covers which checks each
output kind gets; test_quantize_recipes.py and test_targets.py the overrides end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import run_without_tensorflow

from edgekeras.errors import InputError
from edgekeras.precisions import PRECISIONS, Tolerance, check_tolerance, get_precision
from edgekeras.quantize_recipes import recipe_names
from edgekeras.validation import CHECKS, OutputParity, _judge, compare

LIMITS = [f.name for f in dataclasses.fields(Tolerance)]
# Which way each limit points: a larger `max_*` and a smaller `min_*` are looser.
LOOSER = {name: (lambda a, b: a >= b) if name.startswith("max_") else (lambda a, b: a <= b) for name in LIMITS}


def test_every_check_reads_a_tolerance_field():
    assert {check.tolerance for check in CHECKS.values()} == set(LIMITS)
    assert all(check.comparison == ("<=" if check.tolerance.startswith("max_") else ">=") for check in CHECKS.values())


def test_fp32_is_the_strictest_precision_on_every_limit():
    fp32 = PRECISIONS["fp32"].tolerance
    assert all(getattr(fp32, name) is not None for name in LIMITS)  # fp32 sets every limit
    for precision in PRECISIONS.values():
        for name in LIMITS:
            limit = getattr(precision.tolerance, name)
            # None: the check does not apply at this precision (looser than any limit)
            assert limit is None or LOOSER[name](limit, getattr(fp32, name)), (precision.name, name)


def test_calibrated_precisions_and_default_recipes():
    assert sorted(p.name for p in PRECISIONS.values() if p.needs_calibration) == ["auto", "int16x8", "int8"]
    shipped = set(recipe_names())
    for precision in PRECISIONS.values():
        assert precision.default_recipe is None or precision.default_recipe in shipped, precision.name
        assert precision.if_failed, precision.name  # every failure says what to try
        assert precision.tolerance.min_cosine is not None  # every artifact is held to a cosine
    assert [p.name for p in PRECISIONS.values() if p.takes_quantization_aware] == ["int8"]


def test_overrides_replace_only_their_keys():
    base = get_precision("int8").tolerance
    merged = base.merged({"max_metric_ratio": 1.3, "max_abs_error": 0.5})
    assert (merged.max_metric_ratio, merged.max_abs_error, merged.min_cosine) == (1.3, 0.5, base.min_cosine)
    assert base.max_metric_ratio == 1.10 and base.max_abs_error is None  # the precision's own is unchanged
    assert base.to_dict() == {k: v for k, v in dataclasses.asdict(base).items() if v is not None}
    assert "max_abs_error" not in base.to_dict()


def test_unknown_override_names_the_closest_key():
    with pytest.raises(
        InputError, match=r"Expected a tolerance key in .*Received: 'min_cosin'\. Did you mean 'min_cosine'"
    ):
        Tolerance().merged({"min_cosin": 0.9})


@pytest.mark.parametrize(
    "mapping, message",
    [
        ([0.9], r"Expected 'tolerance' to be a mapping of tolerance keys\. Received: \[0\.9\]"),
        ({"max_relative_eror": 0.1}, r"'tolerance': .*Did you mean 'max_relative_error'"),
        ({"min_cosine": "high"}, r"Expected 'tolerance\.min_cosine' to be a number\. Received: 'high'"),
        ({"min_cosine": True}, r"Expected 'tolerance\.min_cosine' to be a number\. Received: True"),
    ],
)
def test_bad_tolerance_mappings_are_input_errors(mapping, message):
    with pytest.raises(InputError, match=message):
        check_tolerance(mapping, "tolerance")


def test_good_tolerance_mappings_pass_through():
    assert check_tolerance(None, "tolerance") == {}
    given = {"min_cosine": 0.95, "max_metric_ratio": 2}
    checked = check_tolerance(given, "tolerance")
    assert checked == given and checked is not given


def test_unknown_precision_suggests_the_closest():
    with pytest.raises(InputError, match=r"--precision.*Did you mean 'fp16'"):
        get_precision("fp61")


# --------------------------------------------------------------------------- judging an output


def _parity(reference_range=1.0, **measured):
    parity = OutputParity("out", max_abs_error=0.0, mean_abs_error=0.0, cosine=1.0, reference_range=reference_range)
    return dataclasses.replace(parity, **measured)


def test_max_abs_error_is_scaled_by_the_reference_range_above_one():
    tol = Tolerance(max_abs_error=1e-4)
    wide = _parity(reference_range=50.0, max_abs_error=4e-3)  # a logit output spanning 50
    assert _judge(wide, ["max_abs_error"], tol) == []
    assert wide.checks == [
        {"check": "max_abs_error", "value": 4e-3, "limit": pytest.approx(5e-3), "comparison": "<=", "passed": True}
    ]
    narrow = _parity(reference_range=0.2, max_abs_error=4e-3)  # a softmax: the limit stays 1e-4
    [failure] = _judge(narrow, ["max_abs_error"], tol)
    assert narrow.checks[0]["limit"] == 1e-4
    assert str(failure) == "output 'out': max_abs_error = 0.004, expected <= 0.0001"


def test_limits_are_inclusive_and_point_the_right_way():
    tol = Tolerance(min_cosine=0.98, min_top1_agreement=0.95, max_relative_error=0.1)
    at_limits = _parity(cosine=0.98, top1_agreement=0.95, relative_error=0.1)
    assert _judge(at_limits, ["cosine", "top1_agreement", "relative_error"], tol) == []
    below = _parity(cosine=0.97, top1_agreement=0.9, relative_error=0.11)
    failures = _judge(below, ["cosine", "top1_agreement", "relative_error"], tol)
    assert [str(f) for f in failures] == [
        "output 'out': cosine = 0.97, expected >= 0.98",
        "output 'out': top1_agreement = 0.9, expected >= 0.95",
        "output 'out': relative_error = 0.11, expected <= 0.1",
    ]


def test_accuracy_drop_is_judged_in_points_lost():
    tol = Tolerance(max_accuracy_drop=2.0)
    assert _judge(_parity(accuracy_delta=+1.5, labels="y"), ["accuracy_drop"], tol) == []  # a gain passes
    lost = _parity(accuracy_delta=-2.5, labels="y")
    [failure] = _judge(lost, ["accuracy_drop"], tol)
    assert lost.checks[0]["value"] == 2.5
    assert str(failure) == "output 'out': accuracy_drop_points = 2.5, expected <= 2"


def test_skipped_checks_say_why():
    tol = Tolerance(min_top1_agreement=0.95, max_metric_ratio=1.1)
    unlabelled = _parity()
    _judge(unlabelled, ["top1_agreement", "metric_ratio", "accuracy_drop"], tol)
    assert unlabelled.checks == [
        {"check": "top1_agreement", "skipped": "not measured"},  # not a classifier output
        {"check": "metric_ratio", "skipped": "no labels for this output"},
        {"check": "accuracy_drop", "skipped": "no labels for this output"},
    ]
    labelled = _parity(labels="y_price", metric="mae", metric_ratio=1.05, cosine=0.5)
    assert _judge(labelled, ["metric_ratio", "cosine"], tol) == []  # no min_cosine limit: not judged
    assert labelled.checks[1] == {"check": "cosine", "value": 0.5, "skipped": "no min_cosine limit"}


def test_compare_measures_what_the_limits_are_checked_on():
    reference = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]], dtype=np.float32)
    actual = reference + np.array([[0.0, 0.0], [0.0, 0.0], [0.2, -0.2]], dtype=np.float32)  # last one flips
    parity = compare("probs", reference, actual)
    assert parity.max_abs_error == pytest.approx(0.2) and parity.reference_range == pytest.approx(0.8)
    assert parity.top1_agreement == pytest.approx(2 / 3)
    assert 0.9 < parity.cosine < 1.0
    single = compare("price", np.array([[1.0], [2.0]]), np.array([[1.0], [2.0]]))
    assert single.top1_agreement is None and single.cosine == pytest.approx(1.0)


def test_tolerances_import_no_tensorflow():
    out = run_without_tensorflow(
        "from edgekeras.precisions import PRECISIONS\nfrom edgekeras.validation import _judge, compare\n"
        "print(*sorted(PRECISIONS))\n"
    )
    assert out.split() == sorted(PRECISIONS), out
