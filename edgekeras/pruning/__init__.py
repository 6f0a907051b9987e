"""Pruning on Keras 3: magnitude and N:M sparsity with schedules, and structured channel pruning.

Layout (one concept per module):
- registry: which layers can be pruned and which of their weights (data, not code paths)
- schedules: when and how much (constant; polynomial decay between a begin and an end step)
- masks: magnitude masks, unstructured and N:M along the input-channel axis
- pruner: the masks applied in the compiled train step (variable constraints), strip_pruning
- callback: the Keras callback that updates the masks on the schedule's steps
- prune: `ek.prune` (fine-tuning a trained model into a run folder)
- channels/: structured channel pruning (dependency groups, importance, rebuilding a smaller model)
- flops: parameters and FLOPs of a Keras model, per layer

This module holds the recipe's `prune:` section and `start_pruning`, which `train` calls.
"""

from __future__ import annotations

from edgekeras.errors import InputError
from edgekeras.pruning.masks import Structure, parse_structure
from edgekeras.pruning.pruner import Pruner
from edgekeras.pruning.schedules import SCHEDULES, PruningSchedule, make_schedule
from edgekeras.recipe.schema import Field

# Share of the training steps over which the sparsity rises (the rest fine-tunes at the final one).
DEFAULT_END_FRACTION = 2 / 3
DEFAULT_UPDATES = 10  # mask updates between begin_step and end_step when no frequency is given

# The recipe's `prune:` section: present means prune while `train` fits.
FIELDS = {
    "sparsity": Field("fraction", None, doc="The final fraction of zero weights (N:M patterns fix their own)."),
    "structure": Field("str", "unstructured", doc="'unstructured' or 'N:M' (e.g. '2:4')."),
    "schedule": Field("str", "polynomial", choices=tuple(SCHEDULES)),
    "initial_sparsity": Field("fraction", 0.0, doc="Polynomial schedule: the sparsity at begin_step."),
    "begin_step": Field("int", 0, doc="Training step (batch) of the first mask update."),
    "end_step": Field("int", None, doc="Step of the last update (default: 2/3 of the training steps)."),
    "frequency": Field("posint", None, doc="Steps between mask updates (default: 10 updates in all)."),
    "exclude": Field("strlist", [], doc="Layers kept dense: names, paths, class names or regexes."),
}


def check_section(section: dict, path: str = "prune") -> dict:
    """The `prune:` section's values that a field type cannot check alone."""
    structure = parse_structure(section["structure"])
    if structure.kind == "n:m":
        section = {**section, "sparsity": structure.sparsity}
    elif section["sparsity"] is None:
        raise InputError(f"Missing required key '{path}.sparsity', e.g. '{path}: {{sparsity: 0.8}}'.")
    if structure.kind == "channels":
        raise InputError(
            f"Expected '{path}.structure' to be 'unstructured' or 'N:M' while training. Received: 'channels': "
            "channel pruning rewrites a trained model. Run `edgekeras prune RUN_DIR --structure channels`."
        )
    if section["begin_step"] < 0:
        raise InputError(f"Expected '{path}.begin_step' >= 0. Received: {section['begin_step']}.")
    return section


def plan_schedule(section: dict, total_steps: int | None) -> PruningSchedule:
    """The schedule a `prune:` section asks for over `total_steps` training steps."""
    structure = parse_structure(section["structure"])
    begin, end = section["begin_step"], section["end_step"]
    if end is None:
        if total_steps is None:
            raise InputError(
                "Expected 'prune.end_step' for data of unknown length (a streamed dataset). Received: none."
            )
        end = max(begin, int(total_steps * DEFAULT_END_FRACTION))
    frequency = section["frequency"] or max(1, (end - begin) // DEFAULT_UPDATES)
    # an N:M pattern fixes its sparsity: one update at begin_step, then held
    if structure.kind == "n:m":
        return make_schedule("constant", structure.sparsity, begin, end, frequency)
    return make_schedule(section["schedule"], section["sparsity"], begin, end, frequency, section["initial_sparsity"])


def start_pruning(model, section: dict, total_steps: int | None):
    """(Pruner, PruningCallback) for `model` as the `prune:` section says, the masks attached
    (call before `fit`: a train step traced earlier is dropped so the next one applies them)."""
    from edgekeras.pruning.callback import PruningCallback

    schedule = plan_schedule(section, total_steps)
    pruner = Pruner(model, parse_structure(section["structure"]), section["exclude"]).attach()
    return pruner, PruningCallback(pruner, schedule)


__all__ = ["FIELDS", "Structure", "check_section", "plan_schedule", "start_pruning"]
