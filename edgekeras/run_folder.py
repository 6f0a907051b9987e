"""The run folder `edgekeras train` writes: the one place that knows its layout.

    runs/NAME-TIMESTAMP/
      run.json            status (training | done), test metrics, custom objects, import paths
      recipe.yaml         the resolved recipe      data.json, vectorizer.json...  fitted data state
      model.keras         the trained model        model-qat.keras  (recipe `qat:`)
      history.csv  training_curves.png  model.png  tensorboard/  backup/ (while training)
      artifacts/          NAME-FORMAT-PRECISION.tflite|.onnx + NAME.json manifests
      report.md  report.html

`RunFolder` opens such a folder and reloads what it holds the way it was trained: the recipe,
the data (splits restored with the preprocessing fitted during the run, e.g. a text
vocabulary), the model (with the custom objects `run.json` records) — so every command
(`convert`, `validate --reference`, `evaluate`, `report`, `data`) and `ek.*` treat a run
folder alike. Nothing here imports TensorFlow until a model or data is asked for.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.atomic import write_text
from edgekeras.data import load_data
from edgekeras.errors import InputError, OutputExistsError
from edgekeras.export import artifact_suffixes
from edgekeras.model_io import load_model
from edgekeras.models.custom_objects import importable_from
from edgekeras.recipe import load_recipe

if TYPE_CHECKING:
    from edgekeras.data.bundle import DataBundle
    from edgekeras.hints import PathLike
    from edgekeras.model_io import KerasModel
    from edgekeras.recipe import Recipe

STATE_FILE = "run.json"


@dataclass
class RunFolder:
    """A run folder: its paths, its `run.json` state, and what it reloads."""

    root: Path
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # -- layout ----------------------------------------------------------------------------
    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def qat_model(self) -> Path:
        return self.root / "model-qat.keras"  # recipe `qat:` only

    @property
    def recipe_path(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def curves(self) -> Path:
        return self.root / "training_curves.png"

    @property
    def model_png(self) -> Path:
        return self.root / "model.png"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def recipe(self) -> Path:
        """The training code's name for `recipe_path`."""
        return self.recipe_path

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def is_run_folder(path: PathLike) -> bool:
        """True for a folder `edgekeras train` wrote (it has `run.json` or `model.keras`)."""
        path = Path(path)
        return path.is_dir() and ((path / STATE_FILE).is_file() or (path / "model.keras").is_file())

    @classmethod
    def open(cls, path: PathLike) -> RunFolder:
        """The run folder at `path`, or an `InputError` saying what a run folder holds."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"Expected a run folder. Received: '{path}', which does not exist.")
        if not cls.is_run_folder(path):
            raise InputError(
                f"Expected a run folder (written by `edgekeras train`: {STATE_FILE}, recipe.yaml, model.keras). "
                f"Received: '{path}', which is not one. Check the path."
            )
        return cls(path)

    # -- run.json --------------------------------------------------------------------------
    @property
    def state(self) -> dict:
        """`run.json` as a dict ({} when absent); an unreadable file is an `InputError`."""
        if not self.state_path.exists():
            return {}
        try:
            state = json.loads(self.state_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(
                f"Expected '{self.state_path}' to be the JSON `edgekeras train` writes. Received: invalid JSON "
                f"({e}). Restore it, or delete it to report on the artifacts alone."
            ) from None
        if not isinstance(state, dict):
            raise InputError(f"Expected '{self.state_path}' to hold a JSON object. Received: {type(state).__name__}.")
        return state

    def write_state(self, **updates: Any) -> None:
        state = {**self.state, **updates}
        write_text(self.state_path, json.dumps(state, indent=2) + "\n", force=True)

    @property
    def unfinished(self) -> bool:
        return self.state.get("status") == "training"

    @property
    def name(self) -> str:
        return self.state.get("name") or self.root.name

    @property
    def custom_objects(self) -> list[str]:
        """The `module` / `module:name` references the run's model needs, as recorded."""
        return list(self.state.get("custom_objects") or [])

    @property
    def import_paths(self) -> list[Path]:
        """Folders the run's custom objects and data paths were found in (cwd, recipe folder)."""
        return [Path(p) for p in self.state.get("import_paths") or []]

    @property
    def recipe_unsafe(self) -> bool:
        """Whether the recipe set `model.unsafe` (said in errors; it never turns safe mode off)."""
        return bool(self.state.get("unsafe"))

    # -- what it reloads -------------------------------------------------------------------
    def load_recipe(self) -> Recipe:
        """The resolved recipe the run trained with (`recipe.yaml`)."""
        if "recipe" not in self._cache:
            if not self.recipe_path.exists():
                raise InputError(
                    f"Expected '{self.recipe_path}' in the run folder. Received: a run folder without its recipe. "
                    "Pass the data explicitly (--data, --calibration)."
                )
            self._cache["recipe"] = load_recipe(self.recipe_path)
        return self._cache["recipe"]

    @property
    def has_recipe_data(self) -> bool:
        """Whether the run's data can be reloaded from its recipe (not given in memory)."""
        return self.recipe_path.exists() and self.state.get("data_from_recipe", True)

    def load_data(self) -> DataBundle:
        """The run's data (`DataBundle`) split and encoded exactly as it trained."""
        if "data" not in self._cache:
            if not self.has_recipe_data:
                raise InputError(
                    f"Expected a run whose data its recipe describes. Received: '{self.root}', trained on data given "
                    "in memory (ek.train(model, data=...)). Pass the data explicitly (--data, --calibration)."
                )
            recipe = self.load_recipe()
            base_dir = self.state.get("base_dir")
            with importable_from(*self.import_paths):
                self._cache["data"] = load_data(recipe.data, seed=recipe.seed, run_folder=self.root, base_dir=base_dir)
        return self._cache["data"]

    def load_model(
        self,
        safe_mode: bool = True,
        custom_objects: Iterable[str] = (),
        qat: bool = False,
        compile: bool = True,
        float32: bool = True,
    ) -> KerasModel:
        """The run's model (`model.keras`, or `model-qat.keras` with `qat`) as a `KerasModel`,
        with the custom objects `run.json` records besides `custom_objects`."""
        path = self.qat_model if qat else self.model
        if not path.exists():
            raise InputError(
                f"Expected '{path.name}' in the run folder '{self.root}'. Received: a folder without it "
                f"({'the recipe has no qat: section' if qat else 'training did not finish'})."
            )
        return load_model(
            path,
            safe_mode=safe_mode,
            compile=compile,
            float32=float32,
            custom_objects=list(custom_objects or []),
            recorded_custom_objects=self.custom_objects,
            import_paths=self.import_paths,
            recipe_unsafe=self.recipe_unsafe,
            recorded_in=self.state_path,
        )

    def find_artifacts(self) -> list[Path]:
        """Every artifact in `artifacts/` that has a manifest beside it, sorted by name."""
        return find_artifacts(self.artifacts) if self.artifacts.is_dir() else []


