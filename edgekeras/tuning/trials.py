"""One trial: the recipe trained with the trial's values, then scored by the objective.

Training is `edgekeras.training.train` (the trial's run folder resumes if a crash cut it
short); scoring reads the run's history (a Keras metric: its best epoch, as Keras Tuner
scores) or converts, validates and benchmarks its model with edgekeras' own `convert` and
`benchmark` (an artifact objective: accuracy on the validation split, size, p50 latency,
constraints). A trial that fails or breaks a constraint raises `TrialFailed`; the tuner
records it and goes on. A mistake in the tuning settings themselves raises `InputError`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.bench import benchmark
from edgekeras.constraints import artifact_facts, check_constraints
from edgekeras.conversion import convert
from edgekeras.errors import ConstraintViolation, EdgekerasError, InputError, ValidationFailed
from edgekeras.plots import read_history
from edgekeras.progress import notice
from edgekeras.recipe import parse_recipe
from edgekeras.recipe.spaces import Space, substitute
from edgekeras.run_folder import RunFolder
from edgekeras.training import train

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.tuning.folder import TuningFolder
    from edgekeras.tuning.settings import Objective, TuneSettings

HYPERBAND_EPOCHS = "tuner/epochs"  # what Hyperband's oracle sets: the epochs this trial trains


class TrialFailed(Exception):
    """A trial that trained but cannot be scored, or broke a constraint: the search goes on."""


@dataclasses.dataclass
class TrialRunner:
    """Runs trials of one recipe (`mapping`, as written, with its search spaces)."""

    mapping: dict[str, Any]
    path: Path | None  # the recipe file (relative paths and imports are found beside it)
    spaces: list[Space]
    settings: TuneSettings
    folder: TuningFolder

    def __call__(self, trial_id: str, sampled: dict[str, Any]) -> dict[str, float]:
        """Trains and scores trial `trial_id` with the tuner's `sampled` values; returns
        {objective name: score} (the mean over the executions)."""
        values = {s.path: s.value_of(sampled[s.path]) for s in self.spaces}
        epochs = sampled.get(HYPERBAND_EPOCHS)
        record = {"trial": trial_id, "values": values, "epochs": epochs, "status": "running"}
        notice(f"Trial {trial_id}: {', '.join(f'{k}={v}' for k, v in values.items())}")
        try:
            recipe = self._recipe(values, epochs)
            measures = [self._execute(recipe, trial_id, k) for k in range(1, self.settings.executions_per_trial + 1)]
        except TrialFailed as e:
            self.folder.write_record(trial_id, {**record, "status": "failed", "message": str(e)})
            notice(f"Trial {trial_id} failed: {e}")
            raise
        finally:
            _clear_session()
        objective = self.settings.objective
        scores = [m[objective.metric] for m in measures]
        best = scores.index(objective.better(scores))
        record.update(score=float(np.mean(scores)), measures=measures[best], run=str(self._run(trial_id, best + 1)))
        broken = measures[best].get("violations") or []
        record["status"] = "infeasible" if broken else "completed"
        self.folder.write_record(trial_id, record)
        if broken:
            notice(f"Trial {trial_id} is infeasible: {'; '.join(broken)}")
            raise TrialFailed(f"infeasible: {'; '.join(broken)}")
        notice(f"Trial {trial_id}: {objective.name} = {record['score']:.4f}")
        return {objective.name: record["score"]}

    def _recipe(self, values, epochs):
        mapping = substitute(self.mapping, values)
        if epochs is not None:  # Hyperband decides how long this trial trains
            mapping["fit"] = {**(mapping.get("fit") or {}), "epochs": int(epochs)}
        try:
            return parse_recipe(mapping, self.path)
        except InputError as e:
            raise TrialFailed(f"the recipe with these values is not valid: {e}") from None

    def _run(self, trial_id, execution):
        return self.folder.trial_run(trial_id, execution)

    def _execute(self, recipe, trial_id, execution):
        """Trains one execution (seed + execution - 1) unless its run folder is done; its measures."""
        folder = RunFolder(self._run(trial_id, execution))
        if folder.state.get("status") != "done":
            try:
                train(dataclasses.replace(recipe, seed=recipe.seed + execution - 1), out=folder.root, export=False)
            except EdgekerasError as e:
                raise TrialFailed(f"training failed: {e}") from None
        return measure(folder, self.settings.objective)


def measure(folder: RunFolder, objective: Objective) -> dict[str, Any]:
    """What the objective reads from a trained run folder: {metric: value, ...}, with
    'violations' (constraint texts) for an artifact objective."""
    if objective.artifact is None:
        history = read_history(folder.history) if folder.history.exists() else {}
        if objective.metric not in history:
            columns = ", ".join(k for k in history if k != "epoch")
            raise InputError(
                f"Expected 'tune.objective' to name a metric of the training history ({columns}). "
                f"Received: '{objective.metric}'."
            )
        return {objective.metric: float(objective.better(history[objective.metric]))}
    return _measure_artifact(folder, objective)


def _measure_artifact(folder, objective):
    """Converts the run's model as the objective says, validated on the validation split, and
    benchmarks it when latency matters; its facts and the constraints it breaks."""
    data = folder.load_data()
    if data.validation is None:
        raise InputError(
            "Expected a validation split for an artifact objective (its accuracy is measured there, the test "
            "split stays held out). Received: none. Set 'data.validation_split'."
        )
    artifact = _convert(folder, objective, data)
    facts = _facts(artifact)
    if objective.bench is not None:
        bench = {k: v for k, v in objective.bench.items() if v is not None}
        result = benchmark(artifact, target=objective.artifact["target"], progress=False, **bench)
        facts["p50_ms"] = result.p50
    if objective.metric not in facts or facts[objective.metric] is None:
        raise TrialFailed(f"the artifact has no {objective.metric} (no labelled validation data for it?)")
    limits = SimpleNamespace(name="tune.objective", constraints=objective.constraints)
    results = check_constraints(limits, {**artifact_facts(artifact), **facts}, raise_on_failure=False)
    return {**facts, "violations": [str(r) for r in results if not r.passed]}


def _convert(folder, objective, data) -> Artifact:
    spec = objective.artifact
    try:
        return convert(
            folder.root,
            formats=None if spec["target"] else [spec["format"]],
            precisions=None if spec["target"] else [spec["precision"]],
            target=spec["target"],
            calibration=data.calibration(folder.load_recipe().export["calibration_samples"]),
            data=data.validation,
            out=folder.artifacts,
            force=True,
        )[0]
    except (ValidationFailed, ConstraintViolation) as e:  # measured all the same; judged by the objective
        return e.artifacts[0]
    except EdgekerasError as e:
        raise TrialFailed(f"conversion failed: {e}") from None


def _facts(artifact):
    validation = artifact.manifest.get("validation") or {}
    outputs = validation.get("outputs") or []
    return {
        "accuracy": validation.get("accuracy"),
        "accuracy_delta": validation.get("accuracy_delta"),
        "top1_agreement": next((o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None), None),
        "cosine": min((o["cosine"] for o in outputs), default=None),
        "max_abs_error": validation.get("max_abs_error"),
        "size_kb": artifact.size_bytes / 1024,
        "artifact": artifact.path.name,
    }


def _clear_session():
    """Frees the trial's graphs before the next trial builds its model."""
    import keras

    keras.backend.clear_session()
