"""The foundation pipeline end to end on real digits: train, convert, validate, benchmark."""

import json

import numpy as np
import pytest

import edgekeras as ek


def _by_key(run):
    return {(a.format, a.precision): a for a in run.artifacts}


def test_run_folder_holds_everything(digits_run):
    root = digits_run.path
    for name in ("model.keras", "recipe.yaml", "history.csv", "training_curves.png", "report.md", "run.json"):
        assert (root / name).exists(), name
    assert (root / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = json.loads((root / "run.json").read_text())
    assert state["status"] == "done"
    assert state["test_metrics"]["accuracy"] > 0.9
    header = (root / "history.csv").read_text().splitlines()[0]
    assert "val_accuracy" in header and "loss" in header
    assert not (root / "backup").exists() or not any((root / "backup").iterdir())


def test_four_artifacts_with_manifests(digits_run):
    arts = _by_key(digits_run)
    assert set(arts) == {("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")}
    for art in arts.values():
        manifest = json.loads(art.manifest_path.read_text())
        for key in (
            "format",
            "precision",
            "artifact_sha256",
            "source_sha256",
            "inputs",
            "outputs",
            "tool_versions",
            "validation",
        ):
            assert key in manifest, key
        from edgekeras.model_io import sha256_file

        assert manifest["artifact_sha256"] == sha256_file(art.path)
        assert manifest["source_sha256"] == sha256_file(digits_run.path / "model.keras")
        assert manifest["inputs"][0]["name"] == "input"
        assert manifest["validation"]["passed"] is True
        assert manifest["validation"]["tolerance"]
        assert manifest["validation"]["data"] == "labelled data"


def test_fp32_parity_below_1e_4(digits_run):
    for key in (("tflite", "fp32"), ("onnx", "fp32")):
        v = _by_key(digits_run)[key].manifest["validation"]
        assert v["max_abs_error"] < 1e-4, key
        assert v["outputs"][0]["top1_agreement"] == 1.0
        assert abs(v["accuracy_delta"]) < 1e-6


def test_int8_accuracy_within_two_points(digits_run):
    for key in (("tflite", "int8"), ("onnx", "int8")):
        art = _by_key(digits_run)[key]
        v = art.manifest["validation"]
        assert v["accuracy_delta"] >= -2.0, (key, v["accuracy_delta"])
        assert v["outputs"][0]["cosine"] > 0.98
        # int8 is really int8: well under half the fp32 size
        fp32 = _by_key(digits_run)[(key[0], "fp32")]
        assert art.size_bytes < 0.5 * fp32.size_bytes


def test_validate_recomputes_the_same_numbers(digits_run):
    art = _by_key(digits_run)[("tflite", "int8")]
    result = ek.validate(art, reference=digits_run.path / "model.keras", data=digits_run.data.test, save=False)
    stored = art.manifest["validation"]
    assert result.passed
    assert result.samples == len(digits_run.data.test)
    assert result.accuracy == pytest.approx(stored["accuracy"], abs=1e-6)
    assert result.max_abs_error == pytest.approx(stored["max_abs_error"], rel=1e-5)


def test_validation_catches_a_wrong_artifact(digits_run, tmp_path):
    """An artifact from a different model fails parity with a typed error naming the output."""
    import keras

    other = keras.models.clone_model(digits_run.model)  # same architecture, fresh weights
    other.set_weights(
        [w * 0 + np.random.default_rng(0).normal(size=w.shape).astype(w.dtype) * 0.1 for w in other.get_weights()]
    )
    arts = ek.convert(other, formats=["onnx"], precisions=["fp32"], out=tmp_path, validate=False, name="wrong")
    with pytest.raises(ek.ParityError) as err:
        ek.validate(arts[0], reference=digits_run.model, data=digits_run.data.test)
    assert err.value.failures
    assert any(f.output == digits_run.model.layers[-1].name for f in err.value.failures)
    assert {f.metric for f in err.value.failures} >= {"max_abs_error", "cosine"}
    assert json.loads(arts[0].manifest_path.read_text())["validation"]["passed"] is False


def test_benchmark_fills_stats_and_manifest(digits_run):
    for art in digits_run.artifacts[:2] + digits_run.artifacts[2:3]:
        res = ek.benchmark(art, threads=2, runs=30, warmup=3)
        lat = res.latency_ms
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert res.runs == 30 and res.threads == 2
        assert res.first_inference_ms > 0 and res.load_ms > 0 and res.peak_rss_mb > 0
        stored = json.loads(art.manifest_path.read_text())["benchmarks"]
        assert any(b["runtime"] == res.runtime and b["threads"] == 2 for b in stored)


def test_outputs_matched_by_name_on_multi_output_model(tmp_path):
    """Two outputs whose names sort opposite to Keras' order still compare correctly."""
    import keras

    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inp)
    zeta = keras.layers.Dense(3, name="zeta")(h)
    alpha = keras.layers.Dense(3, name="alpha")(h)
    model = keras.Model(inp, [zeta, alpha])
    x = np.random.default_rng(1).random((40, 6)).astype("float32")
    arts = ek.convert(model, formats=["tflite", "onnx"], precisions=["fp32"], out=tmp_path, data={"features": x})
    for art in arts:
        outs = {o["output"]: o for o in art.manifest["validation"]["outputs"]}
        assert set(outs) == {"zeta", "alpha"}
        assert all(o["max_abs_error"] < 1e-5 for o in outs.values())


def test_convert_accepts_tf_data_calibration(digits_run, tmp_path):
    import tensorflow as tf

    cal = tf.data.Dataset.from_tensor_slices(digits_run.data.calibration(64).x).batch(16)
    arts = ek.convert(
        digits_run.model,
        formats=["tflite"],
        precisions=["int8"],
        calibration=cal,
        data=digits_run.data.test,
        out=tmp_path,
    )
    assert arts[0].manifest["calibration_samples"] == 64
    assert arts[0].manifest["validation"]["passed"]


def test_report_lists_every_artifact(digits_run):
    text = (digits_run.path / "report.md").read_text()
    for art in digits_run.artifacts:
        assert art.path.name in text
    assert "training_curves.png" in text