def find_artifacts(folder: PathLike) -> list[Path]:
    """Every artifact file in `folder` with a manifest beside it, sorted by name."""
    suffixes = artifact_suffixes()
    return sorted(p for p in Path(folder).glob("*") if p.suffix in suffixes and p.with_suffix(".json").exists())


def prepare_run_folder(
    name: str, out: PathLike | None = None, force: bool = False, runs_root: PathLike = "runs"
) -> tuple[RunFolder, bool]:
    """Chooses the run folder: `out`, an unfinished `runs/NAME-*` to resume, or a new one.

    Returns (RunFolder, resumed). An existing finished run is only replaced with `force`.
    """
    if out is not None:
        run = RunFolder(Path(out))
        if run.root.exists():
            if run.unfinished and not force:
                return run, True
            if not force:
                raise OutputExistsError(run.root)
            shutil.rmtree(run.root)
        run.root.mkdir(parents=True)
        return run, False
    unfinished = None if force else unfinished_run(name, runs_root)
    if unfinished is not None:
        return unfinished, True
    root = new_run_path(name, runs_root)
    root.mkdir(parents=True)
    return RunFolder(root), False


def unfinished_run(name: str, runs_root: PathLike = "runs") -> RunFolder | None:
    """The newest unfinished `runs_root/NAME-*` run folder (the one a rerun resumes), or None."""
    candidates = sorted(Path(runs_root).glob(f"{name}-*"), key=lambda p: p.name, reverse=True)
    return next((RunFolder(c) for c in candidates if RunFolder(c).unfinished), None)


def new_run_path(name: str, runs_root: PathLike = "runs") -> Path:
    """A path `runs_root/NAME-TIMESTAMP[-N]` that does not exist yet (not created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(runs_root) / f"{name}-{stamp}"
    suffix = 1
    while root.exists():
        root = Path(runs_root) / f"{name}-{stamp}-{suffix}"
        suffix += 1
    return root
