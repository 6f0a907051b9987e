"""`edgekeras deploy` end to end: real conversions, LiteRT and ONNX Runtime, real measurements.

The choice is never hard-coded: each test asserts that the chosen candidate is the fastest
measured one within the budget and the constraints, whatever this machine measured.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek
from edgekeras.manifest import check


def _eligible(site):
    return [r for r in site["rows"] if r["status"] in ("chosen", "eligible")]


def assert_fastest_within_budget(site, budget=None, min_cosine=None):
    """The chosen row is the measured-fastest of the rows within the budget and constraints."""
    within = [
        r
        for r in site["rows"]
        if r["p50_ms"] is not None
        and r["error"] is None
        and (budget is None or (r["accuracy_delta"] is not None and -r["accuracy_delta"] <= budget + 1e-9))
        and (min_cosine is None or r["cosine"] >= min_cosine)
        and all(c["passed"] for c in r["constraints"])
    ]
    assert within, site
    assert [r["candidate"] for r in _eligible(site)] == [r["candidate"] for r in within]
    fastest = min(within, key=lambda r: r["p50_ms"])
    assert site["chosen"] == fastest["candidate"], site
    return fastest


def test_digits_run_on_two_targets_then_from_the_cache(digits_run, ws):
    args = ["deploy", digits_run.path, "--target", "x86-64-litert", "--target", "mcu-int8"]
    args += ["--accuracy-budget", "0.5", "--max-candidates", "3", "--runs", "20", "--out", "dep"]
    first = invoke(*args, "--json")
    assert first.exit_code == 0, first.describe()
    document = first.json()
    litert, mcu = document["sites"]
    for site in (litert, mcu):
        chosen = assert_fastest_within_budget(site, budget=0.5)
        assert chosen["validated_on"] == "local" and chosen["benchmarked_on"] == "local"
        assert sum(r["p50_ms"] is not None for r in site["rows"]) == min(3, len(site["rows"]))
        assert all(r["reason"] == "not measured: --max-candidates 3" for r in site["rows"][3:])  # listed only
    assert len(litert["rows"]) > 3 and len(mcu["rows"]) == 2  # int8 and int8-per-tensor, both with int8 I/O
    assert litert["rows"][-1]["candidate"].startswith("tflite auto, reverts to")  # the mixes, searched last
    assert all(r["precision"] == "int8" for r in mcu["rows"])  # int8_only: no float candidate at all
    assert [r["candidate"] for r in litert["rows"][:2]] == ["tflite int8", "tflite fp32"]

    copy = ws / "dep" / "digits-cnn-x86-64-litert.tflite"
    manifest = json.loads(copy.with_suffix(".json").read_text())
    check(manifest)
    assert manifest["chosen"] is True and manifest["deployment"]["status"] == "chosen"
    assert manifest["validation"]["measured_on"] == "local" and manifest["constraints"]
    assert (ws / "dep" / "report.md").read_text().count("| tflite int8") >= 2
    assert "x86-64-litert" in (ws / "dep" / "report.html").read_text()
    assert document["cache"]["measured_now"] == 5 and document["cache"]["measured_before"] == 0

    second = invoke(*args)  # the same again: everything comes from the cache
    assert second.exit_code == 0, second.describe()
    assert "cache: 5 of" in second.stdout
    assert "candidates measured by an earlier run, 0 measured now (5 artifacts reused)" in second.stdout
    assert "Converting" not in second.stderr and "(cached: measured by an earlier run)" in second.stderr
    again = json.loads((ws / "dep" / "deploy.json").read_text())
    assert [s["chosen"] for s in again["sites"]] == [litert["chosen"], mcu["chosen"]]


def _runtime_model():
    """A model built here: a wide Dense stack over a small convolution, whose int8/fp32 speed
    ratio differs between LiteRT and ONNX Runtime on most CPUs; the test does not care which."""
    import keras

    inp = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    out = keras.layers.Dense(5, activation="softmax", name="scores")(x)
    model = keras.Model(inp, out, name="probe")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_model_built_here_is_deployed_by_measurement_in_each_runtime(ws):
    model = _runtime_model()
    rng = np.random.default_rng(0)
    x = rng.random((160, 12, 12, 3)).astype("float32")
    y = model.predict(x, verbose=0).argmax(-1)  # labels the float model gets right
    dep = ek.deploy(
        model,
        targets=["x86-64-litert", "x86-64-onnxruntime"],
        accuracy_budget=2.0,
        min_cosine=0.99,
        data=(x[:96], y[:96]),
        calibration=x[96:],
        out="probe",
        max_candidates=3,
        runs=20,
    )
    document = dep.to_dict()
    assert [s["runtime"] for s in document["sites"]] == ["litert", "onnxruntime"]
    for site, result in zip(document["sites"], dep.results):
        fastest = assert_fastest_within_budget(site, budget=2.0, min_cosine=0.99)
        assert result.chosen is not None and result.chosen.p50 == fastest["p50_ms"]
        assert result.artifact is not None and result.artifact.exists()
        assert ek.Artifact.load(result.artifact).manifest["chosen"] is True
    assert dep.passed and (ws / "probe" / "report.html").exists()


def test_none_within_budget_exits_1_naming_the_closest(digits_run, ws):
    res = invoke(
        "deploy", digits_run.path, "--target", "mcu-int8", "--min-cosine", "0.9999999", "--runs", "5", "--out", "d",
        "--time-budget", "0.01",  # past at once: only the target's own choice is measured
    )  # fmt: skip
    assert res.exit_code == 1, res.describe()
    assert "No candidate is within the budget" in res.stderr and "the closest is tflite int8" in res.stderr
    document = json.loads((ws / "d" / "deploy.json").read_text())
    assert document["passed"] is False and document["sites"][0]["chosen"] is None
    first, second = document["sites"][0]["rows"]
    assert first["status"] == "rejected" and "below --min-cosine" in first["reason"]
    assert second["status"] == "not measured" and second["reason"] == "not measured: --time-budget 0.01 s reached"


@pytest.mark.slow
def test_every_candidate_of_both_cpu_targets_on_digits(digits_run, ws):
    dep = ek.deploy(
        digits_run.path, targets=["x86-64-litert", "x86-64-onnxruntime"], accuracy_budget=0.5, out="all", runs=30
    )
    for site in dep.to_dict()["sites"]:
        assert_fastest_within_budget(site, budget=0.5)
        assert all(r["p50_ms"] is not None for r in site["rows"]), site
        autos = [r for r in site["rows"] if r["precision"] == "auto"]  # the mixes, searched and measured too
        assert len(autos) == (2 if site["target"] == "x86-64-litert" else 1), autos  # LiteRT: int16x8 and float32
        for auto in autos:
            assert auto["accuracy_delta"] is not None and auto["size_bytes"] > 0, auto
