"""Quantize recipes (`quantize/*.yaml`): the strict schema, every shipped recipe on a trained
model, settings that reach the artifact, tolerances recorded, and the CLI's `--recipe`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek
from edgekeras.errors import InputError
from edgekeras.quantize_recipes import load_quant_recipe, recipe_names, recipes_dir


@pytest.fixture(scope="module", autouse=True)
def _fresh_keras_names():
    """Keras numbers unnamed layers per process (dense, dense_1, ...); reset the counters after
    this module so later tests that expect a first 'dense' layer still get one."""
    yield
    import keras

    keras.backend.clear_session()


REQUIRED = {"int8-default", "int8-per-tensor", "int8-percentile", "int8-s8s8", "fp16", "dynamic", "int16x8"}


def test_every_shipped_recipe_loads():
    names = set(recipe_names())
    assert names >= REQUIRED
    for name in names:
        recipe = load_quant_recipe(name)
        assert recipe.name == name and recipe.path.parent == recipes_dir()
        assert recipe.description


def test_every_precision_default_recipe_is_shipped():
    from edgekeras.precisions import PRECISIONS

    for precision in PRECISIONS.values():
        if precision.default_recipe:
            assert load_quant_recipe(precision.default_recipe).precision == (precision.base or precision.name)


def _write(tmp_path, text, name="custom.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("precision: int8\nper_chanel: false\n", "Unknown key 'per_chanel'"),
        ("precision: int8\nper_chanel: false\n", "Did you mean 'per_channel'?"),
        ("precision: int9\n", "Expected 'precision' to be one of"),
        ("precision: int8\ncalibration: {method: percentil}\n", "Did you mean 'percentile'?"),
        ("precision: int8\ncalibration: {method: entropy}\n", "one of 'minmax', 'percentile'"),
        ("precision: int8\ncalibration: {samples: -5}\n", "Expected 'calibration.samples' to be a positive integer"),
        ("precision: int8\ncalibration: {sampels: 5}\n", "Unknown key 'calibration.sampels'"),
        ("precision: int8\nkeep_float: {layer: [dense]}\n", "Did you mean 'layers'?"),
        ("precision: int8\ntolerance: {min_cosin: 0.9}\n", "Did you mean 'min_cosine'?"),
        ("precision: int8\ntolerance: {min_cosine: high}\n", "Expected 'tolerance.min_cosine' to be a number"),
        ("precision: int8\nactivations: int4\n", "Expected 'activations' to be one of"),
        ("per_channel: true\n", "Missing required key 'precision'"),
        ("precision: [int8\n", "is not valid YAML"),
        ("- int8\n", "Expected a mapping of recipe keys"),
    ],
)
def test_schema_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_quant_recipe(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_recipe_name_suggests_the_closest():
    with pytest.raises(InputError) as err:
        load_quant_recipe("int8-percentil")
    assert "Did you mean 'int8-percentile'?" in str(err.value)
    assert "int8-default" in str(err.value)  # the valid names are listed


def test_a_new_recipe_is_just_a_file(digits_run, tmp_path):
    path = _write(
        tmp_path,
        "description: fewer samples\nprecision: int8\ncalibration: {samples: 50}\n"
        "tolerance: {max_accuracy_drop: 1.5}\n",
        "int8-fifty.yaml",
    )
    art = ek.convert(
        digits_run.model,
        formats=["tflite"],
        recipe=path,
        calibration=digits_run.data.calibration(),
        data=digits_run.data.test,
        out=tmp_path / "out",
    )[0]
    assert art.path.name.endswith("-tflite-int8-fifty.tflite")  # named after the recipe
    manifest = json.loads(art.manifest_path.read_text())
    assert manifest["recipe"] == "int8-fifty"
    assert manifest["calibration_samples"] == 50
    assert manifest["tolerance_overrides"] == {"max_accuracy_drop": 1.5}
    assert manifest["validation"]["tolerance"]["max_accuracy_drop"] == 1.5
    assert manifest["validation"]["tolerance"]["min_cosine"] == 0.98  # the precision's default stays


def test_recipe_tolerance_decides_pass_or_fail(digits_run, tmp_path):
    recipe = {"name": "strict", "precision": "int8", "tolerance": {"min_cosine": 0.9999999, "max_abs_error": 1e-6}}
    with pytest.raises(ek.ValidationFailed) as err:
        ek.convert(
            digits_run.model,
            formats=["onnx"],
            recipe=recipe,
            calibration=digits_run.data.calibration(),
            data=digits_run.data.test,
            out=tmp_path,
        )
    text = str(err.value)
    assert "cosine" in text and "max_abs_error" in text  # every failing metric is listed
    assert "int8: `edgekeras inspect ARTIFACT --layers --reference MODEL`" in text  # and what to try
    assert err.value.artifacts[0].manifest["validation"]["passed"] is False


@pytest.fixture(scope="module")
def onnx_recipes(digits_run, digits_artifacts, tmp_path_factory):
    """The trained digits model through every shipped ONNX int8 recipe (the default one is
    conftest's `digits_artifacts`: the same conversion)."""
    out = tmp_path_factory.mktemp("onnx-recipes")
    arts = {"int8-default": digits_artifacts["onnx", "int8"]}
    for name in ("int8-per-tensor", "int8-percentile", "int8-s8s8", "int8-u8s8"):
        arts[name] = ek.convert(
            digits_run.model,
            formats=["onnx"],
            recipe=name,
            calibration=digits_run.data.calibration(),
            data=digits_run.data.test,
            out=out,
        )[0]
    return arts


def _qdq_types(path):
    """(activation zero-point dtypes, weight scale lengths) of a QDQ graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    activation_types, weight_scales = set(), []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            activation_types.add(inits[node.input[2]].dtype.name)
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].ndim > 1:
            weight_scales.append(inits[node.input[1]].size)
    return activation_types, weight_scales


def test_onnx_recipes_reach_the_graph(onnx_recipes):
    acts, scales = _qdq_types(onnx_recipes["int8-default"].path)
    assert acts == {"uint8"} and max(scales) > 1  # uint8 activations, per-channel
    acts, scales = _qdq_types(onnx_recipes["int8-s8s8"].path)
    assert acts == {"int8"}
    acts, scales = _qdq_types(onnx_recipes["int8-per-tensor"].path)
    assert set(scales) == {1}  # one scale per weight tensor
    for name, art in onnx_recipes.items():
        assert art.manifest["recipe"] == name
        assert art.manifest["validation"]["passed"], (name, art.manifest["validation"]["failures"])
    assert onnx_recipes["int8-percentile"].manifest["quantization"]["calibration"]["method"] == "percentile"
    assert onnx_recipes["int8-percentile"].path.name.endswith("-onnx-int8-percentile.onnx")


def _weight_range(path):
    """(dtype, largest |value - zero point|) of the graph's weight tensors."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    spans = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and inits[node.input[0]].ndim > 1:
            q, zero = inits[node.input[0]].astype(np.int32), inits[node.input[2]].astype(np.int32)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zero = zero.reshape([-1 if i == axis else 1 for i in range(q.ndim)]) if zero.ndim else zero
            spans.setdefault(inits[node.input[0]].dtype.name, []).append(int(np.abs(q - zero).max()))
    ((dtype, values),) = spans.items()
    return dtype, max(values)


def test_onnx_int8_weight_types_and_ranges(onnx_recipes):
    # U8U8 by default: exact on every CPU; int8 weights are 7-bit unless the recipe asks for
    # full range (AVX2-only CPUs add u8 x s8 pairs in 16 bits, which full-range weights overflow).
    dtype, span = _weight_range(onnx_recipes["int8-default"].path)
    assert dtype == "uint8" and span > 64 and onnx_recipes["int8-default"].manifest["reduce_range"] is False
    assert _weight_range(onnx_recipes["int8-s8s8"].path)[1] <= 64
    assert onnx_recipes["int8-s8s8"].manifest["reduce_range"] is True
    assert _weight_range(onnx_recipes["int8-u8s8"].path) == ("int8", 127)
    assert onnx_recipes["int8-u8s8"].manifest["reduce_range"] is False


def test_reduce_range_is_refused_for_tflite(digits_run, tmp_path):
    with pytest.raises(InputError, match="reduce_range"):
        ek.convert(
            digits_run.model,
            formats=["tflite"],
            recipe={"precision": "int8", "reduce_range": False},
            calibration=digits_run.data.calibration(),
            out=tmp_path,
        )
    assert list(tmp_path.glob("*")) == []


def test_percentile_calibration_changes_the_ranges(onnx_recipes):
    from onnx import load, numpy_helper

    def activation_scales(path):
        graph = load(str(path)).graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        return sorted(
            float(inits[n.input[1]]) for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
        )

    assert activation_scales(onnx_recipes["int8-percentile"].path) != activation_scales(
        onnx_recipes["int8-default"].path
    )


def test_tflite_per_tensor_recipe(digits_run, tmp_path):
    from edgekeras.runtimes import open_session

    art = ek.convert(
        digits_run.model,
        formats=["tflite"],
        recipe="int8-per-tensor",
        calibration=digits_run.data.calibration(),
        data=digits_run.data.test,
        out=tmp_path,
    )[0]
    assert art.manifest["validation"]["passed"]
    interpreter = open_session(art.path).interpreter
    weights = [
        d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8 and len(d["shape"]) == 4
    ]  # conv kernels
    assert weights and all(len(d["quantization_parameters"]["scales"]) == 1 for d in weights)


def test_keep_float_layers_in_both_formats(digits_run, tmp_path):
    last = digits_run.model.layers[-1].name
    recipe = {"name": "int8-float-head", "precision": "int8", "keep_float": {"layers": [last]}}
    arts = ek.convert(
        digits_run.model,
        formats=["tflite", "onnx"],
        recipe=recipe,
        calibration=digits_run.data.calibration(),
        data=digits_run.data.test,
        out=tmp_path,
    )
    for art in arts:
        kept = art.manifest["kept_float"]
        assert kept["layers"] == [last] and kept["nodes"], art.format
        # the last op (a SOFTMAX) outputs a tensor named after the signature, and belongs to the layer too
        assert all(last in n or n.startswith("StatefulPartitionedCall") for n in kept["nodes"])
        assert art.manifest["validation"]["passed"]
    from edgekeras.runtimes import open_session

    tflite = next(a for a in arts if a.format == "tflite")
    floats = [
        d
        for d in open_session(tflite.path).interpreter.get_tensor_details()
        if d["dtype"] == np.float32 and len(d["shape"]) == 2 and d["shape"][0] == 10
    ]
    assert floats  # the last Dense kernel (10 x 64) stayed float32


def test_keep_float_finds_a_last_layer_whose_output_is_named_after_the_signature(tmp_path):
    """The model's last op outputs 'StatefulPartitionedCall_1:0'; its weights still name the layer."""
    import keras

    inp = keras.Input((12,), name="features")
    model = keras.Model(inp, keras.layers.Dense(4, name="logits")(keras.layers.Dense(16, activation="relu")(inp)))
    x = np.random.default_rng(0).random((32, 12)).astype("float32")
    recipe = {"precision": "int8", "formats": ["tflite"], "keep_float": {"layers": ["logits"]}}
    (art,) = ek.convert(model, recipe=recipe, calibration=x, data={"features": x}, out=tmp_path)
    assert art.manifest["kept_float"]["nodes"] and art.manifest["validation"]["passed"]
    assert "FULLY_CONNECTED" in art.manifest["float_ops"]


def test_keep_float_unknown_layer_is_an_input_error(digits_run, tmp_path):
    recipe = {"precision": "int8", "keep_float": {"layers": ["no_such_layer"]}}
    for fmt in ("tflite", "onnx"):
        with pytest.raises(InputError, match="no_such_layer"):
            ek.convert(
                digits_run.model,
                formats=[fmt],
                recipe=recipe,
                calibration=digits_run.data.calibration(),
                out=tmp_path / fmt,
            )
        assert not any((tmp_path / fmt).glob("*")) if (tmp_path / fmt).exists() else True


def test_recipe_settings_a_format_would_ignore_are_refused(digits_run, tmp_path):
    cal = digits_run.data.calibration()
    with pytest.raises(InputError, match="recipe 'int8-percentile' is for"):
        ek.convert(digits_run.model, formats=["tflite"], recipe="int8-percentile", calibration=cal, out=tmp_path)
    recipe = {"name": "percentile-everywhere", "precision": "int8", "calibration": {"method": "percentile"}}
    with pytest.raises(InputError, match=r"calibration\.method=percentile"):
        ek.convert(digits_run.model, formats=["tflite"], recipe=recipe, calibration=cal, out=tmp_path)
    with pytest.raises(InputError, match="Expected --precision to include 'int8'"):
        ek.convert(digits_run.model, precisions=["fp16"], recipe="int8-s8s8", out=tmp_path)
    assert list(tmp_path.glob("*")) == []


# Slow: which artifacts a recipe picks is planning (test_conversion_plan.py::
# test_a_recipe_picks_its_precision_and_formats_and_options_reach_the_plan, fp16 and int16x8), and
# the digits CNN converts and validates at fp16 and int16x8 in test_precisions.py (digits_artifacts).
@pytest.mark.slow
def test_recipe_picks_its_precision_and_formats(digits_run, tmp_path):
    arts = ek.convert(digits_run.model, recipe="fp16", data=digits_run.data.test, out=tmp_path)
    assert {(a.format, a.precision) for a in arts} == {("tflite", "fp16"), ("onnx", "fp16")}
    arts = ek.convert(
        digits_run.model,
        recipe="int16x8",
        calibration=digits_run.data.calibration(),
        data=digits_run.data.test,
        out=tmp_path / "16",
    )
    assert [(a.format, a.precision) for a in arts] == [("tflite", "int16x8")]
    assert arts[0].manifest["validation"]["passed"]


def test_cli_recipe(digits_run, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", digits_run.path, "--recipe", "int8-s8s8", "--out", out, "--json")
    assert result.exit_code == 0, result.describe()
    doc = result.json()
    assert [a["recipe"] for a in doc["artifacts"]] == ["int8-s8s8"] and doc["passed"]

    result = invoke("convert", digits_run.path, "--recipe", "int8-s8s9", "--out", tmp_path / "bad")
    assert result.exit_code == 2
    assert "Did you mean 'int8-s8s8'?" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()
