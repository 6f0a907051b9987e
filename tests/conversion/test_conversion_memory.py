"""Conversion at scale: the memory/disk estimate refuses before work, and ONNX external data
(forced on a small model through a low threshold) is written, recorded, run and checked."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_unchanged, invoke, snapshot

from edgekeras.errors import NotEnoughDisk, NotEnoughMemory
from edgekeras.export import onnx_files
from edgekeras.memory_estimate import check_disk, check_tflite_size, estimate


def _small_model(path):
    import keras

    inputs = keras.Input((8, 8, 1), name="x")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="y")(x)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return path


def test_a_conversion_that_does_not_fit_stops_before_work(ws):
    model = _small_model(ws / "small.keras")
    before = snapshot(ws)
    out = invoke("convert", model, "--format", "onnx", "--format", "tflite", env={"EDGEKERAS_MEMORY_AVAILABLE": "1000"})
    assert out.exit_code == 1, out.describe()
    assert "Expected enough memory" in out.stderr and "Received: 1000 B available" in out.stderr, out.stderr
    assert "EDGEKERAS_MEMORY_AVAILABLE" in out.stderr and "Traceback" not in out.output
    assert_unchanged(before, ws)


def test_estimates_grow_with_the_weights_and_refuse_what_cannot_be_written(tmp_path):
    small, big = estimate("onnx", "fp32", 10**8), estimate("onnx", "fp32", 10**9)
    assert small.bytes < big.bytes and "of weights" in big.explain()
    with pytest.raises(NotEnoughMemory, match=r"flatbuffer limit.*--format onnx.*--precision fp16 or int8"):
        check_tflite_size("tflite", "fp32", 3 * 2**30)
    check_tflite_size("tflite", "int8", 3 * 2**30)  # a quarter of it fits
    check_tflite_size("onnx", "fp32", 3 * 2**30)  # ONNX writes external data instead
    with pytest.raises(NotEnoughDisk, match=r"free disk space.*Received: .* free. Nothing was written"):
        check_disk([(tmp_path / "a.onnx", 10**18)], scratch=0)
    check_disk([(tmp_path / "a.onnx", 10)], scratch=10)


def _onnx_model():
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 300)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(300).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 300])],
        [w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_onnx_files_stream_both_forms_to_the_same_model(tmp_path):
    import onnxruntime as ort

    model = _onnx_model()
    external = onnx_files.write(model, None, tmp_path / "ext.onnx", external=True)
    assert external == [tmp_path / "ext.onnx", tmp_path / "ext.onnx.data"]
    assert onnx_files.external_files(tmp_path / "ext.onnx") == [tmp_path / "ext.onnx.data"]
    single = onnx_files.repack(tmp_path / "ext.onnx", tmp_path / "one.onnx", external=False)
    assert single == [tmp_path / "one.onnx"] and not (tmp_path / "one.onnx.data").exists()
    x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    results = [ort.InferenceSession(str(p[0])).run(None, {"x": x})[0] for p in (external, single)]
    import onnx
    from onnx import numpy_helper

    loaded = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "one.onnx")).graph.initializer}
    assert sorted(loaded) == ["b", "w"]
    np.testing.assert_allclose(results[1], x @ loaded["w"] + loaded["b"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(results[0], results[1])


def test_external_data_is_written_recorded_run_and_checked(ws, monkeypatch):
    import edgekeras as ek
    from edgekeras.errors import InputError

    monkeypatch.setenv(onnx_files.THRESHOLD_ENV, "1")  # a small model written the way a 3 GB one is
    model = _small_model(ws / "small.keras")
    calibration = {"x": np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)}
    arts = ek.convert(model, formats=["onnx"], precisions=["fp32", "int8"], calibration=calibration, out=ws / "arts")
    for art in arts:
        data = art.path.with_name(art.path.name + ".data")
        assert data.exists(), sorted(p.name for p in (ws / "arts").iterdir())
        entry = art.manifest["external_data"][0]
        assert entry["file"] == data.name and entry["size_bytes"] == data.stat().st_size
        assert art.manifest["validation"]["passed"] is True
    assert not [p for p in (ws / "arts").iterdir() if p.name.startswith(".")]  # no temporary left
    fp32 = arts[0]
    runner = REPO / "edgekeras" / "devices" / "edgekeras_runner.py"
    done = subprocess.run(
        [sys.executable, str(runner), str(fp32.path), "--json", "--runs", "2", "--warmup", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["format"] == "onnx"
    data = fp32.external_files[0]
    blob = bytearray(data.read_bytes())
    blob[-1] ^= 1
    data.write_bytes(bytes(blob))
    with pytest.raises(InputError, match="altered or from another conversion"):
        ek.validate(fp32, reference=model)
    data.unlink()
    with pytest.raises(InputError, match="Received: no such file"):
        ek.benchmark(fp32, runs=2, warmup=0)


def test_force_over_a_model_that_shrank_below_the_external_size_removes_its_old_data_file(ws, monkeypatch):
    import edgekeras as ek

    model = _small_model(ws / "small.keras")
    monkeypatch.setenv(onnx_files.THRESHOLD_ENV, "1")
    (big,) = ek.convert(model, formats=["onnx"], precisions=["fp32"], out=ws / "arts", validate=False)
    data = big.external_files[0]
    assert data.exists()
    monkeypatch.delenv(onnx_files.THRESHOLD_ENV)
    (small,) = ek.convert(model, formats=["onnx"], precisions=["fp32"], out=ws / "arts", force=True)
    assert not data.exists()
    assert sorted(p.name for p in (ws / "arts").iterdir()) == sorted([small.path.name, small.manifest_path.name])
    assert "external_data" not in small.manifest and small.manifest["validation"]["passed"] is True


def test_a_child_process_returns_its_answer_or_its_error_and_a_killed_one_is_named():
    import os

    from edgekeras.child_process import run_in_child
    from edgekeras.errors import ConversionError

    assert run_in_child(divmod, 7, 2) == (3, 1)
    with pytest.raises(ValueError, match="invalid literal"):
        run_in_child(int, "seven")
    with pytest.raises(ConversionError, match="conversion process ended with signal SIGABRT"):
        run_in_child(os.abort)


@pytest.mark.slow  # three children each import TensorFlow: ~25 s on 2 busy cores
def test_a_multi_artifact_convert_of_a_file_runs_each_artifact_in_a_child_as_it_would_here(ws, monkeypatch, caplog):
    import logging
    import os

    import edgekeras as ek
    from edgekeras import conversion

    model = _small_model(ws / "small.keras")
    runs = {}
    for where, isolate_from in (("here", 2**62), ("child", 0)):
        monkeypatch.setattr(conversion, "ISOLATE_FROM_BYTES", isolate_from)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edgekeras"):
            arts = ek.convert(model, formats=["onnx", "tflite"], precisions=["fp32"], out=ws / where)
        lines = [
            r.getMessage().replace(str(ws / where), "OUT") for r in caplog.records if r.name.startswith("edgekeras")
        ]
        runs[where] = arts, lines, {r.process for r in caplog.records}
    (here, here_lines, here_pids), (child, child_lines, child_pids) = runs["here"], runs["child"]
    assert child_lines == here_lines and any("Converting onnx fp32 -> OUT" in line for line in child_lines)
    assert here_pids == {os.getpid()} and os.getpid() not in child_pids and len(child_pids) >= 2
    for a, b in zip(here, child):
        assert (a.format, a.precision, a.path.name) == (b.format, b.precision, b.path.name)
        assert set(a.manifest) == set(b.manifest) and b.manifest["validation"]["passed"] is True
        assert a.manifest["weight_stats"] == b.manifest["weight_stats"]


def test_the_estimate_covers_every_measured_peak_without_doubling_it():
    from edgekeras.memory_estimate import MEASURED

    for model, weights, fmt, precision, peak in MEASURED:
        needed = estimate(fmt, precision, int(weights)).bytes
        assert peak <= needed <= 1.25 * peak, (model, fmt, precision, needed / peak)


def test_validation_batches_follow_the_artifacts_own_largest_tensor():
    """A converter may build tensors far larger than any Keras activation (tf2onnx's [N, 1, C, C]
    broadcast in ConvNeXt at 32 x 32): the ONNX exporter records the largest, and validation
    batches shrink to it."""
    import keras
    from onnx import TensorProto, helper, numpy_helper

    from edgekeras.export.onnx import _largest_tensor_bytes
    from edgekeras.memory_estimate import BATCH_ACTIVATION_BYTES, batch_for

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["wide"]), helper.make_node("ReduceSum", ["wide"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((4, 3000), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert _largest_tensor_bytes(model) == 3000 * 4  # [batch, 3000] float32, one sample

    inputs = keras.Input((4,))
    small = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert batch_for(small, 64) == 64
    assert batch_for(small, 64, BATCH_ACTIVATION_BYTES // 4) == 4
    assert batch_for(small, 64, 10 * BATCH_ACTIVATION_BYTES) == 1
