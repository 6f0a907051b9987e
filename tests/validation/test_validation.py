"""Which checks each output gets: its kind decided by the compiled loss, else the output's
activation, else its values (top-1 agreement for classifiers only, relative error for
regressors), each check recorded with its limit or why it was skipped."""

from __future__ import annotations

import numpy as np
import pytest

import edgekeras as ek
from edgekeras.validation import classifier_outputs


def _three_heads():
    import keras

    inp = keras.Input((4,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inp)
    outputs = {
        "logits": keras.layers.Dense(3, name="logits")(h),
        "box": keras.layers.Dense(4, name="box")(h),
        "probs": keras.layers.Dense(3, activation="softmax", name="probs")(h),
    }
    return keras.Model(inp, outputs), np.random.default_rng(0).random((16, 4)).astype("float32")


def test_classifier_outputs_follow_the_compiled_loss():
    import keras

    model, x = _three_heads()
    out = {k: np.asarray(v) for k, v in model(x).items()}
    # Uncompiled: only rows that look like probabilities say "classifier".
    assert classifier_outputs(model, out) == {"logits": False, "box": False, "probs": True}
    model.compile(
        loss={
            "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "box": "mean_squared_error",
            "probs": "CategoricalCrossentropy",
        }
    )
    assert classifier_outputs(model, out) == {"logits": True, "box": False, "probs": True}


def test_a_regression_head_gets_no_top1_check(tmp_path):
    import keras

    model, x = _three_heads()
    model.compile(
        loss={
            "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "box": keras.losses.MeanAbsoluteError(),
            "probs": "categorical_crossentropy",
        }
    )
    (art,) = ek.convert(model, formats=["tflite"], precisions=["fp32"], data={"features": x}, out=tmp_path)
    top1 = {o["output"]: o["top1_agreement"] for o in art.manifest["validation"]["outputs"]}
    assert top1["box"] is None and top1["logits"] == 1.0 and top1["probs"] == 1.0


def test_heads_follow_the_loss_then_the_activation_then_the_values():
    import keras

    from edgekeras.heads import output_heads

    model, x = _three_heads()
    out = {k: np.asarray(v) for k, v in model(x).items()}
    shapes = {k: v.shape[1:] for k, v in out.items()}
    heads = output_heads(model, list(out), shapes, out)
    assert {k: (h.kind, h.basis) for k, h in heads.items()} == {
        "logits": ("regressor", "activation 'linear'"),
        "box": ("regressor", "activation 'linear'"),
        "probs": ("classifier", "activation 'softmax'"),
    }

    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred))

    model.compile(loss={"logits": "categorical_crossentropy", "box": my_loss, "probs": "binary_crossentropy"})
    heads = output_heads(model, list(out), shapes, out)
    assert heads["logits"].kind == "classifier" and heads["logits"].labels == "one_hot"
    assert (heads["box"].kind, heads["box"].basis) == ("regressor", "custom loss 'my_loss', activation 'linear'")
    assert heads["probs"].kind == "multi_label"

    # an output no activation describes (a Reshape): its values decide
    inp = keras.Input((4,), name="features")
    probs = keras.layers.Reshape((3,), name="flat")(keras.layers.Dense(3, activation="softmax")(inp))
    emb = keras.layers.Reshape((3,), name="emb")(keras.layers.Dense(3)(inp))
    other = keras.Model(inp, {"flat": probs, "emb": emb})
    out = {k: np.asarray(v) for k, v in other(x).items()}
    heads = output_heads(other, list(out), {k: v.shape[1:] for k, v in out.items()}, out)
    assert (heads["flat"].kind, heads["flat"].basis) == ("classifier", "values")
    assert (heads["emb"].kind, heads["emb"].basis) == ("other", "values")


def test_relative_error_is_taken_against_the_spread_not_the_magnitude():
    from edgekeras.validation import compare, relative_error

    rng = np.random.default_rng(0)
    prices = rng.uniform(50, 500, (200, 1))
    off = prices + rng.normal(0, 30, prices.shape)  # errors of ~24 on prices spread by ~130
    assert relative_error(prices, off) == pytest.approx(24 / 130, rel=0.1)
    assert relative_error(prices + 1000, off + 1000) == pytest.approx(relative_error(prices, off))
    assert compare("price", prices + 1000, off + 1000).cosine > 0.999  # what cosine alone would say
    constant = np.full((10, 2), 4.0)
    assert relative_error(constant, constant + 0.04) == pytest.approx(0.01)  # no spread: vs magnitude


def test_each_check_is_recorded_with_its_limit_or_why_it_was_skipped():
    from edgekeras.precisions import get_precision
    from edgekeras.validation import _judge, compare

    tol = get_precision("int8").tolerance
    ref = np.linspace(100, 300, 50)[:, None]
    parity = compare("price", ref, ref * 1.2)
    parity.relative_error, parity.metric, parity.metric_ratio, parity.labels = 0.3, "mae", 1.4, "y"
    failures = _judge(parity, ("max_abs_error", "cosine", "relative_error", "metric_ratio"), tol)
    assert [str(f) for f in failures] == [
        "output 'price': relative_error = 0.3, expected <= 0.1",
        "output 'price': mae_ratio = 1.4, expected <= 1.1",
    ]
    checks = {c["check"]: c for c in parity.checks}
    assert checks["max_abs_error"]["skipped"] == "no max_abs_error limit"  # int8 sets none
    assert checks["cosine"]["passed"] and checks["cosine"]["limit"] == 0.98
    parity = compare("price", ref, ref)
    _judge(parity, ("metric_ratio",), tol)
    assert parity.checks == [{"check": "metric_ratio", "skipped": "no labels for this output"}]


def test_regression_limits_are_overridable_where_tolerances_are(tmp_path):
    import yaml

    from edgekeras.errors import InputError
    from edgekeras.quantize_recipes import load_quant_recipe
    from edgekeras.targets import get_target

    recipe = load_quant_recipe({"precision": "int8", "tolerance": {"max_metric_ratio": 1.3, "max_relative_error": 0.1}})
    assert recipe.tolerance == {"max_metric_ratio": 1.3, "max_relative_error": 0.1}
    with pytest.raises(
        InputError, match=r"'tolerance': .*Received: 'max_metric_ratoi'\. Did you mean 'max_metric_ratio'"
    ):
        load_quant_recipe({"precision": "int8", "tolerance": {"max_metric_ratoi": 1.3}})

    target = {"description": "x", "format": "tflite", "precision": "int8", "runtime": "litert"}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({**target, "tolerances": {"int8": {"max_metric_ratio": 1.2}}}))
    assert get_target(str(path)).tolerances == {"int8": {"max_metric_ratio": 1.2}}
    for tolerances, message in (
        ({"int8": {"max_relative_eror": 0.1}}, r"'tolerances\.int8': .*Did you mean 'max_relative_error'"),
        ({"int9": {"min_cosine": 0.9}}, r"keyed by precision .*Received: 'int9'\. Did you mean 'int8'"),
        ({"int8": {"min_cosine": "high"}}, r"Expected 'tolerances\.int8\.min_cosine' to be a number"),
    ):
        path = tmp_path / f"t{len(message)}.yaml"
        path.write_text(yaml.safe_dump({**target, "tolerances": tolerances}))
        with pytest.raises(InputError, match=message):
            get_target(str(path))
