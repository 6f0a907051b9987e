"""The precisions edgekeras knows, each with the tolerance its artifacts are validated against.

A precision is data: adding one is adding an entry here (and exporters that produce it).
Tolerances are deliberately absolute-and-relative: `max_abs_error` is scaled by the
reference output's range, so a logit output of magnitude 50 and a softmax are held to the
same standard. Which limits apply to an output depends on its kind (`heads.KINDS`):
classifiers get top-1 agreement and accuracy drop, regressors relative error and the ratio of
their error metric, every output max abs error and cosine.

The regression limits were measured. Trained models (a Conv1D time-series regressor, a
digits autoencoder, a house-price MLP on standardized features): relative error up to 0.0005
(fp16), 0.014 (dynamic), 0.017 (int8), 0.009 (int16x8); MAE/RMSE ratios up to 1.0013 (fp16),
1.023 (dynamic; MSE 1.038), 1.005 (int8). The coverage table's random-weight models on
generated inputs, whose outputs vary little across samples: relative error up to 0.06
(MultiHeadAttention, dynamic), 0.053 (AdditiveAttention, int8) and 0.099 (AdditiveAttention,
int16x8, whose 16-bit softmax lost more there than int8's). The same house-price MLP on raw
features (square feet next to bedroom counts, one int8 scale for both) kept a cosine of
0.993 in int8 while its MAE grew 1.49x and its relative error reached 0.29 (int16x8: 1.99x,
0.53): the limits sit above every healthy figure and well below those.

The fp32 limit on max abs error (1e-3 of the range) was measured too: keras.applications'
EfficientNet family (random weights, BatchNormalization statistics from real images) ends in
logits spanning ~200-550 after dozens of swish/sigmoid blocks, and there any two float32
implementations disagree by ~1e-4 of the range -- LiteRT and ONNX Runtime by 6e-5 of it with
each other, by up to 3.3e-4 from Keras, at cosines above 0.999999998 -- so the former 1e-4
failed correct artifacts. Every other architecture stays below 1.7e-4; a converter bug (a
wrong padding, layout or epsilon) shows as 1e-2 of the range or a cosine below 0.9999.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekeras.errors import InputError, expected_one_of, suggest


@dataclass(frozen=True)
class Tolerance:
    """Limits an artifact must meet against the Keras model on every output."""

    max_abs_error: float | None = None  # <= limit * max(1, |reference| range)
    min_cosine: float | None = None  # >= limit, per output
    min_top1_agreement: float | None = None  # >= limit, classifier outputs only
    max_accuracy_drop: float | None = None  # percentage points, per classifier output, on labelled data
    # Regressor outputs: mean |artifact - Keras| over the reference's spread (mean per-column
    # standard deviation across samples), <= limit. Relative to the spread rather than to the
    # values' magnitude: prices of 50..500 are all far from 0, so an error of 30 is 10 % of a
    # typical price yet a third of what tells two houses apart (cosine stays ~0.99 there).
    max_relative_error: float | None = None
    # Regressor outputs, on labelled data: the artifact's error metric (MAE, RMSE, ... as the
    # model compiled it) over the Keras model's, <= limit.
    max_metric_ratio: float | None = None

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def merged(self, overrides):
        """A copy with `overrides` (a dict) applied; unknown keys are an error."""
        valid = set(self.__dataclass_fields__)
        for key in overrides:
            if key not in valid:
                raise InputError(
                    f"Expected a tolerance key in {sorted(valid)}. Received: '{key}'.{suggest(key, valid)}"
                )
        return Tolerance(**{**self.__dict__, **overrides})


@dataclass(frozen=True)
class Precision:
    """A numeric precision: its default tolerance and the quantize recipe it uses by default.

    `default_recipe` names a file in `quantize/` (None: nothing to quantize); a `--recipe`
    with the same `precision` replaces it and may override the tolerance.
    """

    name: str
    description: str
    tolerance: Tolerance = field(default_factory=Tolerance)
    needs_calibration: bool = False
    default_recipe: str | None = None
    if_failed: str = ""  # what to try when an artifact of this precision fails validation
    # A quantization-aware model (FakeQuant layers) converts to it: the converters turn its
    # simulated tensors into exactly these integer tensors. For other precisions they would
    # quantize anyway (TFLite fp16/dynamic came out full int8) or round differently (ONNX
    # Runtime re-quantizes a float graph's Q/DQ pairs on its own terms).
    takes_quantization_aware: bool = False
    # The precision whose quantize recipes it starts from (auto: an int8 recipe), or None.
    base: str | None = None


FLOAT_ADVICE = (
    "A float artifact should match closely: `edgekeras inspect ARTIFACT --layers --reference MODEL` "
    "finds the first tensor that differs (an op the converter lowers differently)."
)
QUANTIZED_ADVICE = (
    "`edgekeras inspect ARTIFACT --layers --reference MODEL` shows which tensors carry the error; "
    "then try more representative calibration data, `--recipe int8-percentile` (ONNX), a quantize "
    "recipe keeping the worst layers in float (`keep_float`), quantization-aware training "
    "(`ek.quantize_aware(model, data)`, then convert that model), or a gentler precision ({gentler})."
)

PRECISIONS = {
    p.name: p
    for p in [
        Precision(
            "fp32",
            "32-bit float, no quantization",
            Tolerance(
                max_abs_error=1e-3,
                min_cosine=0.9999,
                min_top1_agreement=0.99,
                max_accuracy_drop=0.5,
                max_relative_error=1e-3,
                max_metric_ratio=1.001,
            ),
            if_failed=FLOAT_ADVICE,
        ),
        # float16 weights (and activations where the runtime computes in fp16): ~3 significant
        # digits, so errors of ~1e-3 of the output range are expected.
        Precision(
            "fp16",
            "16-bit float weights; float inputs/outputs",
            Tolerance(
                max_abs_error=1e-2,
                min_cosine=0.999,
                min_top1_agreement=0.98,
                max_accuracy_drop=0.5,
                max_relative_error=0.005,
                max_metric_ratio=1.01,
            ),
            default_recipe="fp16",
            if_failed=FLOAT_ADVICE,
        ),
        # int8 weights, float activations: closer to the float model than full int8.
        Precision(
            "dynamic",
            "dynamic-range: int8 weights, float activations, no calibration",
            Tolerance(
                min_cosine=0.99,
                min_top1_agreement=0.95,
                max_accuracy_drop=1.0,
                max_relative_error=0.1,
                max_metric_ratio=1.05,
            ),
            default_recipe="dynamic",
            if_failed=QUANTIZED_ADVICE.format(gentler="fp16"),
        ),
        Precision(
            "int8",
            "full-integer int8: weights and activations, calibrated",
            Tolerance(
                min_cosine=0.98,
                min_top1_agreement=0.95,
                max_accuracy_drop=2.0,
                max_relative_error=0.1,
                max_metric_ratio=1.10,
            ),
            needs_calibration=True,
            default_recipe="int8-default",
            takes_quantization_aware=True,
            if_failed=QUANTIZED_ADVICE.format(gentler="int16x8 on TFLite, dynamic, fp16"),
        ),
        Precision(
            "int16x8",
            "16-bit activations, 8-bit weights, calibrated (TFLite)",
            Tolerance(
                min_cosine=0.995,
                min_top1_agreement=0.97,
                max_accuracy_drop=1.0,
                max_relative_error=0.15,
                max_metric_ratio=1.05,
            ),
            needs_calibration=True,
            default_recipe="int16x8",
            if_failed=QUANTIZED_ADVICE.format(gentler="dynamic, fp16"),
        ),
        # The accuracy-aware mix (`mixed_precision`): the caller's accuracy budget
        # (max_accuracy_drop) and/or minimum cosine are its tolerance (`conversion_plan`), over
        # int8's cosine floor, which --min-cosine replaces.
        Precision(
            "auto",
            "int8 with the layers an accuracy budget needs kept in float, calibrated",
            Tolerance(min_cosine=0.98),
            needs_calibration=True,
            default_recipe="int8-default",
            base="int8",
            if_failed=(
                "no mix of int8 and float layers met the budget; the best one found is written (its manifest's "
                "mixed_precision section lists every step). Try more representative calibration data, "
                "--recipe int8-percentile (ONNX) as the base, a looser budget, or --precision fp16."
            ),
        ),
    ]
}


def check_tolerance(mapping, where):
    """`mapping` (a recipe's `tolerance`, a target's `tolerances.<precision>`) as a dict of
    known `Tolerance` keys with numbers; errors name `where` and suggest the closest key."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise InputError(f"Expected '{where}' to be a mapping of tolerance keys. Received: {mapping!r}.")
    try:
        Tolerance().merged(mapping)  # unknown keys are an error
    except InputError as e:
        raise InputError(f"'{where}': {e}") from None
    for key, value in mapping.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(f"Expected '{where}.{key}' to be a number. Received: {value!r}.")
    return dict(mapping)


def get_precision(name):
    if name not in PRECISIONS:
        raise expected_one_of("--precision", name, PRECISIONS)
    return PRECISIONS[name]
