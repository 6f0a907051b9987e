"""`edgekeras.readers`: one reader per artifact format (TFLite flatbuffer, ONNX), without
TensorFlow, on the trained digits model's real artifacts at every precision. Nothing is mocked."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import run_without_tensorflow

import edgekeras as ek
from edgekeras.readers import onnx as onnx_reader
from edgekeras.readers import tflite as tflite_reader

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
READERS = {"tflite": tflite_reader, "onnx": onnx_reader}


@pytest.fixture(scope="module")
def arts(digits_artifacts):
    """{(format, precision): path} of the trained digits CNN in every pair (conftest)."""
    return {key: a.path for key, a in digits_artifacts.items()}


@pytest.mark.parametrize("fmt", READERS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_detect_precision_of_every_format_and_precision(fmt, precision, arts):
    reader = READERS[fmt]
    assert reader.detect_precision(reader.read(arts[fmt, precision])) == precision


def test_tflite_reads_paths_and_bytes_alike(arts):
    path = arts["tflite", "int8"]
    from_path, from_bytes = tflite_reader.read(path), tflite_reader.read(path.read_bytes())
    assert from_path.op_counts == from_bytes.op_counts
    assert {op: from_path.op_counts[op] for op in ("CONV_2D", "FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE")} == {
        "CONV_2D": 2,
        "FULLY_CONNECTED": 2,
        "QUANTIZE": 1,
        "DEQUANTIZE": 1,
    }
    assert list(from_path.inputs) == ["input"] and from_path.tensors[from_path.inputs["input"]].dtype == "float32"
    assert tflite_reader.select_ops(from_path) == [] and tflite_reader.custom_ops(from_path) == []
    # int8 weights are stored as integers; fp32 ones are not
    assert tflite_reader.quantized_constants(from_path) >= 4
    assert tflite_reader.quantized_constants(tflite_reader.read(arts["tflite", "fp32"])) == 0


def test_tflite_float_ops_one_rule(arts):
    """fp32: every compute op is a float op. int8 with float I/O: only the QUANTIZE/DEQUANTIZE
    edges, marked as such; the int8 exporter ignores them, an int8-only target counts them."""
    fp32 = tflite_reader.read(arts["tflite", "fp32"])
    names = {op.name for op in tflite_reader.float_ops(fp32)}
    assert {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX"} <= names
    assert all(op.weighted for op in tflite_reader.float_ops(fp32) if op.name == "CONV_2D")

    int8 = tflite_reader.read(arts["tflite", "int8"])
    found = tflite_reader.float_ops(int8)
    assert sorted(op.name for op in found) == ["DEQUANTIZE", "QUANTIZE"]
    assert all(op.converting and not op.weighted for op in found)
    facts = tflite_reader.constraint_facts(arts["tflite", "int8"])
    assert facts["float_ops"] == ["DEQUANTIZE", "QUANTIZE"] and facts["precision"] == "int8" and facts["arena_kb"] > 0


def test_tflite_layer_nodes_and_op_outputs(arts, digits_run):
    model = tflite_reader.read(arts["tflite", "fp32"])
    first_conv = digits_run.model.layers[0].name
    nodes = tflite_reader.layer_nodes(model, [first_conv, "no_such_layer"])
    assert nodes["no_such_layer"] == [] and nodes[first_conv]
    assert all(first_conv in name for name in nodes[first_conv])
    outputs = dict(tflite_reader.op_outputs(model))
    assert outputs.get("CONV_2D")


def test_onnx_reader_facts(arts):
    fp32 = onnx_reader.read(arts["onnx", "fp32"])
    int8 = onnx_reader.read(arts["onnx", "int8"])
    assert fp32.op_counts["Conv"] == 2 and int8.op_counts["Conv"] == 2
    assert int8.op_counts["QuantizeLinear"] >= 5 and onnx_reader.custom_ops(int8) == []
    assert [v.name for v in int8.inputs] == ["input"]
    # one rule: a QDQ Conv reads dequantized tensors and feeds QuantizeLinear, so it computes in int8
    fp32_float = {op.name for op in onnx_reader.float_ops(fp32)}
    int8_float = {op.name for op in onnx_reader.float_ops(int8) if not op.converting}
    assert {"Conv", "MaxPool"} <= fp32_float
    assert "Conv" not in int8_float and "MaxPool" not in int8_float
    edges = [op for op in onnx_reader.float_ops(int8) if op.converting]
    assert {op.name for op in edges} <= {"QuantizeLinear", "DequantizeLinear"} and edges
    q = next(n for n in int8.nodes if n.op_type == "QuantizeLinear")
    quant = onnx_reader.quant_of(int8, q)
    assert quant is not None and quant.dtype in ("uint8", "int8") and float(quant.scale.max()) > 0


# Slow: the default suite validates every pair without its manifest in
# conversion/test_precisions.py::test_validate_detects_precision_without_a_manifest (the same path).
@pytest.mark.slow
def test_validation_detects_precision_through_the_reader(arts, digits_run, tmp_path):
    """An artifact without a manifest: validation asks the format's reader for its precision."""
    for fmt in READERS:
        for precision in ("dynamic", "int8"):
            path = tmp_path / f"{fmt}-{precision}{arts[fmt, precision].suffix}"
            shutil.copyfile(arts[fmt, precision], path)
            result = ek.validate(path, reference=digits_run.model, raise_on_failure=False, save=False)
            assert result.precision == precision


