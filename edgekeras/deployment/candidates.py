"""The candidates `deploy` measures on a target: a registry of candidate kinds.

A `Candidate` is one artifact deploy may ship: a model of the source (the model itself, or the
run's quantization-aware copy) exported in one format at one precision with one quantize
recipe. Each `CandidateKind` proposes some for a target; `propose` gathers them, keeps those
the target allows (its format, `allowed_precisions`, `int8_only`, int8 I/O, a recipe the
exporter honours) and says why each other one was left out. Planning loads no model and
imports no TensorFlow, so a target that allows nothing is refused at once.

Adding a kind of candidate is adding one `CandidateKind` to `KINDS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from edgekeras.errors import EdgekerasError
from edgekeras.export import check_recipe, exists, get_exporter
from edgekeras.export import precisions as exported_precisions
from edgekeras.mixed_precision.exporter import register_auto, reverts_of
from edgekeras.precisions import PRECISIONS, get_precision
from edgekeras.quantize_recipes import QuantRecipe, default_recipe, load_quant_recipe, recipe_names
from edgekeras.targets import Target

# Models of a source a candidate can be exported from: the source model itself, and the
# quantization-aware copy a run folder holds (model-qat.keras, recipe `qat:`).
MODEL = "model"
QAT = "qat"


@dataclass(frozen=True)
class Candidate:
    """One artifact to build and measure: (model, format, precision, recipe, batch)."""

    kind: str  # the `KINDS` entry that proposed it
    format: str
    precision: str
    recipe: QuantRecipe
    model: str = MODEL  # MODEL or QAT
    fixed_batch: int | None = None  # the target's fixed batch (None: dynamic)

    @property
    def recipe_label(self) -> str:
        """The recipe name when it is not the precision's default (as convert names files)."""
        default = get_precision(self.precision).default_recipe
        return "" if self.recipe.name in (self.precision, default) else self.recipe.name

    @property
    def label(self) -> str:
        """How tables and progress lines name it: 'onnx int8 (int8-u8s8)', 'tflite int8, int8 I/O',
        'tflite auto, reverts to int16x8'."""
        text = f"{self.format} {self.precision}"
        if self.recipe_label:
            text += f" ({self.recipe_label})"
        if self.recipe.io_dtype == "int8":
            text += ", int8 I/O"
        if self.recipe.revert_to:
            text += f", reverts to {self.recipe.revert_to}"
        if self.model == QAT:
            text += " from model-qat"
        return text

    @property
    def file_tag(self) -> str:
        """The artifact file name's tail: 'tflite-int8', 'onnx-int8-u8s8', 'tflite-int8-qat-b1',
        'tflite-auto-int16x8'."""
        parts = [self.format, self.recipe_label or self.precision]
        parts += ["int8io"] if self.recipe.io_dtype == "int8" else []
        parts += [self.recipe.revert_to] if self.recipe.revert_to else []
        parts += [QAT] if self.model == QAT else []
        parts += [f"b{self.fixed_batch}"] if self.fixed_batch else []
        return "-".join(parts)

    def key(self) -> dict:
        """What identifies the artifact it builds (the cache keys on it with the source's sha256)."""
        recipe = self.recipe.to_dict()
        recipe.pop("tolerance")  # judges the artifact, does not change it
        return {
            "format": self.format,
            "precision": self.precision,
            "model": self.model,
            "fixed_batch": self.fixed_batch,
            "recipe": recipe,
        }


@dataclass(frozen=True)
class Refused:
    """A candidate left out for a target, and why (shown when a target allows nothing)."""

    label: str
    reason: str


@dataclass(frozen=True)
class Sources:
    """What the source offers besides its model (known without loading anything)."""

    models: tuple[str, ...] = (MODEL,)
    calibration: bool = True  # calibration data is at hand (given, or a run's training split)
    # the deploy budget as tolerance keys (max_accuracy_drop, min_cosine): what an accuracy-aware
    # mix is searched against
    budget: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class CandidateKind:
    """One kind of candidate: `propose(target, sources)` yields (precision, recipe, model)."""

    name: str
    description: str
    propose: Callable[[Target, Sources], Iterable[tuple[str, QuantRecipe, str]]]


def _format_precisions(target: Target) -> list[str]:
    register_auto()  # auto is registered on demand; without this, whether it is offered depended on call order
    return [p for p in PRECISIONS if p in exported_precisions() and exists(target.format, p)]


def _searched(precision: str) -> bool:
    """A precision searched against an accuracy budget (auto: a mix built on `base`)."""
    return get_precision(precision).base is not None


def _precisions(target: Target, sources: Sources) -> Iterable[tuple[str, QuantRecipe, str]]:
    for precision in _format_precisions(target):
        if not _searched(precision):
            yield precision, default_recipe(precision), MODEL


