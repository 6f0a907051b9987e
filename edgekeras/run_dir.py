"""The run folder `edgekeras train` writes, and how an interrupted run is found again."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edgekeras.errors import OutputExistsError

STATE_FILE = "run.json"


@dataclass
class RunDir:
    """Paths inside a run folder; `state` is `run.json` (status: training | done)."""

    root: Path

    model = property(lambda self: self.root / "model.keras")
    qat_model = property(lambda self: self.root / "model-qat.keras")  # recipe `qat:` only
    recipe = property(lambda self: self.root / "recipe.yaml")
    history = property(lambda self: self.root / "history.csv")
    curves = property(lambda self: self.root / "training_curves.png")
    backup = property(lambda self: self.root / "backup")
    tensorboard = property(lambda self: self.root / "tensorboard")
    artifacts = property(lambda self: self.root / "artifacts")
    report = property(lambda self: self.root / "report.md")

    @property
    def state(self):
        path = self.root / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def write_state(self, **updates):
        from edgekeras.atomic import write_text

        state = {**self.state, **updates}
        write_text(self.root / STATE_FILE, json.dumps(state, indent=2) + "\n", force=True)

    @property
    def unfinished(self):
        return self.state.get("status") == "training"


def prepare_run_dir(name, out=None, force=False, runs_root="runs"):
    """Chooses the run folder: `out`, an unfinished `runs/NAME-*` to resume, or a new one.

    Returns (RunDir, resumed). An existing finished run is only replaced with `force`.
    """
    import shutil

    if out is not None:
        run = RunDir(Path(out))
        if run.root.exists():
            if run.unfinished and not force:
                return run, True
            if not force:
                raise OutputExistsError(run.root)
            shutil.rmtree(run.root)
        run.root.mkdir(parents=True)
        return run, False
    candidates = sorted(Path(runs_root).glob(f"{name}-*"), key=lambda p: p.name, reverse=True)
    for candidate in candidates:
        run = RunDir(candidate)
        if run.unfinished and not force:
            return run, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(runs_root) / f"{name}-{stamp}"
    suffix = 1
    while root.exists():
        root = Path(runs_root) / f"{name}-{stamp}-{suffix}"
        suffix += 1
    root.mkdir(parents=True)
    return RunDir(root), False
