"""`edgekeras inspect`: what an artifact is (without TensorFlow), and per-tensor errors against
the float conversion of its Keras model (`--layers`), on the trained digits model's real
TFLite and ONNX artifacts. Nothing is mocked."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from conftest import invoke, run_without_tensorflow

import edgekeras as ek

FORMATS = ("tflite", "onnx")


@pytest.fixture(scope="module")
def arts(digits_run):
    """{(format, precision): artifact path} of the trained digits run."""
    return {(a.format, a.precision): a.path for a in digits_run.artifacts}


@pytest.fixture(scope="module")
def model_path(digits_run):
    return digits_run.path / "model.keras"


@pytest.fixture(scope="module")
def labelled_npz(digits_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("inspect") / "test.npz"
    np.savez(path, x=digits_run.data.test.x, y=digits_run.data.test.y)
    return path


def _invoke(*args):
    return invoke("inspect", *args)


def _json(*args):
    res = _invoke(*args, "--json")
    assert res.exit_code == 0, res.describe()
    return res.json()


# --------------------------------------------------------------------------- summaries


def test_tflite_ops_signature_and_manifest(arts, digits_run):
    fp32 = ek.inspect(arts["tflite", "fp32"])
    assert (fp32.format, fp32.precision, fp32.precision_source, fp32.detected_precision) == (
        "tflite",
        "fp32",
        "manifest",
        "fp32",
    )
    for op, count in {"CONV_2D": 2, "FULLY_CONNECTED": 2, "MAX_POOL_2D": 1, "SOFTMAX": 1}.items():
        assert fp32.ops[op] == count
    assert "QUANTIZE" not in fp32.ops and "DEQUANTIZE" not in fp32.ops

    int8 = ek.inspect(arts["tflite", "int8"])
    assert int8.precision == int8.detected_precision == "int8"
    assert {op: int8.ops[op] for op in ("CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX")} == {
        "CONV_2D": 2,
        "FULLY_CONNECTED": 2,
        "MAX_POOL_2D": 1,
        "SOFTMAX": 1,
    }
    assert int8.ops["QUANTIZE"] == 1 and int8.ops["DEQUANTIZE"] == 1
    assert not int8.needs_select_ops and int8.summary.select_ops == []
    [inp], [out] = int8.inputs, int8.outputs
    assert (inp.name, inp.shape, inp.dtype) == ("input", (None, 8, 8, 1), "float32")
    assert (out.name, out.shape) == (digits_run.model.layers[-1].name, (None, 10))
    assert int8.size_bytes == arts["tflite", "int8"].stat().st_size and int8.manifest_matches is True
    assert int8.validation["passed"] is True and int8.validation["samples"] == len(digits_run.data.test)


def test_onnx_op_types_opsets_producer(arts):
    fp32 = ek.inspect(arts["onnx", "fp32"])
    assert fp32.precision == fp32.detected_precision == "fp32"
    assert fp32.ops["Conv"] == 2 and fp32.ops["MaxPool"] == 1 and fp32.ops["Softmax"] == 1
    assert "QuantizeLinear" not in fp32.ops
    assert fp32.summary.opset_imports["ai.onnx"] >= 13 and fp32.summary.producer.startswith("tf2onnx")
    int8 = ek.inspect(arts["onnx", "int8"])
    assert int8.detected_precision == "int8" and int8.ops["Conv"] == 2
    assert int8.ops["QuantizeLinear"] >= 5 and int8.ops["DequantizeLinear"] >= 5
    assert [t.name for t in int8.inputs] == ["input"] and int8.inputs[0].shape == (None, 8, 8, 1)


def test_precision_detected_without_manifest(arts, tmp_path):
    for fmt in FORMATS:
        path = tmp_path / arts[fmt, "int8"].name
        shutil.copyfile(arts[fmt, "int8"], path)
        info = ek.inspect(path)
        assert (info.precision, info.precision_source, info.manifest, info.validation) == (
            "int8",
            "detected",
            None,
            None,
        )


def test_cli_json_and_table(arts):
    doc = _json(arts["tflite", "int8"])
    assert {
        "path",
        "format",
        "precision",
        "precision_source",
        "detected_precision",
        "size_bytes",
        "sha256",
        "manifest",
        "manifest_matches",
        "producer",
        "inputs",
        "outputs",
        "ops",
        "op_count",
        "subgraphs",
        "needs_select_ops",
        "select_ops",
        "custom_ops",
        "opset_imports",
        "details",
        "validation",
    } <= set(doc)
    assert "layers" not in doc and doc["ops"]["CONV_2D"] == 2 and doc["needs_select_ops"] is False
    assert doc["inputs"][0] == {
        "name": "input",
        "tensor": "serving_default_input:0",
        "shape": [None, 8, 8, 1],
        "dtype": "float32",
        "quantization": None,
    }
    assert _json(arts["onnx", "int8"])["opset_imports"]["ai.onnx"] >= 13
    res = _invoke(arts["onnx", "fp32"])
    assert res.exit_code == 0, res.output
    for text in ("format       onnx", "precision    fp32", "inputs", "outputs", "Conv", "validation   pass"):
        assert text in res.output


def test_inspect_does_not_import_tensorflow(arts):
    code = (
        f"for path in {[str(arts[f, 'int8']) for f in FORMATS]!r}:\n"
        "    r = run_cli('inspect', path, '--json')\n"
        "    assert r.exit_code == 0, r.output\n"
        "assert run_cli('inspect', '--help').exit_code == 0\n"
    )
    run_without_tensorflow(code)


def test_select_ops_are_reported_without_running_the_model(tmp_path):
    """A model that needs TensorFlow select ops, which ai-edge-litert cannot load, is still described."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="x")])
    def invert(x):
        return tf.linalg.inv(x) + 1.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([invert.get_concrete_function()], invert)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "flex.tflite"
    path.write_bytes(converter.convert())
    info = ek.inspect(path)
    assert info.needs_select_ops and info.summary.select_ops == ["FlexMatrixInverse"] and info.ops["ADD"] == 1
    assert (info.precision, info.precision_source, info.inputs[0].shape) == ("fp32", "detected", (None, 3, 3))
    res = _invoke(path)
    assert res.exit_code == 0 and "needs TensorFlow select ops: FlexMatrixInverse" in res.output


