"""Sparse models on the export side: gzip sizes, sparse TFLite weights, per-layer weight
sparsity/params/MACs (`inspect`, manifests) and XNNPACK's sparse-path verdict.

Sparse models are made here with numpy (the smallest-magnitude weights of a briefly trained
Keras model zeroed), so nothing depends on how pruning is done.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from conftest import invoke

from edgekeras.artifact import gzip_size
from edgekeras.errors import InputError
from edgekeras.export.sparse_weights import THRESHOLDS, decide

ZEROS = 0.8


def magnitude_prune(model, fraction, only_1x1=False):
    """Zeroes the smallest-magnitude `fraction` of every kernel (or only 1x1 Conv2D kernels)."""
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None or (only_1x1 and tuple(getattr(layer, "kernel_size", ())) != (1, 1)):
            continue
        values = kernel.numpy()
        cut = np.sort(np.abs(values).ravel())[int(values.size * fraction) - 1]
        kernel.assign(np.where(np.abs(values) <= cut, 0.0, values))
    return model


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype("float32")[..., None], d.target.astype("int32")


@pytest.fixture(scope="module")
def pruned_cnn(digits):
    """A small digits CNN, trained, then 80 % of every kernel zeroed."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = digits
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return magnitude_prune(model, ZEROS)


@pytest.fixture(scope="module")
def arts(pruned_cnn, digits, tmp_path_factory):
    """{(format, precision): Artifact}: TFLite and ONNX at fp32 and int8, validated (parity)."""
    import edgekeras as ek

    out = tmp_path_factory.mktemp("sparse")
    made = ek.convert(
        pruned_cnn,
        formats=["tflite", "onnx"],
        precisions=["fp32", "int8"],
        calibration=digits[0][:200],
        data={"x": digits[0][:200], "y": digits[1][:200]},
        out=out,
        name="pruned",
    )
    return {(a.format, a.precision): a for a in made}


# ------------------------------------------------------------------ pure rules


def test_gzip_size_streams_what_gzip_writes(tmp_path):
    data = np.random.default_rng(0).integers(0, 4, 300_000).astype("uint8").tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = len(gzip.compress(data, 9, mtime=0))
    assert gzip_size(path) == expected
    assert gzip_size(path, chunk=4096) == expected  # chunking does not change the stream


def test_auto_turns_sparse_weights_on_where_it_pays():
    assert decide("auto", "fp32", 0.5)["requested"] and not decide("auto", "fp32", 0.3)["requested"]
    assert not decide("auto", "int8", 0.5)["requested"] and decide("auto", "int8", 0.8)["requested"]
    assert decide("on", "int8", 0.0)["requested"] and not decide("off", "fp32", 0.9)["requested"]
    assert decide("auto", "fp32", 0.5)["threshold"] == THRESHOLDS["fp32"]


def test_onnx_refuses_the_sparse_weights_setting():
    from edgekeras.export import check_recipe, get_exporter
    from edgekeras.quantize_recipes import load_quant_recipe

    recipe = load_quant_recipe({"name": "sparse", "precision": "int8", "sparse_weights": "on"})
    check_recipe(get_exporter("tflite", "int8"), recipe)
    with pytest.raises(InputError, match="sparse_weights"):
        check_recipe(get_exporter("onnx", "int8"), recipe)
    with pytest.raises(InputError, match="sparse_weights"):
        load_quant_recipe({"precision": "fp32", "sparse_weights": "always"})


# ------------------------------------------------------------------ artifacts


def test_manifests_record_gzip_size(arts):
    for art in arts.values():
        data = art.path.read_bytes()
        assert art.manifest["gzip_size_bytes"] == len(gzip.compress(data, 9, mtime=0))
        assert art.manifest["size_bytes"] == len(data)


def test_auto_writes_sparse_tflite_weights_and_parity_holds(arts):
    m = arts[("tflite", "fp32")].manifest
    sparse = m["sparse_weights"]
    assert sparse["setting"] == "auto" and sparse["kernel_sparsity"] == pytest.approx(ZEROS, abs=0.01)
    assert sparse["written"] and sparse["densify_ops"] > 0 and sparse["sparse_tensors"] > 0
    assert m["validation"]["passed"] is True
    # int8: XNNPACK cannot prepare a sparse int8 FULLY_CONNECTED, so auto wrote it dense
    int8 = arts[("tflite", "int8")].manifest
    assert int8["sparse_weights"]["written"] is False and "XNNPACK" in int8["sparse_weights"]["note"]
    assert int8["validation"]["passed"] is True and "runtime_options" not in int8


