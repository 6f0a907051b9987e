"""`tune`: a recipe with search spaces to its best run, searched by Keras Tuner.

Each trial is the recipe trained (`edgekeras.training.train`) with the values the tuner
sampled, in its own run folder, and scored by `tune.objective`; the results table, plots and
report go into the tuning folder, and the best trial's run folder is copied to `best/`, a run
folder like any other. Run again after an interruption, the search resumes (Keras Tuner's
state in `keras_tuner/`, an unfinished trial's run folder from its last epoch).

With `workers`, `edgekeras.tuning.launcher` starts a Keras Tuner chief and that many worker
processes on this machine; a process started with KERASTUNER_TUNER_ID/ORACLE_IP/ORACLE_PORT
set (by the launcher, or by hand on each machine of a cluster) takes its part in such a search.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edgekeras.atomic import copy_path
from edgekeras.errors import CheckFailed, InputError
from edgekeras.quiet import quiet_tensorflow
from edgekeras.recipe import Recipe, parse_recipe, read_recipe
from edgekeras.recipe.spaces import Space, find_spaces, substitute
from edgekeras.tuning import results
from edgekeras.tuning.folder import TuningFolder, open_tuning_folder
from edgekeras.tuning.launcher import launch
from edgekeras.tuning.settings import TuneSettings, check_tune_section, tune_settings
from edgekeras.tuning.trials import TrialRunner

if TYPE_CHECKING:
    from edgekeras.hints import PathLike

log = logging.getLogger(__name__)


@dataclass
class TuningResult:
    """What `tune` found: the tuning folder, one row per trial, the best one and its run folder."""

    folder: Path
    trials: list[dict[str, Any]] = field(default_factory=list)  # results.collect's rows
    best: dict[str, Any] | None = None  # the best completed trial's row
    best_run: Path | None = None  # its run folder, copied to FOLDER/best
    table: str = ""  # the results table as aligned text
    role: str = "local"  # "local", "chief" or "worker" (a worker's result has no trials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "trials": self.trials,
            "best": self.best,
            "best_run": None if self.best_run is None else str(self.best_run),
            "role": self.role,
        }


@dataclass(frozen=True)
class TuningPlan:
    """A checked search: the recipe as written, its spaces and settings; nothing run yet."""

    mapping: dict[str, Any]
    path: Path | None
    spaces: list[Space]
    settings: TuneSettings
    recipe: Recipe  # the recipe with each space at its first value (name, seed, data)


def tune(
    source: str | Path | dict[str, Any],
    out: PathLike | None = None,
    force: bool = False,
    workers: int | None = None,
    port: int | None = None,
) -> TuningResult:
    """Searches the recipe's search spaces as its `tune:` section says.

    Args:
        source: a recipe path, a shipped recipe name or a recipe dict, with at least one search
            space ({choice: [...]}, {int: {...}}, {float: {...}}, {boolean: {}}) in place of a value.
        out: the tuning folder (default `runs/NAME-tune-TIMESTAMP`); an unfinished one resumes.
        workers: run a Keras Tuner chief and this many worker processes on 127.0.0.1.
        port: the chief's port (default: a free one); a port in use is an `InputError`.

    Returns:
        A `TuningResult`. Raises `InputError` for a malformed space or setting (before any
        trial), `CheckFailed` when no trial could be scored or a worker failed.
    """
    plan = plan_tuning(source)
    text = yaml.safe_dump(plan.mapping, sort_keys=False)
    who = role()
    folder, resumed = open_tuning_folder(plan.recipe.name, text, out, force, join=who != "local")
    if workers is not None:
        if who != "local":
            raise InputError("Expected no --workers inside a distributed search. Received: KERASTUNER_* set.")
        launch(folder, workers, port, recipe=plan.path)
        return _result(folder, plan.settings, who)
    if resumed and who == "local":
        log.info(f"Resuming the unfinished search in {folder.root} (delete it or pass --force to start over)")
    if who != "worker":
        folder.write_state(status="searching", name=plan.recipe.name, tuner=plan.settings.tuner)
    states = _search(plan, folder)
    if who == "worker":
        return TuningResult(folder.root, role=who)
    return _finish(plan, folder, states, who)


def role() -> str:
    """'local', 'chief' or 'worker': this process's part in Keras Tuner's distributed mode."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def plan_tuning(source: str | Path | dict[str, Any]) -> TuningPlan:
    """Reads and checks a recipe for tuning: every space, the `tune:` section, and the recipe
    with each choice option and range end in place (so a bad value fails now, not in trial 7)."""
    mapping, path = read_recipe(source)
    if not isinstance(mapping, dict):
        raise InputError(f"Expected a recipe mapping at the top of '{path}'. Received: {type(mapping).__name__}.")
    where = f"{path}: " if path else ""
    try:
        spaces = find_spaces(mapping)
        if not spaces:
            raise InputError(
                "Expected at least one search space in place of a value to tune, e.g. 'filters: {choice: [16, 32]}'. "
                "Received: a recipe without any. Train it with `edgekeras train`."
            )
        first = {s.path: s.candidates()[0] for s in spaces}
        recipe = parse_recipe(substitute(mapping, first), path)
        for space in spaces:
            for value in space.candidates()[1:]:
                try:
                    parse_recipe(substitute(mapping, {**first, space.path: value}), path)
                except InputError as e:
                    raise InputError(f"With '{space.path}' = {value!r}: {e}") from None
        section = recipe.tune if recipe.tune is not None else check_tune_section({})
        settings = tune_settings(section, recipe.fit["epochs"])
    except InputError as e:
        raise InputError(f"{where}{e}") from None
    return TuningPlan(mapping, path, spaces, settings, recipe)