# --------------------------------------------------------------------------- --layers


def _check_rows(rows, key):
    assert rows
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("rmse", "max_abs_error", "cosine"))
        assert r["relative_rmse"] is None or math.isfinite(r["relative_rmse"])
    values = [r[key] for r in rows if r[key] is not None]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_layers_int8_worst_first(fmt, arts, model_path, labelled_npz):
    doc = _json(arts[fmt, "int8"], "--layers", "--reference", model_path, "--data", labelled_npz)
    layers = doc["layers"]
    assert layers["samples"] == 32 and layers["sorted_by"] == "quant_error"
    rows = layers["activations"]
    _check_rows(rows, "quant_error")
    quantized = [r for r in rows if r["quant_error"] is not None]
    assert len(quantized) >= 6 and all(r["scale"] > 0 and 0 <= r["clipped"] <= 1 for r in quantized)
    assert all(r["cosine"] > 0.99 for r in rows)  # the digits CNN quantizes well
    assert len(layers["keras_layers_matched"]) >= 5
    assert layers["weights"] and any(w["channels"] for w in layers["weights"])  # per-channel int8 weights
    assert "unmatched_artifact" in layers and "unmatched_reference" in layers


def test_layers_top_sort_and_generated_inputs(arts, model_path):
    doc = _json(
        arts["onnx", "int8"],
        "--layers",
        "--reference",
        model_path,
        "--top",
        "3",
        "--sort",
        "relative_rmse",
        "--samples",
        "16",
    )
    layers = doc["layers"]
    assert layers["data"] == "generated inputs" and layers["samples"] == 16
    assert len(layers["activations"]) == 3 < layers["activation_count"]
    _check_rows(layers["activations"], "relative_rmse")
    res = _invoke(arts["tflite", "int8"], "--layers", "--reference", model_path, "--top", "4")
    assert res.exit_code == 0, res.output
    assert "sorted by quant_error, worst first (showing 4 of" in res.output and "rel rmse" in res.output


