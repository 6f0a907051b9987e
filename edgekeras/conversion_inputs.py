"""The inputs a conversion needs: calibration samples and the data artifacts are validated on.

Where they come from, in order:
- calibration: what the caller gave, else a sample of the run's training split (a run folder
  or a training `Run`);
- validation: labelled data the caller gave, else the run's test split, else a held-out part
  of the calibration inputs (never the samples that calibrated: an int8 artifact judged on
  the inputs it was calibrated on looks better than it is), else — last resort, flagged in
  the manifest and the table — inputs generated from the signature.

Everything is read and checked against the model's signature here, before the first
artifact is converted, so a bad `--data` costs no conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.conversion_plan import ConversionPlan
from edgekeras.data.bundle import Split
from edgekeras.data.coerce import as_split
from edgekeras.data.labels import check_labels
from edgekeras.errors import InputError
from edgekeras.export.calibration import MIN_SAMPLES, calibration_split
from edgekeras.sources import ModelSource

if TYPE_CHECKING:
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Arrays
    from edgekeras.keras_model import KerasModel
    from edgekeras.signature import TensorSpec

# At most this many calibration inputs are held out to validate on, and at most this share.
HOLDOUT_MAX = 64
HOLDOUT_SHARE = 0.2
# Calibration inputs used to validate float-only conversions (nothing calibrates from them).
VALIDATION_MAX = 256

# `ConversionInputs.validation_source`: a key of `validation.DATA_SOURCES` for unlabelled
# inputs (labelled data says so itself), None for generated inputs.
HELD_OUT = "calibration_holdout"
GIVEN_INPUTS = "inputs"


@dataclass
class ConversionInputs:
    """Calibration feeds ({input: array}) and the validation split, with where each came from."""

    calibration: Arrays | None = None
    validation: Split | None = None
    validation_source: str | None = None


def conversion_inputs(
    plan: ConversionPlan, source: ModelSource, calibration: DataLike | None = None, data: DataLike | None = None
) -> ConversionInputs:
    """Reads and checks calibration and validation data for `plan` (see the module docstring)."""
    specs = source.keras_model.inputs
    run_data = source.data() if (calibration is None and plan.needs_calibration) or data is None else None
    validation, validation_source = _given_validation(data, source.keras_model)
    if validation is None and run_data is not None and run_data.test is not None and len(run_data.test):
        validation = run_data.test
    if calibration is None and run_data is not None:
        calibration = run_data.calibration(max(plan.calibration_count, 1) + HOLDOUT_MAX)
    result = ConversionInputs(validation=validation, validation_source=validation_source)
    if calibration is None:
        if plan.needs_calibration:
            raise InputError(
                "Expected calibration data for a quantized precision (int8, int16x8). Received: none. "
                "Pass --calibration FILE.npz or an image folder (calibration=...) with representative inputs, "
                "or convert a run folder (its training split calibrates)."
            )
        return result
    _check_budget_data(plan, result)
    count = plan.calibration_count if plan.needs_calibration else VALIDATION_MAX
    split = calibration_split(calibration, specs, count + HOLDOUT_MAX, plan.calibration_scale)
    _feeds(split, specs, calibration)  # the whole file checked: errors name its own shapes
    if not plan.needs_calibration:
        if result.validation is None:
            result.validation, result.validation_source = Split(split.take(VALIDATION_MAX).x), GIVEN_INPUTS
        return result
    wanted = plan.validate and result.validation is None
    calibrate_on, held_out = _hold_out(split, count) if wanted else (split, None)
    result.calibration = _feeds(calibrate_on.take(count), specs, calibration)
    if held_out is not None:
        result.validation, result.validation_source = held_out, HELD_OUT
    return result


def _check_budget_data(plan: ConversionPlan, inputs: ConversionInputs) -> None:
    """An accuracy budget is measured on labelled data: refused before anything converts without it."""
    if plan.accuracy_budget is None or (inputs.validation is not None and inputs.validation_source is None):
        return
    received = "inputs without labels" if inputs.validation is not None else "no validation data"
    raise InputError(
        f"Expected labelled data for --accuracy-budget: accuracy needs labels. Received: {received}. Pass "
        "--data DATA.npz with labels under 'y' (or 'y_<output>'), convert a run folder (its test split "
        "is labelled), or bound the mix by parity instead with --min-cosine C (e.g. 0.99; no labels needed)."
    )


def _given_validation(data: DataLike | None, keras_model: KerasModel) -> tuple[Split | None, str | None]:
    """(Split, source) of the caller's data, checked now — labels against the outputs (row
    counts, shapes, class ranges), inputs against the signature — so bad --data costs no
    conversion; (None, None) without data."""
    what = f"validation data ('{data}')" if isinstance(data, (str, Path)) else "validation data"
    split = as_split(data, what)
    if split is None:
        return None, None
    labelled = check_labels(keras_model, split, what=what)
    labelled.split.feeds(keras_model.inputs, what=what)
    return split, None if labelled.labels else GIVEN_INPUTS


def _hold_out(split: Split, count: int) -> tuple[Split, Split | None]:
    """(calibration part, held-out part): up to HOLDOUT_MAX samples held out when enough remain."""
    n = len(split)
    hold = min(HOLDOUT_MAX, int(n * HOLDOUT_SHARE))
    if hold < 1 or n - hold < min(MIN_SAMPLES, count):
        return split, None
    rest, held = split.hold_out(hold, seed=0)
    return rest, Split(held.x)


def _feeds(split: Split, specs: Sequence[TensorSpec], given: DataLike) -> Arrays:
    what = f"calibration data ('{given}')" if isinstance(given, (str, Path)) else "calibration data"
    feeds = split.feeds(specs, what=what)
    n = len(next(iter(feeds.values())))
    if n < MIN_SAMPLES:
        raise InputError(
            f"Expected at least {MIN_SAMPLES} calibration samples. Received: {n} in {what}. Too few "
            "samples give quantization ranges that do not represent the data."
        )
    return feeds
