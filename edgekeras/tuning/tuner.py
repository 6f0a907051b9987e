"""The Keras Tuner adapter: search spaces as hyperparameters, the oracle, and a tuner whose
trials are edgekeras trainings.

Keras Tuner does the searching (RandomSearch, BayesianOptimization, Hyperband oracles), keeps
its state in the tuning folder (`keras_tuner/`, reloaded to resume: `overwrite=False`) and
runs distributed with its own chief/worker mode (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP,
KERASTUNER_ORACLE_PORT). This module subclasses its `BaseTuner`, so it loads Keras Tuner (and
Keras) when imported: `edgekeras.tuning.search` imports it inside the function that tunes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner
from keras_tuner.src import config as keras_tuner_config

from edgekeras.errors import EdgekerasError
from edgekeras.tuning.folder import KERAS_TUNER_PROJECT
from edgekeras.tuning.settings import TUNERS
from edgekeras.tuning.trials import TrialFailed

if TYPE_CHECKING:
    from edgekeras.recipe.spaces import Space
    from edgekeras.tuning.folder import TuningFolder
    from edgekeras.tuning.settings import TuneSettings

# search-space kind -> how it is declared on keras_tuner.HyperParameters
HYPERPARAMETERS: dict[str, Callable[[Any, Space], Any]] = {
    "choice": lambda hp, s: hp.Choice(s.path, s.options),
    "int": lambda hp, s: hp.Int(
        s.path, s.settings["min"], s.settings["max"], step=s.settings["step"], sampling=s.settings["sampling"]
    ),
    "float": lambda hp, s: hp.Float(
        s.path, s.settings["min"], s.settings["max"], step=s.settings["step"], sampling=s.settings["sampling"]
    ),
    "boolean": lambda hp, s: hp.Boolean(s.path),
}


class RecipeTuner(BaseTuner):
    """A Keras Tuner tuner whose `run_trial` is an edgekeras `TrialRunner` (train, then score)."""

    def __init__(self, oracle: Any, run_trial: Callable[[str, dict[str, Any]], dict[str, float]], directory: str):
        self._run = run_trial
        self.fatal: EdgekerasError | None = None  # a settings mistake found while running a trial
        super().__init__(oracle, directory=directory, project_name=KERAS_TUNER_PROJECT, overwrite=False)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        try:
            return self._run(trial.trial_id, dict(trial.hyperparameters.values))
        except TrialFailed as e:
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        except EdgekerasError as e:  # stops the search: every other trial would fail alike
            self.fatal = e
            raise keras_tuner.errors.FatalError(str(e)) from None

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """Nothing to do: each trial's run folder holds its model."""


def make_tuner(
    settings: TuneSettings,
    spaces: list[Space],
    folder: TuningFolder,
    run_trial: Callable[[str, dict[str, Any]], dict[str, float]],
    seed: int,
) -> RecipeTuner:
    """The tuner for `settings`, its oracle seeded from the recipe, reloaded from the folder."""
    hp = keras_tuner.HyperParameters()
    for space in spaces:
        HYPERPARAMETERS[space.kind](hp, space)
    options: dict[str, Any] = dict(settings.options)
    if settings.max_trials is not None:
        options["max_trials"] = settings.max_trials
    oracle = getattr(keras_tuner.oracles, TUNERS[settings.tuner].oracle)(
        objective=keras_tuner.Objective(settings.objective.name, settings.objective.direction),
        hyperparameters=hp,
        allow_new_entries=False,
        tune_new_entries=False,
        seed=seed + 1,  # Keras Tuner takes a seed of 0 as "none"
        max_consecutive_failed_trials=1_000_000,  # infeasible trials are part of an edge search
        **options,
    )
    oracle.verbose = 0  # edgekeras says what each trial does; Keras Tuner's own display stays off
    keras_tuner_config.DEBUG = False  # else it prints the traceback of every failed (or infeasible) trial
    return RecipeTuner(oracle, run_trial, str(folder.root))


def trial_states(tuner: RecipeTuner) -> list[dict[str, Any]]:
    """[{trial, status, score}] of every trial the oracle knows, in the order they started
    (the chief's or a local tuner's oracle)."""
    oracle = tuner.oracle
    return [
        {"trial": t, "status": oracle.trials[t].status.lower(), "score": oracle.trials[t].score}
        for t in oracle.start_order
        if t in oracle.trials
    ]
