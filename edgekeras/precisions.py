"""The precisions edgekeras knows, each with the tolerance its artifacts are validated against.

A precision is data: adding one is adding an entry here (and exporters that produce it).
Tolerances are deliberately absolute-and-relative: `max_abs_error` is scaled by the
reference output's range, so a logit output of magnitude 50 and a softmax are held to the
same standard.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tolerance:
    """Limits an artifact must meet against the Keras model on every output."""

    max_abs_error: float | None = None  # <= limit * max(1, |reference| range)
    min_cosine: float | None = None  # >= limit, per output
    min_top1_agreement: float | None = None  # >= limit, classifier outputs only
    max_accuracy_drop: float | None = None  # percentage points, on labelled data

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def merged(self, overrides):
        """A copy with `overrides` (a dict) applied; unknown keys are an error."""
        from edgekeras.errors import InputError, suggest

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
            Tolerance(max_abs_error=1e-4, min_cosine=0.9999, min_top1_agreement=0.99, max_accuracy_drop=0.5),
            if_failed=FLOAT_ADVICE,
        ),
        # float16 weights (and activations where the runtime computes in fp16): ~3 significant
        # digits, so errors of ~1e-3 of the output range are expected.
        Precision(
            "fp16",
            "16-bit float weights; float inputs/outputs",
            Tolerance(max_abs_error=1e-2, min_cosine=0.999, min_top1_agreement=0.98, max_accuracy_drop=0.5),
            default_recipe="fp16",
            if_failed=FLOAT_ADVICE,
        ),
        # int8 weights, float activations: closer to the float model than full int8.
        Precision(
            "dynamic",
            "dynamic-range: int8 weights, float activations, no calibration",
            Tolerance(min_cosine=0.99, min_top1_agreement=0.95, max_accuracy_drop=1.0),
            default_recipe="dynamic",
            if_failed=QUANTIZED_ADVICE.format(gentler="fp16"),
        ),
        Precision(
            "int8",
            "full-integer int8: weights and activations, calibrated",
            Tolerance(min_cosine=0.98, min_top1_agreement=0.95, max_accuracy_drop=2.0),
            needs_calibration=True,
            default_recipe="int8-default",
            takes_quantization_aware=True,
            if_failed=QUANTIZED_ADVICE.format(gentler="int16x8 on TFLite, dynamic, fp16"),
        ),
        Precision(
            "int16x8",
            "16-bit activations, 8-bit weights, calibrated (TFLite)",
            Tolerance(min_cosine=0.995, min_top1_agreement=0.97, max_accuracy_drop=1.0),
            needs_calibration=True,
            default_recipe="int16x8",
            if_failed=QUANTIZED_ADVICE.format(gentler="dynamic, fp16"),
        ),
    ]
}


def get_precision(name):
    from edgekeras.errors import expected_one_of

    if name not in PRECISIONS:
        raise expected_one_of("--precision", name, PRECISIONS)
    return PRECISIONS[name]