def test_not_an_artifact_is_an_input_error(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("this is not a model\n" * 4)
    with pytest.raises(ek.InputError, match="Expected a TFLite flatbuffer"):
        tflite_reader.read(path)
    with pytest.raises(ek.InputError, match="the converted flatbuffer"):
        tflite_reader.read(b"\0" * 64)
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(b"\0\0\0\0TFL3" + b"\xff" * 24)
    with pytest.raises(ek.InputError, match="damaged"):
        tflite_reader.read(damaged)
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 4)
    for weights_on_disk in (False, True):
        with pytest.raises(ek.InputError, match="Expected an ONNX model"):
            onnx_reader.read(path, weights_on_disk=weights_on_disk)


def test_readers_do_not_import_tensorflow_and_old_modules_are_gone(arts):
    code = (
        "from edgekeras.readers import onnx, tflite\n"
        f"print(tflite.detect_precision(tflite.read({str(arts['tflite', 'int8'])!r})),"
        f" onnx.detect_precision(onnx.read({str(arts['onnx', 'dynamic'])!r})))"
    )
    assert run_without_tensorflow(code).split() == ["int8", "dynamic"]
    for old in ("edgekeras.export.tflite_inspect", "edgekeras.inspection.scopes"):
        with pytest.raises(ModuleNotFoundError):
            __import__(old)


def test_quant_round_trip():
    from edgekeras.readers.quant import make_quant

    q = make_quant([0.5], [3], 0, "int8")
    values = np.array([-1.0, 0.0, 2.5, 100.0])
    assert q.dequantize(q.quantize(values)).tolist() == [-1.0, 0.0, 2.5, 62.0]  # 100 clips at 127
    assert q.to_dict() == {"scale": 0.5, "zero_point": 3}
    per_channel = make_quant([0.5, 0.25], [0, 0], 1, "int8")
    assert per_channel.per_channel and per_channel.to_dict() is None
    assert make_quant([0.0], [0], 0, "int8") is None and make_quant([0.5], [0], 0, "float32") is None


@pytest.mark.parametrize("precision", PRECISIONS)
def test_onnx_weights_left_on_disk_read_the_same_values_and_graph(arts, precision):
    path = arts["onnx", precision]
    full, lazy = onnx_reader.read(path), onnx_reader.read(path, weights_on_disk=True)
    assert lazy.graph.node == full.graph.node and lazy.proto.opset_import == full.proto.opset_import
    assert list(lazy.initializers) == list(full.initializers)
    assert any(onnx_reader.is_external(t) for t in lazy.initializers.values())
    for name in full.initializers:
        np.testing.assert_array_equal(onnx_reader.array(lazy, name), onnx_reader.array(full, name))
