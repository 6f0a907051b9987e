"""keras.applications networks nobody here wrote, through `ek.convert` to TFLite and ONNX at
fp32 and int8, each artifact validated on labelled data against its tolerance.

A random-weight network is no reference for int8: even with its BatchNormalization statistics
set from a batch it is chaotic -- the ~1% error each int8 tensor adds grows layer by layer
(measured: MobileNetV2 at 32x32, BN statistics set, int8 cosine 0.67 TFLite, 0.23 ONNX
Runtime; the same network after 3 epochs on digits: 0.996). So each network is trained briefly on
scikit-learn's digits, upscaled to 32x32 RGB (the smallest input all of them accept), then
its BN moving statistics are set exactly from one training batch. Logits are compared
(classifier_activation=None). Each network is trained and converted in a child process:
ResNet50 alone peaks at ~8.5 GB (training plus ONNX export).

ONNX int8 is the default recipe (U8U8): with int8 weights at full range (U8S8, S8S8) ONNX
Runtime's integer kernels on x86 CPUs without VNNI saturate 16-bit sums and these artifacts
fail validation (cosine 0.90-0.986, up to -11.6 accuracy points) although the same QDQ graph
run in float is within 0.999 -- a wrong artifact caught, not a calibration problem; with
7-bit int8 weights MobileNetV2 lost 2.3 points, with U8U8 0.5.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

import edgekeras as ek
from edgekeras.coverage.applications import set_batchnorm_statistics

SIZE = 32
EPOCHS, BATCH = 3, 32
TRAIN, CALIBRATION, BN_BATCH = 1400, 200, 256

# name: the keras.applications module whose preprocess_input the network expects
ARCHITECTURES = {
    "MobileNetV2": "mobilenet_v2",
    "MobileNetV3Small": "mobilenet_v3",
    "EfficientNetB0": "efficientnet",
    "ResNet50": "resnet50",
    "DenseNet121": "densenet",
}


@pytest.fixture(autouse=True)
def _free_keras():
    yield
    import keras

    keras.backend.clear_session()
    gc.collect()


def digits_images(size=SIZE, count=None):
    """sklearn's digits, shuffled (the first `count`), as 0..255 RGB images of size x size:
    (x_train, y_train, x_test, y_test)."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))[:count]
    images = tf.image.resize(digits.images[order, :, :, None].astype(np.float32) / 16.0, (size, size)).numpy()
    x, y = np.repeat(images, 3, axis=-1) * 255.0, digits.target[order]
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def deterministic(seed=0):
    """Same network, same artifacts, same verdicts on every run of this machine: Python, NumPy
    and TensorFlow seeded, TensorFlow's deterministic kernels only, and one inter-op thread
    (independent ops finishing in another order must not change a sum). Call it in a fresh
    process before TensorFlow runs anything: the thread setting is fixed at its first op.

    Determinism alone does not make a verdict safe: another CPU (AVX-512 instead of AVX2, more
    cores) trains another network. So the tolerances these tests apply are the precision's
    defaults where the measured values keep a margin to them, and say so where a limit needed one
    (`EXTRA`)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)


def trained_application(name, data):
    """`keras.applications.<name>` (weights=None) trained briefly on the digits, BN statistics set."""
    import keras

    x_train, y_train, _, _ = data
    preprocess = getattr(keras.applications, ARCHITECTURES[name]).preprocess_input
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    model = getattr(keras.applications, name)(weights=None, input_tensor=inputs, classes=10, classifier_activation=None)
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    x = preprocess(x_train.copy())
    model.fit(x, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    assert set_batchnorm_statistics(model, {"image": x[:BN_BATCH]}) > 0
    return model, preprocess


def _onnx_inputs(path):
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


# What each network is converted to: (format, precisions, quantize recipe for int8).
CONVERSIONS = [("tflite", ["fp32", "int8"], None), ("onnx", ["fp32", "int8"], None)]
# EfficientNetB0 (swish, squeeze-excite) loses too much in post-training int8, and no recipe
# saves it: cosine 0.951 (TFLite), 0.951 (ONNX Runtime, min/max), 0.966 (percentile 99.99);
# TensorFlow's own converter by hand: 0.954. The error is 8-bit *activations* (a simulator
# rounding only activations gives 0.959; weights per-tensor or per-channel change nothing;
# int16x8 passes at 0.9988), spread evenly over its ~250 quantized tensors (each layer alone
# costs 0.0002-0.0024 of cosine, the costs add up with depth) because swish leaves ranges twice
# as wide relative to their spread as MobileNetV2's ReLU6, on a reference with many close
# top-2 logits. Keeping any block, the SE paths or the head float stays below 0.96; keeping
# all but blocks 3-4 float reaches 0.991 but top-1 agreement 0.945. Validation must catch it.
# Quantization-aware training gets it through: `ek.quantize_aware` (8 epochs at 1e-4; BN folded,
# kernels on the int8 grid, ranges the model's own), converted to int8 in both formats and
# validated against the QAT model, passes (measured in this test: TFLite cosine 0.9884 / top-1
# 0.977, ONNX 0.9885 / 0.980; a separate run 0.9897 / 0.972 in both; 4 epochs gave 0.983-0.988
# with top-1 0.945-0.967, too close to call). The QAT model scores 0.92 on the test split.
CAUGHT = {("EfficientNetB0", "tflite", "int8"), ("EfficientNetB0", "onnx", "int8")}
# int16x8 keeps EfficientNetB0 near float (cosine 0.9974-0.9988 against its 0.995 limit), but this
# 3-epoch network has many near-tied top-2 logits, and the test split is 397 images: the default
# limits are 4 images of accuracy (1 point) and 12 of top-1 agreement (0.97). A fresh clone measured
# a drop of 1.008 points (4 images) where other runs measured 0; a run here had top-1 agreement
# 0.977 (9 images). Limits on the edge of what the method holds make the verdict a coin toss, so
# this artifact is held to int8's accuracy and agreement limits (2 points, 0.95) and keeps its own
# cosine limit; the overrides are recorded in its manifest (tolerance_overrides).
INT16X8_MARGIN = {
    "name": "int16x8-margin",
    "precision": "int16x8",
    "formats": ["tflite"],
    "calibration": {"samples": 200, "method": "minmax"},
    "tolerance": {"max_accuracy_drop": 2.0, "min_top1_agreement": 0.95},
}
EXTRA = {"EfficientNetB0": [("tflite", ["int16x8"], INT16X8_MARGIN)]}
QAT = {"EfficientNetB0": {"epochs": 8, "learning_rate": 1e-4}}  # quantize_aware arguments


def _convert(model, format, precisions, recipe, **common):
    """The artifacts of one `ek.convert` call, also when some fail validation."""
    try:
        return ek.convert(model, formats=[format], precisions=precisions, recipe=recipe, **common)
    except ek.conversion.ValidationFailed as e:
        return e.artifacts


def train_and_convert(name, out):
    """Trains `name` and converts it to every artifact it gets; writes out/result.json with the
    reference's test accuracy, its logits' spread and the artifact paths."""
    import json

    deterministic()
    data = digits_images()
    model, preprocess = trained_application(name, data)
    x_train, _, x_test, y_test = data
    x_train, x_test = preprocess(x_train.copy()), preprocess(x_test.copy())
    logits = model.predict(x_test, verbose=0)
    common = dict(calibration=x_train[:CALIBRATION], data=(x_test, y_test), out=out, name=name.lower())
    arts = [a for conversion in CONVERSIONS + EXTRA.get(name, []) for a in _convert(model, *conversion, **common)]
    if name in QAT:
        qat = ek.quantize_aware(model, (x_train, data[1]), **QAT[name])
        common["name"] = f"{name.lower()}-qat"
        arts += [a for fmt in ("tflite", "onnx") for a in _convert(qat, fmt, ["int8"], None, **common)]
    result = {
        "accuracy": float(np.mean(logits.argmax(1) == y_test)),
        "spread": float(logits.std(axis=0).mean() / np.abs(logits).mean()),
        "artifacts": [str(a.path) for a in arts],
    }
    (Path(out) / "result.json").write_text(json.dumps(result))


def _in_child(name, out):
    """`train_and_convert` in a fresh Python, so each network's memory (ResNet50's ONNX export
    alone peaks at GBs) goes back to the system when it is done."""
    import json
    import os
    import subprocess
    import sys

    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_applications as t; "
        f"t.train_and_convert({name!r}, {str(out)!r})"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "EDGEKERAS_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads((Path(out) / "result.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_application_converts_to_both_formats_at_fp32_and_int8(name, tmp_path):
    from edgekeras.artifact import Artifact

    result = _in_child(name, tmp_path)
    # A meaningful reference: it learned the digits and its logits vary with the input.
    assert result["accuracy"] > 0.5 and result["spread"] > 0.2, result
    arts = [Artifact.load(path) for path in result["artifacts"]]

    expected = [(f, p) for f, ps, _ in CONVERSIONS + EXTRA.get(name, []) for p in ps]
    expected += [("tflite", "int8"), ("onnx", "int8")] if name in QAT else []
    assert [(a.format, a.precision) for a in arts] == expected
    for art in arts:
        v = art.manifest["validation"]
        out = v["outputs"][0]
        print(
            f"{art.path.name}: cosine {out['cosine']:.5f}  top-1 agreement {out['top1_agreement']:.3f}  "
            f"accuracy {v['accuracy']:.4f} ({v['accuracy_delta']:+.2f} pts)  "
            f"{'pass' if v['passed'] else 'FAIL'}"
        )
        assert v["data"] == "labelled data" and v["accuracy_delta"] is not None
        qat = art.path.name.startswith(f"{name.lower()}-qat")  # validated against the QAT model
        if (name, art.format, art.precision) in CAUGHT and not qat:  # a wrong artifact, caught by its cosine
            assert v["passed"] is False and out["cosine"] < v["tolerance"]["min_cosine"], v
        else:
            assert v["passed"] is True, (art.path.name, v["failures"])
        if art.format == "onnx":  # no Normalization mean/variance left as graph inputs (EfficientNet)
            assert _onnx_inputs(art.path) == ["image"]
    assert next(a for a in arts if (a.format, a.precision) == ("onnx", "int8")).manifest["weights"] == "uint8"


def test_batchnorm_statistics_in_chunks_are_the_mean_of_the_chunks():
    """batch_size= bounds the activations one pass holds; the moving statistics are then the
    mean of the equal chunks' means and variances, and the layers' momentum is restored."""
    import keras

    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 4, 4, 2)).astype(np.float32)
    inputs = keras.Input((4, 4, 2), name="image")
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    assert set_batchnorm_statistics(model, {"image": x}, batch_size=16) == 1
    bn = model.get_layer("bn")
    chunks = x.reshape(4, 16, 4, 4, 2)
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), chunks.var(axis=(1, 2, 3)).mean(axis=0), rtol=1e-4)
    assert bn.momentum == 0.99


def test_onnx_keeps_captured_constants_out_of_the_graph_inputs(tmp_path):
    """A Normalization layer's mean/variance are tensors the serving function captures; tf2onnx
    makes them graph inputs (STACK-NOTES: EfficientNet). They must be stored in the graph."""
    import keras

    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 6)).astype(np.float32)
    inputs = keras.Input((6,), name="features")
    adapted = keras.layers.Normalization()
    adapted.adapt(x)
    given = keras.layers.Normalization(mean=[1.0] * 6, variance=[4.0] * 6)
    outputs = keras.layers.Dense(3, name="scores")(keras.layers.Concatenate()([adapted(inputs), given(inputs)]))
    model = keras.Model(inputs, outputs)
    (art,) = ek.convert(model, formats=["onnx"], precisions=["fp32"], data={"features": x}, out=tmp_path)
    assert _onnx_inputs(art.path) == ["features"]
    assert art.manifest["validation"]["passed"] is True


def test_onnx_converts_grouped_convolutions_and_exact_gelu(tmp_path):
    """Keras runs a grouped Conv2D through a nested XLA-compiled function and exact GELU through
    Erfc; tf2onnx left both in the graph as TensorFlow ops, which ONNX Runtime refused to load
    (ConvNeXt). The exporter inlines the call and lowers Erfc: plain ONNX Conv (group) and Erf."""
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 6), name="image")
    h = keras.layers.Conv2D(6, 3, groups=3, padding="same", name="grouped")(inputs)
    h = keras.layers.Activation("gelu", name="gelu")(h)
    outputs = keras.layers.Dense(4, name="scores")(keras.layers.GlobalAveragePooling2D()(h))
    x = np.random.default_rng(0).normal(0.0, 2.0, (32, 8, 8, 6)).astype(np.float32)
    (art,) = ek.convert(
        keras.Model(inputs, outputs), formats=["onnx"], precisions=["fp32"], data={"image": x}, out=tmp_path
    )
    assert art.manifest["validation"]["passed"] is True, art.manifest["validation"]
    ops = {n.op_type for n in onnx.load(str(art.path)).graph.node}
    assert {"Conv", "Erf"} <= ops and not ops & {"StatefulPartitionedCall", "Erfc"}, ops
    conv = next(n for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv")
    assert {a.name: a.i for a in conv.attribute}.get("group") == 3


def test_onnx_names_an_op_tf2onnx_cannot_convert(tmp_path):
    """An op no ONNX route lowers is a failed conversion (exit 1) naming the op and its layer,
    not a file ONNX Runtime refuses to load, and not bad input."""
    import keras
    import tensorflow as tf

    from edgekeras.errors import ConversionError

    class LogGamma(keras.layers.Layer):
        def call(self, x):
            return tf.math.lgamma(x)

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(LogGamma(name="log_gamma")(inputs)))
    with pytest.raises(ConversionError) as err:
        ek.convert(model, formats=["onnx"], precisions=["fp32"], out=tmp_path)
    message = str(err.value)
    assert "Lgamma (layers: log_gamma)" in message and "--format tflite" in message, message
    assert err.value.exit_code == 1 and list(tmp_path.iterdir()) == []