def test_int8_sparse_weights_on_run_without_xnnpack(pruned_cnn, digits, tmp_path):
    import edgekeras as ek

    recipe = {"name": "int8-sparse", "precision": "int8", "sparse_weights": "on"}
    (art,) = ek.convert(
        pruned_cnn,
        formats=["tflite"],
        precisions=["int8"],
        recipe=recipe,
        calibration=digits[0][:100],
        data={"x": digits[0][:200], "y": digits[1][:200]},
        out=tmp_path,
    )
    m = art.manifest
    assert m["sparse_weights"]["written"] and m["sparse_weights"]["densify_ops"] > 0
    assert m["runtime_options"] == {"xnnpack": False} and any("builtin kernels" in w for w in m["warnings"])
    assert m["validation"]["passed"] is True
    # sparse-stored int8 weights: the values not stored count as zeros
    assert all(ZEROS - 0.01 <= row["sparsity"] <= ZEROS + 0.05 for row in m["weight_stats"]["layers"])


def test_sparse_weights_off_writes_dense_weights(pruned_cnn, arts, tmp_path):
    import edgekeras as ek
    from edgekeras.readers import tflite

    recipe = {"name": "dense", "precision": "fp32", "sparse_weights": "off"}
    (dense,) = ek.convert(pruned_cnn, formats=["tflite"], precisions=["fp32"], recipe=recipe, out=tmp_path)
    assert tflite.read(dense.path).op_counts.get("DENSIFY", 0) == 0
    assert dense.manifest["sparse_weights"]["written"] is False
    sparse = arts[("tflite", "fp32")]
    assert sparse.manifest["size_bytes"] < 0.5 * dense.manifest["size_bytes"]  # 80 % zeros, 4-byte floats


@pytest.mark.parametrize("key", [("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")])
def test_weight_stats_match_the_zeroed_fraction(arts, pruned_cnn, key):
    stats = arts[key].manifest["weight_stats"]
    layers = stats["layers"]
    assert [row["op"] for row in layers][:1] and len(layers) == 4  # 2 convolutions, 2 dense
    for row in layers:
        # int8 may round a few more small weights to the zero point, never fewer
        assert ZEROS - 0.01 <= row["sparsity"] <= ZEROS + 0.05, row
    assert stats["params"] == pruned_cnn.count_params()
    conv1 = 6 * 6 * 16 * 9  # 6x6 outputs, 16 filters, 3x3x1 taps
    conv2 = 4 * 4 * 32 * 9 * 16
    assert stats["macs"] == conv1 + conv2 + 512 * 64 + 64 * 10


def test_inspect_shows_weights_gzip_and_xnnpack_verdict(arts):
    path = arts[("tflite", "int8")].path
    outcome = invoke("inspect", path, "--json")
    assert outcome.exit_code == 0, outcome.describe()
    info = outcome.json()
    assert info["gzip_size_bytes"] == arts[("tflite", "int8")].manifest["gzip_size_bytes"]
    assert [round(r["sparsity"], 1) for r in info["weights"]["layers"]] == [ZEROS] * 4
    assert info["xnnpack_sparse"]["path"] == "dense" and info["xnnpack_sparse"]["rule"] == "float"
    text = invoke("inspect", arts[("onnx", "fp32")].path).stdout
    assert "gzip -9" in text and "zeros" in text and "MACs" in text


def test_xnnpack_declines_the_digits_cnn_with_its_reason(arts):
    verdict = arts[("tflite", "fp32")].manifest["xnnpack_sparse"]
    assert verdict["path"] == "dense" and verdict["rule"] == "first_conv"
    assert "3x3 kernel over 1 channels, not 3x3 over 3" in verdict["reason"]


def test_convert_table_has_gzip_column(arts):
    from edgekeras.cli.output import artifacts_table

    text = artifacts_table(list(arts.values()))
    assert "gzip" in text.splitlines()[0]


# ------------------------------------------------------------------ Dense weight scales


def test_auto_gives_pruned_dense_kernels_one_scale():
    from edgekeras.export.dense_scales import THRESHOLD
    from edgekeras.export.dense_scales import decide as decide_scales

    assert decide_scales("auto", True, 0.8) == {
        "setting": "auto",
        "per_channel": False,
        "dense_sparsity": 0.8,
        "threshold": THRESHOLD,
        "reason": "the least sparse Dense kernel is 80% zeros, at least 70%",
    }
    assert decide_scales("auto", True, 0.5)["per_channel"] and decide_scales("auto", True, None)["per_channel"]
    # a quantization-aware model's kernels sit on per-channel grids (qat/weights.py): kept
    assert decide_scales("auto", True, 0.8, quantization_aware=True)["per_channel"]
    assert decide_scales("on", True, 0.9)["per_channel"] and not decide_scales("off", True, 0.0)["per_channel"]
    assert not decide_scales("on", False, 0.0)["per_channel"]  # a per-tensor recipe: every kernel one scale


def _weight_scales(path):
    """{op: [scale count of each weight tensor]} of a TFLite artifact's FULLY_CONNECTED and CONV_2D ops."""
    from edgekeras.readers import tflite

    model = tflite.read(path)
    graph = model.subgraphs[0]
    found = {}
    for op in graph.ops:
        if op.name in ("FULLY_CONNECTED", "CONV_2D"):
            weight = graph.tensors[op.inputs[1]]
            found.setdefault(op.name, []).append(int(weight.quant.scale.size))
    return found


