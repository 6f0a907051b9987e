"""Running k-fold cross-validation into one run folder.

    runs/NAME-TIMESTAMP/
      folds/fold-1 ... fold-k/   one run folder per fold (trained like any run, resumable)
      final/                     final: all_data only -- the model trained on the whole split
      kfold.csv  kfold.json      every metric per fold, with its mean and standard deviation
      model.keras, history.csv, ...   the final model (best fold or all_data), so `convert`,
                                      `report` and `deploy` take the folder like any run

Training is not done here: `cross_validate` is given the function that trains one plan (the
training module's own), so each fold is an ordinary training run. Run again after a crash, it
keeps the folds already done and resumes the unfinished one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.atomic import copy_path, write_text
from edgekeras.errors import InputError
from edgekeras.kfold import fold_bundle, monitor_direction, plan_folds
from edgekeras.plots import read_history
from edgekeras.progress import notice
from edgekeras.run_folder import RunFolder, prepare_run_folder

if TYPE_CHECKING:
    from edgekeras.data import DataBundle

# What of the final run folder is copied into the k-fold run folder (besides the saved forms).
PROMOTED = ("history.csv", "training_curves.png", "model.png", "model-qat.keras")


def cross_validate(plan: Any, bundle: DataBundle, fit: Callable[[Any], Any]) -> RunFolder:
    """Trains the plan's recipe on each fold with `fit`, then its final model; returns the run
    folder, whose model is the final one and whose run.json holds the k-fold summary.

    `plan` is a `training.TrainingPlan` (with `recipe.kfold`), `fit` the function that trains
    one such plan (here: each fold's, with its data and run folder)."""
    recipe, settings = plan.recipe, plan.recipe.kfold
    folds = plan_folds(bundle.train, settings, recipe.seed)
    root, resumed = prepare_run_folder(recipe.name, plan.out, plan.force)
    if resumed:
        notice(f"Resuming the unfinished k-fold run in {root.root} (folds already trained are kept)")
    write_text(root.recipe_path, recipe.to_yaml(), force=True)
    root.write_state(status="training", name=recipe.name)
    single = dataclasses.replace(plan, recipe=dataclasses.replace(recipe, kfold=None), force=False, export=False)
    results = []
    for i, (train_idx, held_idx) in enumerate(folds, 1):
        folder = RunFolder(root.root / "folds" / f"fold-{i}")
        if folder.state.get("status") != "done":
            notice(f"Fold {i}/{len(folds)}: training on {len(train_idx)} samples, validating on {len(held_idx)}")
            fit(dataclasses.replace(single, data=fold_bundle(bundle, train_idx, held_idx, i), out=folder.root))
        results.append(fold_metrics(folder))
    best = best_fold(results, settings["monitor"])
    if settings["final"] == "best":
        final = RunFolder(root.root / "folds" / f"fold-{best}")
    else:
        final = RunFolder(root.root / "final")
        if final.state.get("status") != "done":
            notice("Training the final model on the whole training split")
            fit(dataclasses.replace(single, data=bundle, out=final.root))
    summary = summarize(results)
    _promote(final, root)
    bundle.save_assets(root.root)
    _write_tables(root, results, summary)
    root.write_state(
        **{k: v for k, v in final.state.items() if k not in ("name", "data_from_recipe")},
        name=recipe.name,
        data_from_recipe=plan.data is None,
        kfold={**settings, "best_fold": best, "folds": results, "mean": summary["mean"], "std": summary["std"]},
    )
    return root


def fold_metrics(folder: RunFolder) -> dict[str, float]:
    """A finished fold's metrics: its history's last epoch (loss, val_loss, ...) and its test
    metrics (test_loss, ...)."""
    history = read_history(folder.history) if folder.history.exists() else {}
    metrics = {k: v[-1] for k, v in history.items() if k != "epoch" and v}
    metrics.update({f"test_{k}": float(v) for k, v in (folder.state.get("test_metrics") or {}).items()})
    return metrics


def summarize(results: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{"mean": {metric: ...}, "std": {metric: ...}} over the folds (population std, ddof 0),
    for the metrics every fold has."""
    names = [k for k in results[0] if all(k in r for r in results)]
    values = {k: np.array([r[k] for r in results], dtype=float) for k in names}
    return {
        "mean": {k: float(v.mean()) for k, v in values.items()},
        "std": {k: float(v.std()) for k, v in values.items()},
    }


def best_fold(results: list[dict[str, float]], monitor: str) -> int:
    """The 1-based fold best on `monitor` (lowest loss or error, else highest)."""
    if monitor not in results[0]:
        raise InputError(
            f"Expected 'kfold.monitor' to name a metric of the folds' history: {', '.join(sorted(results[0]))}. "
            f"Received: '{monitor}'."
        )
    scores = [r[monitor] for r in results]
    pick = np.argmin if monitor_direction(monitor) == "min" else np.argmax
    return int(pick(scores)) + 1


def summary_lines(kfold: dict[str, Any]) -> list[str]:
    """'val_accuracy: 0.9512 ± 0.0101 over 5 folds' per metric, for the CLI and the report."""
    k = len(kfold.get("folds") or [])
    return [f"{name}: {mean:.4f} ± {kfold['std'][name]:.4f} over {k} folds" for name, mean in kfold["mean"].items()]


def _promote(final: RunFolder, root: RunFolder) -> None:
    """Copies the final model (every saved form) and its curves into the k-fold run folder."""
    for name in [*(final.state.get("saved") or ["model.keras"]), *PROMOTED]:
        if (final.root / name).exists():
            copy_path(final.root / name, root.root / name, force=True)


def _write_tables(root: RunFolder, results: list[dict[str, float]], summary: dict[str, dict[str, float]]) -> None:
    names = list(summary["mean"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["fold", *names])
    writer.writerows([[i, *(f"{r[n]:.6g}" for n in names)] for i, r in enumerate(results, 1)])
    for stat in ("mean", "std"):
        writer.writerow([stat, *(f"{summary[stat][n]:.6g}" for n in names)])
    write_text(root.root / "kfold.csv", buf.getvalue(), force=True)
    write_text(root.root / "kfold.json", json.dumps({"folds": results, **summary}, indent=2) + "\n", force=True)
