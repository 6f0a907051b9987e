"""What `convert` will do, decided before any model is loaded: a pure `ConversionPlan`.

Planning resolves a target into formats, precisions and a quantize recipe, picks one exporter
per (format, precision) and the recipe each precision uses, names the artifact files, and
checks every name and option on the way — so `--precision fp61` or a recipe a format would
ignore is refused in a fraction of a second, before TensorFlow is imported and before
anything is written. `conversion.convert` then executes the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.errors import InputError
from edgekeras.export import Exporter, check_recipe, exists, get_exporter
from edgekeras.export import formats as all_formats
from edgekeras.export.onnx import DEFAULT_OPSET, check_opset
from edgekeras.mixed_precision.exporter import register_auto
from edgekeras.precisions import get_precision
from edgekeras.quantize_recipes import QuantRecipe, load_quant_recipe, recipes_for
from edgekeras.targets import Target, get_target

if TYPE_CHECKING:
    from edgekeras.hints import PathLike


@dataclass(frozen=True)
class ConversionJob:
    """One artifact to write: the exporter that writes it and the quantize recipe it follows."""

    exporter: Exporter
    recipe: QuantRecipe

    @property
    def format(self) -> str:
        return self.exporter.format

    @property
    def precision(self) -> str:
        return self.exporter.precision

    @property
    def label(self) -> str:
        """The file-name tag: the precision, or the recipe name when it is not the default one."""
        precision = get_precision(self.precision)
        label = self.precision if self.recipe.name in (self.precision, precision.default_recipe) else self.recipe.name
        if precision.base and label != self.precision:  # auto from int8-percentile: auto-int8-percentile
            label = f"{self.precision}-{label}"
        return label + ("-int8io" if self.recipe.io_dtype == "int8" else "")

    def path(self, out: Path, stem: str) -> Path:
        return Path(out) / f"{stem}-{self.format}-{self.label}{self.exporter.suffix}"


@dataclass(frozen=True)
class ConversionPlan:
    """Every artifact `convert` writes, with the options that apply to all of them."""

    jobs: tuple[ConversionJob, ...]
    opset: int = DEFAULT_OPSET
    fixed_batch: int | None = None
    allow_select_ops: bool = False
    validate: bool = True
    target: Target | None = None
    calibration_samples: int | None = None  # an explicit count (overrides every recipe's)
    input_lengths: dict[str, int] | None = None  # {input: length} for free sequence lengths (checked against the model)
    accuracy_budget: float | None = None  # auto: the accuracy points a mix may lose (needs labelled data)
    min_cosine: float | None = None  # auto: the cosine a mix must keep on every output

    @property
    def precisions(self) -> list[str]:
        return list(dict.fromkeys(job.precision for job in self.jobs))

    @property
    def calibrated_jobs(self) -> list[ConversionJob]:
        return [job for job in self.jobs if get_precision(job.precision).needs_calibration]

    @property
    def needs_calibration(self) -> bool:
        return bool(self.calibrated_jobs)

    @property
    def calibration_count(self) -> int:
        """How many calibration samples to draw: the explicit count, else the largest a recipe asks."""
        return self.calibration_samples or max((job.recipe.samples for job in self.calibrated_jobs), default=0)

    @property
    def calibration_scale(self) -> float | None:
        """The image scale a recipe sets for image-folder calibration (None: the default)."""
        return next(
            (j.recipe.calibration["scale"] for j in self.calibrated_jobs if j.recipe.calibration["scale"]), None
        )

    def paths(self, out: PathLike, stem: str) -> list[Path]:
        return [job.path(Path(out), stem) for job in self.jobs]


def plan_conversion(
    formats: str | Iterable[str] | None = None,
    precisions: str | Iterable[str] | None = None,
    recipe: str | Path | dict[str, Any] | QuantRecipe | None = None,
    target: PathLike | None = None,
    int8_io: bool = False,
    fixed_batch: int | None = None,
    opset: int | None = None,
    allow_select_ops: bool = False,
    calibration_samples: int | None = None,
    validate: bool = True,
    input_lengths: dict[str, int] | None = None,
    accuracy_budget: float | None = None,
    min_cosine: float | None = None,
) -> ConversionPlan:
    """Checks the options of `convert` and decides its artifacts; see `conversion.convert`.

    Nothing here loads a model or imports TensorFlow. Bad names and combinations raise
    `InputError` naming the option.
    """
    target_obj = get_target(target) if target is not None else None
    if target_obj is not None:
        implied = target_obj.conversion_options(formats, precisions, recipe, int8_io, fixed_batch)
        formats, precisions, recipe = implied["formats"], implied["precisions"], implied["recipe"]
        int8_io, fixed_batch = implied["int8_io"], implied["fixed_batch"]
    chosen = load_quant_recipe(recipe) if recipe is not None else None
    precisions = _as_list(
        precisions if precisions is not None else [chosen.precision if chosen else "fp32"], "precisions"
    )
    for p in precisions:
        get_precision(p)
    register_auto()
    explicit = formats is not None
    if not explicit:
        formats = list(chosen.formats) if chosen and chosen.formats else all_formats()
    formats = _as_list(formats, "formats")
    pairs = [(f, p) for f in formats for p in precisions if explicit or exists(f, p)]
    if not pairs:
        raise InputError(
            f"Expected a format that produces {', '.join(precisions)}. Received: none of {', '.join(formats)} does."
        )
    exporters = [get_exporter(f, p) for f, p in pairs]
    recipes = _recipes(precisions, chosen, exporters, formats, int8_io, target_obj, calibration_samples)
    for exporter in exporters:
        check_recipe(exporter, recipes[exporter.precision])
    budget = _auto_budget(precisions, accuracy_budget, min_cosine, validate)
    if budget:
        recipes["auto"] = recipes["auto"].with_options(tolerance={**recipes["auto"].tolerance, **budget})
    opset = DEFAULT_OPSET if opset is None else opset
    check_opset(opset)
    _check_batch(fixed_batch)
    _check_samples(calibration_samples)
    jobs = tuple(ConversionJob(e, recipes[e.precision]) for e in exporters)
    return ConversionPlan(
        jobs,
        opset,
        fixed_batch,
        allow_select_ops,
        validate,
        target_obj,
        calibration_samples,
        input_lengths,
        budget.get("max_accuracy_drop"),
        budget.get("min_cosine"),
    )


def _auto_budget(precisions, accuracy_budget, min_cosine, validate):
    """{tolerance key: limit} the auto precision is searched and validated against: the
    accuracy budget (points) as `max_accuracy_drop`, the minimum cosine as `min_cosine`."""
    budget = {}
    if accuracy_budget is not None:
        budget["max_accuracy_drop"] = _number(accuracy_budget, "--accuracy-budget (accuracy points)", 0, 100)
    if min_cosine is not None:
        budget["min_cosine"] = _number(min_cosine, "--min-cosine", 0, 1, low_open=True)
    if "auto" not in precisions:
        if budget:
            raise InputError(
                "Expected --precision auto with --accuracy-budget or --min-cosine (they bound the accuracy-aware "
                f"mix). Received: --precision {', '.join(precisions)}. Add --precision auto."
            )
        return budget
    if not budget:
        raise InputError(
            "Expected --accuracy-budget POINTS (e.g. 0.5: the artifact may lose at most 0.5 accuracy points; needs "
            "labelled --data) or --min-cosine C (e.g. 0.99; no labels needed) with --precision auto. Received: neither."
        )
    if not validate:
        raise InputError(
            "Expected validation with --precision auto: the search validates every mix it tries. "
            "Received: --no-validate. Drop --no-validate."
        )
    return budget


def _number(value, what, low, high, low_open=False):
    """`value` as a float within [low, high] (`low_open`: (low, high]), else an `InputError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low or (value == low and not low_open)) and value <= high:
        return float(value)
    interval = f"{'(' if low_open else '['}{low}, {high}]"
    raise InputError(f"Expected {what} to be a number in {interval}. Received: {value!r}.")


def _recipes(precisions, chosen, exporters, formats, int8_io, target_obj, calibration_samples):
    """{precision: QuantRecipe}: the chosen recipe for its precision, defaults for the others,
    with --int8-io, the target's tolerances and an explicit calibration count applied."""
    recipes = recipes_for(precisions, chosen)
    if int8_io:
        if "int8" not in recipes:
            raise InputError(f"Expected --precision int8 with --int8-io. Received: {', '.join(precisions)}.")
        if any(e.precision == "int8" and "io_dtype" not in e.options for e in exporters):
            raise InputError(
                "Expected --format tflite with --int8-io: int8 I/O is a TFLite option (ONNX QDQ "
                f"artifacts keep float32 inputs/outputs). Received: --format {', '.join(formats)}."
            )
        recipes["int8"] = recipes["int8"].with_options(io_dtype="int8")
    if target_obj is not None and target_obj.tolerances:
        recipes = {
            p: r.with_options(tolerance={**r.tolerance, **target_obj.tolerances.get(p, {})}) for p, r in recipes.items()
        }
    if calibration_samples:
        recipes = {
            p: r.with_options(calibration={**r.calibration, "samples": calibration_samples}) for p, r in recipes.items()
        }
    return recipes


def _check_batch(fixed_batch):
    if fixed_batch is not None and (
        not isinstance(fixed_batch, int) or isinstance(fixed_batch, bool) or fixed_batch < 1
    ):
        raise InputError(f"Expected --batch-size to be a positive integer. Received: {fixed_batch!r}.")


def _check_samples(samples):
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
        raise InputError(f"Expected calibration_samples to be a positive integer. Received: {samples!r}.")


def _as_list(value, what):
    if isinstance(value, str):
        return [value]
    value = list(value)
    if not value:
        raise InputError(f"Expected at least one entry in {what}. Received: an empty list.")
    return value
