"""The tuning folder `edgekeras tune` writes: the one place that knows its layout.

runs/NAME-tune-TIMESTAMP/
  recipe.yaml           the recipe as written, search spaces included
  tuning.json           status (searching | done), settings, best trial
  keras_tuner/          Keras Tuner's own state (oracle, trials): what an interrupted search resumes from
  trials/ID/trial.json  what trial ID sampled, measured and scored
  trials/ID/run/        its run folder (run-2/, run-3/ for more executions per trial)
  trials.csv trials.json   the results table: trial, values, score, status (+ artifact measures)
  scores.png  pareto.png    score per trial with the best so far; accuracy vs latency
  report.md  report.html
  best/                 a copy of the best trial's run folder (`convert`, `deploy`, `report` take it)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.atomic import write_text
from edgekeras.errors import InputError, OutputExistsError

if TYPE_CHECKING:
    from edgekeras.hints import PathLike

STATE_FILE = "tuning.json"
KERAS_TUNER_PROJECT = "keras_tuner"


@dataclass
class TuningFolder:
    """A tuning folder: its paths and its `tuning.json` state."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def table_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def table_json(self) -> Path:
        return self.root / "trials.json"

    @property
    def best(self) -> Path:
        return self.root / "best"

    def plot(self, name: str) -> Path:
        return self.root / f"{name}.png"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / "trials" / str(trial_id)

    def trial_record(self, trial_id: str) -> Path:
        return self.trial_dir(trial_id) / "trial.json"

    def trial_run(self, trial_id: str, execution: int = 1) -> Path:
        """The run folder of one execution (1-based) of a trial."""
        return self.trial_dir(trial_id) / ("run" if execution == 1 else f"run-{execution}")

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def write_state(self, **updates: Any) -> None:
        write_text(self.state_path, json.dumps({**self.state, **updates}, indent=2) + "\n", force=True)

    def read_record(self, trial_id: str) -> dict[str, Any]:
        path = self.trial_record(trial_id)
        return json.loads(path.read_text()) if path.exists() else {}

    def write_record(self, trial_id: str, record: dict[str, Any]) -> None:
        write_text(self.trial_record(trial_id), json.dumps(record, indent=2, default=str) + "\n", force=True)


def open_tuning_folder(
    name: str, recipe_text: str, out: PathLike | None = None, force: bool = False, join: bool = False
) -> tuple[TuningFolder, bool]:
    """(TuningFolder, resumed): `out`, an unfinished `runs/NAME-tune-*` of the same recipe, or a
    new one. An unfinished folder of the same recipe resumes; a finished one or another recipe's
    is replaced only with `force`. With `join` (a distributed chief or worker) an existing
    folder is used as it is: its launcher prepared it."""
    if out is not None:
        folder = TuningFolder(Path(out))
        if folder.root.exists() and (join or (not force and _resumable(folder, recipe_text))):
            return folder, folder.state_path.exists()
        if folder.root.exists():
            if not force:
                if folder.state.get("status") == "searching":
                    raise InputError(
                        f"Expected the recipe the unfinished tuning in {folder.root} searched, to resume it. "
                        "Received: another recipe. Pass --force to start over, or another --out."
                    )
                raise OutputExistsError(folder.root)
            shutil.rmtree(folder.root)
    else:
        for candidate in sorted(Path("runs").glob(f"{name}-tune-*"), reverse=True):
            if not force and _resumable(TuningFolder(candidate), recipe_text):
                return TuningFolder(candidate), True
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = TuningFolder(Path("runs") / f"{name}-tune-{stamp}")
        suffix = 1
        while folder.root.exists():
            folder = TuningFolder(Path("runs") / f"{name}-tune-{stamp}-{suffix}")
            suffix += 1
    folder.root.mkdir(parents=True, exist_ok=join)  # workers of a cluster may start together
    write_text(folder.recipe, recipe_text, force=join)
    return folder, False


def _resumable(folder: TuningFolder, recipe_text: str) -> bool:
    """An unfinished search of the same recipe."""
    return (
        folder.state.get("status") == "searching"
        and folder.recipe.exists()
        and folder.recipe.read_text() == recipe_text
    )
