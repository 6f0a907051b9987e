"""Keras callbacks edgekeras adds to every training run, one per module, and how a recipe's
own callbacks are placed in the run folder.

Relative paths a recipe gives Keras' file-writing callbacks (ModelCheckpoint `filepath`,
TensorBoard `log_dir`, CSVLogger `filename`, BackupAndRestore `backup_dir`) are relative to
the run folder. A recipe's BackupAndRestore becomes edgekeras' crash-safe one (see `backup`).
"""

from __future__ import annotations

from pathlib import Path

from edgekeras.errors import InputError

# Keras callback class -> the attribute holding the path it writes to.
PATH_ATTRIBUTES = {"ModelCheckpoint": "filepath", "TensorBoard": "log_dir", "CSVLogger": "filename"}


def place_in_run(callbacks, root):
    """Points the recipe's callbacks at `root`; returns (callbacks, backup_dir or None).

    A BackupAndRestore is taken out: its folder (and `delete_checkpoint`) go to the
    crash-safe backup edgekeras always runs.
    """
    import keras

    kept, backup = [], None
    for i, cb in enumerate(callbacks):
        if isinstance(cb, keras.callbacks.BackupAndRestore):
            if cb.save_freq != "epoch":
                raise InputError(
                    f"Expected 'fit.callbacks[{i}]' BackupAndRestore with save_freq: epoch. Received: "
                    f"save_freq={cb.save_freq!r}. edgekeras checkpoints each epoch atomically."
                )
            backup = (_in_root(cb.backup_dir, root), cb.delete_checkpoint)
            continue
        for class_name, attribute in PATH_ATTRIBUTES.items():
            if isinstance(cb, getattr(keras.callbacks, class_name)):
                path = _in_root(getattr(cb, attribute), root)
                (path if attribute == "log_dir" else path.parent).mkdir(parents=True, exist_ok=True)
                setattr(cb, attribute, str(path))
        kept.append(cb)
    return kept, backup


def has_callback(callbacks, class_name):
    import keras

    return any(isinstance(cb, getattr(keras.callbacks, class_name)) for cb in callbacks)


def _in_root(path, root):
    path = Path(str(path)).expanduser()
    return path if path.is_absolute() else Path(root) / path
