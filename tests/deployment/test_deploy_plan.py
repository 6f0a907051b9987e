"""`deploy`'s planning and verdicts, and its bad-input errors: no model is loaded, no TensorFlow."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from conftest import assert_bad_input, invoke

from edgekeras.deployment.candidates import KINDS, QAT, Candidate, Sources, propose
from edgekeras.deployment.measure import Row
from edgekeras.deployment.sites import Site, pair_sites
from edgekeras.deployment.verdict import Budget, judge
from edgekeras.errors import InputError
from edgekeras.precisions import get_precision
from edgekeras.quantize_recipes import default_recipe
from edgekeras.remote import SSHDevice
from edgekeras.targets import get_target, list_targets


@pytest.mark.parametrize("name", ["mcu-int8", "edgetpu"])
def test_a_target_that_forbids_float_ops_never_yields_a_float_candidate(name):
    budget = (("max_accuracy_drop", 0.5),)  # auto would keep layers in float: refused too
    proposal = propose(get_target(name), Sources(models=("model", QAT), budget=budget))
    assert proposal.candidates, "an int8-only target still has int8 candidates"
    assert all(get_precision(c.precision).needs_calibration for c in proposal.candidates)
    assert {c.precision for c in proposal.candidates} == {"int8"}  # int8 I/O: int16x8 cannot take it
    assert all(c.recipe.io_dtype == "int8" for c in proposal.candidates)
    refused = {r.label.split()[1].rstrip(",") for r in proposal.refused}
    assert {"fp32", "fp16", "dynamic", "auto"} <= refused


def test_the_auto_mix_is_a_candidate_searched_against_the_deploy_budget_and_measured_last():
    target = get_target("x86-64-litert")
    assert "auto" not in [c.precision for c in propose(target, Sources()).candidates]  # no budget, no search
    budget = (("max_accuracy_drop", 0.5), ("min_cosine", 0.99))
    candidates = propose(target, Sources(budget=budget)).candidates
    autos = [c for c in candidates if c.precision == "auto"]
    assert candidates[-2:] == autos  # one mix per revert, measured so that the faster wins
    assert sorted(a.recipe.revert_to for a in autos) == ["float32", "int16x8"]
    assert sorted(a.label for a in autos) == ["tflite auto, reverts to float32", "tflite auto, reverts to int16x8"]
    for auto in autos:
        assert auto.kind == "auto"
        assert auto.recipe.tolerance["max_accuracy_drop"] == 0.5 and auto.recipe.tolerance["min_cosine"] == 0.99


def test_the_int16x8_mix_only_where_the_target_allows_int16x8_and_onnx_reverts_to_float32_only():
    budget = (("min_cosine", 0.99),)
    onnx = propose(get_target("x86-64-onnxruntime"), Sources(budget=budget)).candidates
    assert [c.label for c in onnx if c.precision == "auto"] == ["onnx auto, reverts to float32"]
    narrow = get_target("x86-64-litert")
    narrow = replace(narrow, constraints={**narrow.constraints, "allowed_precisions": ["fp32", "int8", "auto"]})
    proposal = propose(narrow, Sources(budget=budget))
    assert [c.recipe.revert_to for c in proposal.candidates if c.precision == "auto"] == ["float32"]
    assert any("reverted layers run in int16x8" in r.reason for r in proposal.refused)


def test_every_target_proposes_its_own_format_its_own_choice_first_then_fp32():
    for target in list_targets():
        candidates = propose(target, Sources()).candidates
        assert {c.format for c in candidates} == {target.format}
        assert candidates[0].precision == target.precision, target.name
        if "fp32" in [c.precision for c in candidates] and target.precision != "fp32":
            assert candidates[1].precision == "fp32", target.name
        assert len({c.file_tag for c in candidates}) == len(candidates)  # one file name each


def test_onnx_targets_try_every_activation_and_weight_type_and_qat_only_when_the_run_has_it():
    target = get_target("x86-64-onnxruntime")
    labels = [c.label for c in propose(target, Sources()).candidates]
    for recipe in ("int8-u8s8", "int8-s8s8", "int8-per-tensor", "int8-percentile"):
        assert f"onnx int8 ({recipe})" in labels
    assert not any("model-qat" in label for label in labels)
    with_qat = propose(target, Sources(models=("model", QAT))).candidates
    assert [c.precision for c in with_qat if c.model == QAT] == ["int8"]
    assert "qat" in KINDS and "precision" in KINDS


def test_without_calibration_quantized_candidates_are_refused_with_the_reason():
    proposal = propose(get_target("x86-64-litert"), Sources(calibration=False))
    assert {c.precision for c in proposal.candidates} == {"fp32", "fp16", "dynamic"}
    assert any("--calibration" in r.reason for r in proposal.refused)


def test_sites_pair_targets_and_devices():
    a, b = get_target("x86-64-litert"), get_target("x86-64-onnxruntime")
    d1, d2 = SSHDevice("ssh://pi@one"), SSHDevice("ssh://pi@two:2222")
    assert [s.name for s in pair_sites([a, b], [])] == ["x86-64-litert", "x86-64-onnxruntime"]
    assert [s.device_name for s in pair_sites([a, b], [d1])] == ["ssh://pi@one"] * 2
    assert [s.device_name for s in pair_sites([a], [d1, d2])] == ["ssh://pi@one", "ssh://pi@two:2222"]
    assert [s.slug for s in pair_sites([a, b], [d1, d2])] == ["x86-64-litert@pi@one", "x86-64-onnxruntime@pi@two-2222"]
    with pytest.raises(InputError, match="one --device per --target"):
        pair_sites([a, b, a], [d1, d2])


def _row(precision, p50, delta, cosine=0.999, constraints=()):
    candidate = Candidate("precision", "tflite", precision, default_recipe(precision))
    row = Row(candidate, Site(get_target("x86-64-litert")))
    row.validation = {"accuracy_delta": delta, "passed": True, "outputs": [{"cosine": cosine}]}
    row.benchmark = {"latency_ms": {"p50": p50, "p99": 2 * p50}, "runtime": "litert"}
    row.constraints = list(constraints)
    return row


def test_the_fastest_row_within_budget_and_constraints_is_chosen_and_every_row_says_why():
    rows = [
        _row("fp32", 3.0, 0.0),
        _row("int8", 1.0, -0.8),  # fastest, over the budget
        _row("dynamic", 1.5, -0.4, constraints=[{"name": "max_size_kb", "value": 9, "limit": 5, "passed": False}]),
        _row("fp16", 2.0, -0.2),
    ]
    chosen = judge(rows, Budget(accuracy=0.5))
    assert chosen is rows[3] and chosen.status == "chosen" and "next tflite fp32" in chosen.reason
    assert rows[1].status == "rejected" and "over the 0.5-point budget" in rows[1].reason
    assert rows[2].status == "rejected" and "max_size_kb" in rows[2].reason
    assert rows[0].status == "eligible" and "1.50x the chosen p50" in rows[0].reason
    assert judge(rows, Budget(accuracy=0.5, min_cosine=0.9999)) is None  # every cosine is 0.999


# --------------------------------------------------------------------------- bad input (exit 2)


@pytest.fixture
def model_file(ws):
    path = ws / "model.keras"
    path.write_bytes(b"never loaded: every error below comes first")
    return path


def test_a_budget_that_is_not_a_number(model_file):
    res = invoke("deploy", model_file, "--target", "x86-64-litert", "--accuracy-budget", "half")
    assert_bad_input(res, "--accuracy-budget", "'half'")


def test_neither_budget_nor_cosine(model_file):
    assert_bad_input(invoke("deploy", model_file, "--target", "x86-64-litert"), "--accuracy-budget", "--min-cosine")


def test_a_budget_without_labelled_data_says_what_accuracy_needs(model_file):
    res = invoke("deploy", model_file, "--target", "x86-64-litert", "--accuracy-budget", "0.5")
    assert_bad_input(res, "--data", "test split", "--min-cosine")


def test_a_target_that_allows_no_candidate(model_file, ws):
    target = ws / "npu.yaml"
    target.write_text(
        "description: an NPU that runs int16x8 only\nformat: onnx\nprecision: int8\nruntime: onnxruntime\n"
        "constraints: {allowed_precisions: [int16x8]}\n"
    )
    res = invoke("deploy", model_file, "--target", target, "--min-cosine", "0.99")
    assert_bad_input(res, "'npu'", "allows none", "allowed_precisions")
    assert_bad_input(invoke("deploy", model_file, "--target", "x86-64-litrt", "--min-cosine", "0.99"), "x86-64-litert")


def test_an_unreachable_device(model_file):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    res = invoke(
        "deploy",
        model_file,
        "--target",
        "x86-64-litert",
        "--min-cosine",
        "0.99",
        "--device",
        f"ssh://x@127.0.0.1:{port}",
    )
    assert_bad_input(res, f"127.0.0.1:{port}", "connection refused")


def test_the_cache_holds_while_the_files_are_unchanged(tmp_path):
    from edgekeras.deployment.cache import DeployCache

    art = tmp_path / "site" / "m-tflite-fp32.tflite"
    art.parent.mkdir()
    art.write_bytes(b"artifact")
    art.with_suffix(".json").write_text("{}")
    cache = DeployCache(tmp_path)
    cache.record_artifact("k", art)
    cache.record_failure("bad", "The tflite converter failed: op X")
    cache.record_measurement("m", {"validation": {"passed": True}, "benchmark": {"latency_ms": {"p50": 1.0}}})
    cache.save()
    again = DeployCache(tmp_path)  # a later run reads it back
    assert again.artifact("k") == art and again.failure("bad").startswith("The tflite converter failed")
    assert again.measurement("m")["benchmark"]["latency_ms"]["p50"] == 1.0 and again.artifact("bad") is None
    art.write_bytes(b"changed by hand")
    assert again.artifact("k") is None  # another sha256: rebuilt, never trusted
    (tmp_path / "deploy-cache.json").write_text("{not json")
    assert DeployCache(tmp_path).measurement("m") is None  # a damaged cache costs a re-measurement