def test_pruned_dense_kernels_get_one_scale_and_compress_smaller(pruned_cnn, arts, digits, tmp_path):
    import edgekeras as ek

    auto = arts[("tflite", "int8")]
    assert auto.manifest["dense_scales"] == {
        "setting": "auto",
        "per_channel": False,
        "dense_sparsity": pytest.approx(ZEROS, abs=0.01),
        "threshold": 0.7,
        "reason": "the least sparse Dense kernel is 80% zeros, at least 70%",
    }
    assert _weight_scales(auto.path) == {"CONV_2D": [16, 32], "FULLY_CONNECTED": [1, 1]}
    recipe = {"name": "int8-channels", "precision": "int8", "dense_per_channel": "on"}
    (channels,) = ek.convert(
        pruned_cnn,
        formats=["tflite"],
        precisions=["int8"],
        recipe=recipe,
        calibration=digits[0][:200],
        data={"x": digits[0][:200], "y": digits[1][:200]},
        out=tmp_path,
    )
    assert _weight_scales(channels.path) == {"CONV_2D": [16, 32], "FULLY_CONNECTED": [64, 10]}
    assert channels.manifest["dense_scales"]["per_channel"] is True
    assert auto.manifest["validation"]["passed"] and channels.manifest["validation"]["passed"]
    assert auto.manifest["gzip_size_bytes"] < 0.95 * channels.manifest["gzip_size_bytes"]


def test_onnx_refuses_the_dense_per_channel_setting():
    from edgekeras.export import check_recipe, get_exporter
    from edgekeras.quantize_recipes import load_quant_recipe

    recipe = load_quant_recipe({"name": "channels", "precision": "int8", "dense_per_channel": "off"})
    check_recipe(get_exporter("tflite", "int8"), recipe)
    with pytest.raises(InputError, match="dense_per_channel"):
        check_recipe(get_exporter("onnx", "int8"), recipe)


# ------------------------------------------------------------------ XNNPACK's sparse path


def qualifying_model(size=32):
    """A tiny model XNNPACK's sparse path accepts: explicitly padded 3x3 stride-2 conv over 3
    channels, 1x1 convolutions, a stride-2 depthwise, spatial mean."""
    import keras

    keras.utils.set_random_seed(1)
    layers = keras.layers
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(layers.ZeroPadding2D(1)(inputs))
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, activation="relu")(layers.ZeroPadding2D(1)(x))
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4, activation="softmax", name="label")(x))


def test_qualifying_model_takes_the_sparse_path(tmp_path):
    import edgekeras as ek

    model = magnitude_prune(qualifying_model(), 0.75, only_1x1=True)
    recipe = {"name": "sparse", "precision": "fp32", "sparse_weights": "on"}
    (art,) = ek.convert(model, formats=["tflite"], precisions=["fp32"], recipe=recipe, out=tmp_path)
    assert art.manifest["xnnpack_sparse"]["path"] == "sparse", art.manifest["xnnpack_sparse"]
    result = ek.benchmark(art, runtime="litert", threads=1, runs=3, warmup=1, progress=False)
    here = result.details["xnnpack_sparse"]
    if result.host.get("x86_avx"):  # XNNPACK keeps x86 CPUs with AVX dense
        assert here["rule"] == "cpu" and "AVX" in here["reason"]
    else:
        assert here["path"] == "sparse"
    saved = json.loads(art.manifest_path.read_text())["benchmarks"][0]["details"]["xnnpack_sparse"]
    assert saved == here


def test_too_few_zeros_in_1x1_convolutions_is_the_reason(tmp_path):
    import edgekeras as ek

    model = magnitude_prune(qualifying_model(), 0.5, only_1x1=True)
    recipe = {"name": "sparse", "precision": "fp32", "sparse_weights": "on"}
    (art,) = ek.convert(model, formats=["tflite"], precisions=["fp32"], recipe=recipe, out=tmp_path, validate=False)
    verdict = art.manifest["xnnpack_sparse"]
    assert verdict["rule"] == "zeros_1x1" and "50.0% zeros" in verdict["reason"]


def test_onnx_weights_in_an_external_file_are_read(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekeras.inspection.weights import weight_report

    w = np.zeros((64, 32), np.float32)
    w[:, :8] = 1.0  # 75 % zeros
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [numpy_helper.from_array(w, "W")],
    )
    path = tmp_path / "big.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save_model(model, path, save_as_external_data=True, location="big.data", size_threshold=0)
    monkeypatch.chdir(tmp_path.parent)  # read from beside the model, not from the working directory
    (row,) = weight_report(path).rows
    assert (row.op, row.sparsity, row.params, row.macs) == ("MatMul", 0.75, 64 * 32, 64 * 32)
