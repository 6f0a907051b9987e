"""Crash-safe BackupAndRestore: a SIGKILL at any instant leaves a loadable checkpoint.

Keras' own callback overwrites `latest.weights.h5` in place, so a kill during the write leaves
a corrupt HDF5 file and the resumed run crashes. Here each epoch's state goes to a new file,
and `training_metadata.json` — replaced atomically — names the file that belongs to the epoch
it records. The metadata is the commit point: before it is replaced the previous checkpoint
stands, after it the new one does.

The checkpoint is the model's weights and the optimizer's variables (step count, moments,
loss scale) as one uncompressed `.npz`, in the models' own variable order, then any
`extra_variables` (a pruning run's masks and step, so it resumes mid-schedule): a few
milliseconds per epoch, where Keras' `save_weights` (HDF5, object-graph walk) takes ~100 ms
on a small CNN — a cost paid every epoch (benchmarks/train_overhead.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from edgekeras.adaptation import refresh_adapted_state
from edgekeras.distribute import check_same_start
from edgekeras.errors import InputError

METADATA = "training_metadata.json"
_OWN = object()  # restore_dir default: the folder checkpoints are written to


def restored_epoch(backup_dir):
    """The number of completed epochs recorded in `backup_dir`, or 0."""
    path = Path(backup_dir) / METADATA
    if not path.exists():
        return 0
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (ValueError, KeyError, json.JSONDecodeError):
        return 0


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` with atomic, epoch-named checkpoints.

    `restore_dir` is where a resumed run's checkpoint is read from (default: `backup_dir`; None:
    nowhere): a multi-worker worker that is not the chief restores the chief's checkpoint and
    writes its own elsewhere. Under that strategy every worker must resume from the same epoch.
    """

    def __init__(self, backup_dir, delete_checkpoint=True, extra_variables=(), restore_dir=_OWN):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self._dir = Path(backup_dir)
        self._restore_dir = self._dir if restore_dir is _OWN else restore_dir and Path(restore_dir)
        self._extra = list(extra_variables)

    def on_train_begin(self, logs=None):
        self._load_model()
        check_same_start(self.model.distribute_strategy, int(getattr(self.model, "_initial_epoch", 0) or 0))

    def _variables(self):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        optimizer_variables = list(optimizer.variables) if optimizer is not None else []
        return list(self.model.weights) + optimizer_variables + self._extra

    def _load_model(self):
        if self._restore_dir is None:
            return
        meta_path = self._restore_dir / METADATA
        if not meta_path.exists():
            return
        meta = json.loads(meta_path.read_text())
        variables = self._variables()
        with np.load(self._restore_dir / meta["weights"], allow_pickle=False) as saved:
            arrays = [saved[f"v{i}"] for i in range(len(saved.files))]
        if [a.shape for a in arrays] != [tuple(v.shape) for v in variables]:
            raise InputError(
                f"Expected the checkpoint in '{self._restore_dir}' to fit this model. Received: a checkpoint of a "
                "different model (the recipe changed since the run was interrupted). Delete the run "
                "folder or pass --force to start over."
            )
        for variable, array in zip(variables, arrays):
            variable.assign(array)
        refresh_adapted_state(self.model)  # e.g. Normalization computes with the restored statistics
        self.model._initial_epoch = int(meta["epoch"])

    def _save_model(self):
        self._dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.npz"
        arrays = {f"v{i}": v.value.numpy() for i, v in enumerate(self._variables())}
        with open(self._dir / name, "wb") as f:
            np.savez(f, **arrays)
        tmp = self._dir / f".{METADATA}.tmp"
        tmp.write_text(json.dumps({"epoch": self._current_epoch, "weights": name}))
        os.replace(tmp, self._dir / METADATA)  # the commit point
        for old in self._dir.glob("epoch-*"):
            if old.name != name:
                old.unlink(missing_ok=True)
