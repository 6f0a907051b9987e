"""K-fold cross-validation: the recipe's `kfold:` section and the folds it draws.

    kfold: {k: 5, stratified: true, final: best, monitor: val_loss}

`edgekeras train` then trains k models, fold i on the training split less its i-th part,
validated on that part (scikit-learn's KFold / StratifiedKFold over the training split, the
recipe's validation split unused by the folds; the test split stays held out for every fold).
`final: best` keeps the fold model best on `monitor` (its last epoch), `final: all_data` trains
once more on the whole training split with the recipe's validation split. This module plans
the folds (no training, no files); `edgekeras.kfold.run` runs them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field, check_section

if TYPE_CHECKING:
    from edgekeras.data import DataBundle

KFOLD_FIELDS = {
    "k": Field("posint", 5, doc="How many folds, at least 2."),
    "stratified": Field("bool", False, doc="Keep each class's share in every fold (classification labels)."),
    "final": Field("str", "best", choices=("best", "all_data")),
    "monitor": Field("str", "val_loss", doc="The history metric that picks the best fold (its last epoch)."),
    "shuffle": Field("bool", True),
}


def check_kfold_section(section: Any) -> dict[str, Any]:
    """The `kfold:` section checked, defaults filled; errors name the key."""
    checked = check_section(section, KFOLD_FIELDS, "kfold")
    if checked["k"] < 2:
        raise InputError(
            f"Expected 'kfold.k' to be at least 2 (k folds, each held out once). Received: {checked['k']}."
        )
    return checked


def monitor_direction(monitor: str) -> str:
    """'min' for losses and errors, else 'max' (accuracy, AUC, ...)."""
    name = monitor.lower()
    return "min" if any(h in name for h in ("loss", "error", "mae", "mse")) else "max"


def plan_folds(train: Split, settings: dict[str, Any], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train indices, held-out indices)] per fold over the training split; an `InputError` when
    k exceeds the samples, or stratification meets labels that are not classes."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k, n = settings["k"], len(train)
    if k > n:
        raise InputError(f"Expected 'kfold.k' at most the {n} training samples. Received: k {k}.")
    rng = seed if settings["shuffle"] else None
    if not settings["stratified"]:
        folds = KFold(k, shuffle=settings["shuffle"], random_state=rng)
        return list(folds.split(np.zeros(n)))
    classes = class_labels(train.y)
    smallest = int(np.bincount(np.unique(classes, return_inverse=True)[1]).min())
    if smallest < k:
        raise InputError(
            f"Expected every class to have at least k={k} training samples for 'kfold.stratified'. Received: "
            f"a class with {smallest}. Lower kfold.k, or set 'kfold.stratified: false'."
        )
    folds = StratifiedKFold(k, shuffle=settings["shuffle"], random_state=rng)
    return list(folds.split(np.zeros(n), classes))


def class_labels(y: Any) -> np.ndarray:
    """Class ids of a single-output classification split (integer ids or one-hot rows); an
    `InputError` for anything else (regression targets, several outputs)."""
    from sklearn.utils.multiclass import type_of_target

    if isinstance(y, (dict, list, tuple)) or y is None:
        raise InputError(
            "Expected one array of class labels for 'kfold.stratified'. Received: "
            f"{'no labels' if y is None else 'labels for several outputs'}. Set 'kfold.stratified: false'."
        )
    y = np.asarray(y)
    kind = type_of_target(y)
    if kind == "multilabel-indicator" and np.all(y.sum(axis=-1) == 1):  # one-hot
        return y.argmax(axis=-1)
    if kind in ("binary", "multiclass"):
        return y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    raise InputError(
        "Expected classification labels (class ids or one-hot rows) for 'kfold.stratified: true'. Received: "
        f"{kind} targets. Set 'kfold.stratified: false' for a regression or multi-label target."
    )


def fold_bundle(bundle: DataBundle, train_idx: np.ndarray, held_idx: np.ndarray, fold: int) -> DataBundle:
    """The bundle one fold trains on: its part of the training split, validated on the held-out
    part, the same test split; file caches named per fold."""
    x, y = bundle.train.x, bundle.train.y  # a streamed split is read into memory here
    return dataclasses.replace(
        bundle,
        train=Split(_index(x, train_idx), _index(y, train_idx)),
        validation=Split(_index(x, held_idx), _index(y, held_idx)),
        fingerprint=f"{bundle.fingerprint}-fold{fold}",
    )


def _index(value: Any, idx: np.ndarray) -> Any:
    if isinstance(value, dict):
        return {k: v[idx] for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v[idx] for v in value]
    return value[idx]