@pytest.mark.parametrize("fmt", FORMATS)
def test_layers_fp32_matches_reference(fmt, arts, model_path, labelled_npz, digits_run):
    """The matching sanity check: the fp32 artifact against the reference is ~0 on every tensor."""
    report = ek.inspect(arts[fmt, "fp32"], reference=model_path, data=labelled_npz).layers
    assert report.sorted_by == "relative_rmse" and len(report.activations) >= 7
    assert max(r.max_abs_error for r in report.activations) < 1e-4
    assert max(w.max_abs_error for w in report.weights) < 1e-6
    keras_layers = [layer.name for layer in digits_run.model.layers]
    assert len(report.keras_layers_matched) >= len(keras_layers) - 1
    assert set(report.keras_layers_matched) <= set(keras_layers)


def _damage_tflite(src, dst, factor):
    """Shrinks the scale of the first FULLY_CONNECTED output, so that layer clips; returns its name."""
    from ai_edge_litert import schema_py_generated as schema

    from edgekeras.readers import tflite

    graph = tflite.read(src)
    index = next(op.outputs[0] for op in graph.ops if op.name == "FULLY_CONNECTED")
    buf = bytearray(src.read_bytes())
    tensor = schema.Model.GetRootAs(buf, 0).Subgraphs(0).Tensors(index)
    tensor.Quantization().ScaleAsNumpy()[:] /= factor  # a view into `buf`
    dst.write_bytes(bytes(buf))
    return graph.tensors[index].name