def _mixed(target: Target, sources: Sources) -> Iterable[tuple[str, QuantRecipe, str]]:
    """One auto mix per revert the format has (TFLite: int16x8 and float32; `refusal` drops
    int16x8 where the target does not allow it), so the measurements pick the faster."""
    if not sources.budget:
        return
    for precision in _format_precisions(target):
        if _searched(precision):
            recipe = default_recipe(precision)
            recipe = recipe.with_options(tolerance={**recipe.tolerance, **dict(sources.budget)})
            for revert in reverts_of(target.format):
                yield precision, recipe.with_options(revert_to=revert), MODEL


def _recipes(target: Target, sources: Sources) -> Iterable[tuple[str, QuantRecipe, str]]:
    precisions = _format_precisions(target)
    for name in recipe_names():
        recipe = load_quant_recipe(name)
        if recipe.formats and target.format not in recipe.formats:
            continue  # a recipe for another format (ONNX Runtime's activation types, percentile)
        if recipe.precision in precisions and name != get_precision(recipe.precision).default_recipe:
            yield recipe.precision, recipe, MODEL


def _quantization_aware(target: Target, sources: Sources) -> Iterable[tuple[str, QuantRecipe, str]]:
    if QAT in sources.models:
        for precision in _format_precisions(target):
            if get_precision(precision).takes_quantization_aware:
                yield precision, default_recipe(precision), QAT


KINDS = {
    kind.name: kind
    for kind in [
        CandidateKind("precision", "every precision of the target's format, with its default recipe", _precisions),
        CandidateKind(
            "recipe",
            "every other shipped quantize recipe for those precisions (per-tensor, ONNX U8S8/S8S8, percentile)",
            _recipes,
        ),
        CandidateKind("qat", "the precisions a run's quantization-aware model converts to", _quantization_aware),
        CandidateKind(
            "auto",
            "int8 with the layers the deploy budget needs raised to int16x8 (TFLite, where the target allows it) "
            "or float32 (`--precision auto --revert-to`), searched on the validation data",
            _mixed,
        ),
    ]
}


@dataclass
class Proposal:
    """A target's candidates in the order they are measured, and those it refused."""

    target: Target
    candidates: list[Candidate] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def propose(target: Target, sources: Sources, kinds: Sequence[str] | None = None) -> Proposal:
    """The candidates `target` allows, the target's own choice first, then fp32 (the
    baseline every budget is measured against), then the rest in `KINDS` order."""
    proposal = Proposal(target)
    seen = set()
    for kind in kinds or list(KINDS):
        for precision, recipe, model in KINDS[kind].propose(target, sources):
            candidate = _fit(kind, precision, recipe, model, target)
            key = json.dumps(candidate.key(), sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            reason = refusal(candidate, target, sources)
            if reason:
                proposal.refused.append(Refused(candidate.label, reason))
            else:
                proposal.candidates.append(candidate)
    proposal.candidates.sort(key=lambda c: _priority(c, target))
    return proposal


def _fit(kind: str, precision: str, recipe: QuantRecipe, model: str, target: Target) -> Candidate:
    """The candidate as the target builds it: its int8 I/O, tolerances and fixed batch applied."""
    if target.io_dtype == "int8" and precision == "int8":
        recipe = recipe.with_options(io_dtype="int8")
    overrides = (target.tolerances or {}).get(precision)
    if overrides:
        recipe = recipe.with_options(tolerance={**recipe.tolerance, **overrides})
    return Candidate(kind, target.format, precision, recipe, model, target.fixed_batch)


def refusal(candidate: Candidate, target: Target, sources: Sources) -> str | None:
    """Why `target` cannot take `candidate` (None: it can)."""
    constraints = target.constraints
    allowed = constraints.get("allowed_precisions")
    precision = get_precision(candidate.precision)
    if allowed and candidate.precision not in allowed:
        return f"the target allows only {', '.join(allowed)} (allowed_precisions)"
    if allowed and candidate.recipe.revert_to in PRECISIONS and candidate.recipe.revert_to not in allowed:
        return f"its reverted layers run in {candidate.recipe.revert_to}; the target allows only {', '.join(allowed)}"
    if constraints.get("int8_only") and (not precision.needs_calibration or _searched(candidate.precision)):
        return "the target forbids float ops (int8_only)"
    exporter = get_exporter(candidate.format, candidate.precision)
    if target.io_dtype == "int8" and "io_dtype" not in exporter.options:
        return "the target takes int8 inputs/outputs, which only int8 artifacts have (io_dtype: int8)"
    if precision.needs_calibration and not sources.calibration:
        return "needs calibration data (--calibration, or a run folder's training split)"
    try:
        check_recipe(exporter, candidate.recipe)
    except EdgekerasError as e:
        return str(e)
    return None


def _priority(candidate: Candidate, target: Target) -> tuple[int, int]:
    own = candidate.precision == target.precision and candidate.recipe.name in (
        target.recipe or get_precision(target.precision).default_recipe,
    )
    kinds = list(KINDS)
    rank = 0 if own and candidate.model == MODEL else 1 if candidate.precision == "fp32" else 2
    return rank, kinds.index(candidate.kind)