def _search(plan, folder):
    """Runs Keras Tuner's search; the oracle's trial states (empty on a worker)."""
    quiet_tensorflow()
    # Here, not at the top: the tuner subclasses Keras Tuner's, which loads Keras when imported.
    from edgekeras.tuning.tuner import make_tuner, trial_states

    runner = TrialRunner(plan.mapping, plan.path, plan.spaces, plan.settings, TuningFolder(folder.root))
    printed = io.StringIO()  # Keras Tuner prints ("Reloading Tuner from ...") on stdout
    with contextlib.redirect_stdout(printed):
        tuner = make_tuner(plan.settings, plan.spaces, folder, runner, plan.recipe.seed)
        try:
            tuner.search()
        except Exception as e:
            if tuner.fatal is not None:
                raise tuner.fatal from None
            raise CheckFailed(f"The search stopped: {e}") from None
        finally:
            for line in printed.getvalue().splitlines():
                log.debug(line)
    return [] if role() == "worker" else trial_states(tuner)


def _finish(plan, folder, states, who):
    """Results table, plots, report and best/ from the finished search."""
    rows = results.collect(states, folder, plan.settings)
    results.write_results(folder, rows, plan.settings)
    best = next((r for r in rows if r["best"]), None)
    if best is None:
        folder.write_state(status="done", best=None)
        reasons = "; ".join(f"trial {r['trial']}: {r['message'] or ', '.join(r['violations'])}" for r in rows[:3])
        raise CheckFailed(f"No trial of the search in {folder.root} could be scored ({reasons}).")
    copy_path(best["run"], folder.best, force=True)
    folder.write_state(status="done", best={k: best[k] for k in ("trial", "values", "score")})
    return _result(folder, plan.settings, who)


def _result(folder, settings, who):
    """The `TuningResult` of a finished search, read back from its folder."""
    rows = results.read_rows(folder)
    best = next((r for r in rows if r["best"]), None)
    return TuningResult(
        folder.root,
        rows,
        best,
        folder.best if best is not None else None,
        results.terminal_table(rows, settings) if rows else "",
        who,
    )
