"""Crash-safe BackupAndRestore: a SIGKILL at any instant leaves a loadable checkpoint.

Keras' own callback overwrites `latest.weights.h5` in place, so a kill during the write leaves
a corrupt HDF5 file and the resumed run crashes. Here each epoch's weights go to a new file,
and `training_metadata.json` — replaced atomically — names the file that belongs to the epoch
it records. The metadata is the commit point: before it is replaced the previous checkpoint
stands, after it the new one does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

METADATA = "training_metadata.json"


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
    """`keras.callbacks.BackupAndRestore` with atomic, epoch-named checkpoints."""

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self._dir = Path(backup_dir)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        meta_path = self._dir / METADATA
        if not meta_path.exists():
            return
        meta = json.loads(meta_path.read_text())
        weights = self._dir / meta["weights"]
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(weights))
        self.model._initial_epoch = int(meta["epoch"])

    def _save_model(self):
        self._dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        self.model.save_weights(str(self._dir / name), overwrite=True)
        tmp = self._dir / f".{METADATA}.tmp"
        tmp.write_text(json.dumps({"epoch": self._current_epoch, "weights": name}))
        os.replace(tmp, self._dir / METADATA)  # the commit point
        for old in self._dir.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
