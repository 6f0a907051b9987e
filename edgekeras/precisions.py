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

    max_abs_error: float | None = None      # <= limit * max(1, |reference| range)
    min_cosine: float | None = None          # >= limit, per output
    min_top1_agreement: float | None = None  # >= limit, classifier outputs only
    max_accuracy_drop: float | None = None   # percentage points, on labelled data

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def merged(self, overrides):
        """A copy with `overrides` (a dict) applied; unknown keys are an error."""
        from edgekeras.errors import InputError, suggest

        valid = set(self.__dataclass_fields__)
        for key in overrides:
            if key not in valid:
                raise InputError(
                    f"Expected a tolerance key in {sorted(valid)}. Received: '{key}'."
                    f"{suggest(key, valid)}"
                )
        return Tolerance(**{**self.__dict__, **overrides})


@dataclass(frozen=True)
class Precision:
    name: str
    description: str
    tolerance: Tolerance = field(default_factory=Tolerance)
    needs_calibration: bool = False


PRECISIONS = {
    p.name: p
    for p in [
        Precision("fp32", "32-bit float, no quantization",
                  Tolerance(max_abs_error=1e-4, min_cosine=0.9999, min_top1_agreement=0.99,
                            max_accuracy_drop=0.5)),
        Precision("int8", "full-integer int8: weights and activations, calibrated",
                  Tolerance(min_cosine=0.98, min_top1_agreement=0.95, max_accuracy_drop=2.0),
                  needs_calibration=True),
    ]
}


def get_precision(name):
    from edgekeras.errors import expected_one_of

    if name not in PRECISIONS:
        raise expected_one_of("--precision", name, PRECISIONS)
    return PRECISIONS[name]