def _damage_onnx(src, dst, factor):
    """The same for the first Gemm/MatMul output's QuantizeLinear scale in a QDQ model."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    name = next(n.output[0] for n in model.graph.node if n.op_type in ("Gemm", "MatMul"))
    scale_name = next(n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name)
    init = next(i for i in model.graph.initializer if i.name == scale_name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) / factor, scale_name))
    onnx.save(model, str(dst))
    return name


@pytest.mark.parametrize("fmt,damage", [("tflite", _damage_tflite), ("onnx", _damage_onnx)])
def test_damaged_quantization_shows_the_clipping_layer_first(
    fmt, damage, arts, model_path, labelled_npz, tmp_path, digits_run
):
    good = ek.inspect(arts[fmt, "int8"], reference=model_path, data=labelled_npz).layers
    damaged_path = tmp_path / f"damaged.{fmt}"
    tensor = damage(arts[fmt, "int8"], damaged_path, 16.0)
    bad = ek.inspect(damaged_path, reference=model_path, data=labelled_npz).layers
    worst = bad.activations[0]
    first_dense, output_layer = [layer.name for layer in digits_run.model.layers if type(layer).__name__ == "Dense"]
    assert worst.tensor == tensor and worst.layer == first_dense
    assert worst.clipped > 0.2 and worst.quant_error > 10 * good.activations[0].quant_error
    output = [r.relative_rmse for r in bad.activations if r.layer == output_layer]
    assert output and min(output) > 0.2  # the damage reaches the model output


# --------------------------------------------------------------------------- bad input


def _fails(*args, expect):
    res = _invoke(*args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for text in expect:
        assert text in res.output, res.output
    return res.output


def test_not_an_artifact(tmp_path):
    for name, expect in (
        ("notes.tflite", "Expected a TFLite flatbuffer"),
        ("notes.onnx", "Expected an ONNX model"),
        ("notes.txt", "Expected an artifact file"),
    ):
        path = tmp_path / name
        path.write_text("this is not a model\n" * 4)
        _fails(path, expect=[expect, str(path)])
    _fails(tmp_path / "missing.tflite", expect=["does not exist"])


def test_bad_options(arts, model_path):
    art = arts["tflite", "int8"]
    _fails(art, "--layers", expect=["Expected --reference MODEL with --layers", "Received: --layers without"])
    _fails(art, "--reference", model_path, expect=["Expected --layers with --reference"])
    _fails(art, "--layers", "--reference", model_path, "--sort", "quant_eror", expect=["Did you mean 'quant_error'"])
    _fails(art, "--layers", "--reference", model_path, "--samples", "0", expect=["--samples", "Received: 0"])
    _fails(art, "--layers", "--reference", model_path, "--top", "0", expect=["--top", "Received: 0"])
    with pytest.raises(ek.InputError, match="Expected a reference model to compare against"):
        ek.inspect(art, data={"x": np.zeros((4, 8, 8, 1), np.float32)})


def test_reference_or_data_that_do_not_fit(arts, model_path, tmp_path):
    import keras

    other = keras.Sequential([keras.Input((64,), name="input"), keras.layers.Dense(10, name="probs")])
    other.save(tmp_path / "other.keras")
    for fmt in FORMATS:
        _fails(
            arts[fmt, "int8"],
            "--layers",
            "--reference",
            tmp_path / "other.keras",
            expect=["Expected a --reference model with the inputs of", "(None, 8, 8, 1)", "(None, 64)", "other.keras"],
        )
    np.savez(tmp_path / "flat.npz", x=np.zeros((5, 64), np.float32))
    _fails(
        arts["onnx", "int8"],
        "--layers",
        "--reference",
        model_path,
        "--data",
        tmp_path / "flat.npz",
        expect=["flat.npz", "8, 8, 1)", "(5, 64)"],
    )
    _fails(arts["onnx", "int8"], "--layers", "--reference", tmp_path / "none.keras", expect=["does not exist"])


# --------------------------------------------------------------------------- MobileNetV2, ONNX int8


@pytest.fixture(scope="module")
def mobilenet_int8(tmp_path_factory):
    """(model, ONNX int8 artifact, inspection data) of a random-weight MobileNetV2 at 32x32 whose
    batch-norm statistics are set from a batch (STACK-NOTES: left at their initial values, its
    outputs collapse). A small model is converted to ONNX first, so that tf2onnx's counters
    ('Conv__378') differ between the artifact and the float baseline `inspect` converts later."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((48, 32, 32, 3)).astype("float32")
    image = keras.Input((32, 32, 3), name="image")
    model = keras.applications.MobileNetV2(
        input_tensor=image, alpha=0.35, weights=None, classes=10, classifier_activation=None
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode call sets the moving statistics to the batch's
    model(x[:32], training=True)
    out = tmp_path_factory.mktemp("mobilenet")
    small = keras.Model(image, keras.layers.GlobalAveragePooling2D()(image))
    ek.convert(small, formats=["onnx"], out=out / "small", validate=False)
    (art,) = ek.convert(model, formats=["onnx"], precisions=["int8"], calibration=x[:32], out=out, validate=False)
    return model, art.path, x[32:]


def test_mobilenet_onnx_int8_pairs_within_layers(mobilenet_int8):
    """Every DepthwiseConv2D layer is compared (ONNX Runtime folds it, its batch norm and its
    padding into one Conv whose output is the ReLU's), and no pair shows an error its own
    quantization and the error it inherits cannot explain: a tensor paired with another
    layer's float tensor has cosine ~0 where its inputs are still close to float."""
    import keras

    model, path, x = mobilenet_int8
    report = ek.inspect(path, reference=model, data=x).layers
    rows = report.activations
    depthwise = [layer.name for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 17
    for name in depthwise:
        assert name in report.keras_layers_matched or name in report.keras_layers_fused, name
    assert report.keras_layers_unmatched == [] and report.unmatched_artifact == []
    assert any(r.tensor != r.reference_tensor for r in rows)  # tf2onnx counters did differ
    for r in rows:
        compared = [*report.keras_layers_matched, *report.keras_layers_fused, *(s.name for s in model.inputs)]
        assert r.layer in compared
        inherited = r.upstream_relative_rmse or 0.0
        if r.quant_error is not None and r.quant_error < 0.02:
            # cosine < 0.9 only where the error came from upstream (random weights amplify it
            # layer after layer), never as a jump at this tensor
            assert r.cosine >= 0.9 or inherited >= 0.3, (r.tensor, r.reference_tensor, r.cosine)
            assert r.relative_rmse - inherited < 0.15, (r.tensor, r.reference_tensor, r.relative_rmse, inherited)
    fused = [r for r in rows if any(f in depthwise for f in r.fused_layers)]
    assert len(fused) == len(depthwise) and all(r.layer.endswith("_relu") for r in fused)
