"""Training progress on stderr: a bar redrawn in place on a terminal, one line per epoch otherwise.

Without a terminal (CI logs, a pipe) a bar would show only when training ends, so each epoch
writes a line as it ends instead, loss and metrics before the validation ones, unbuffered so
the log shows training live:
`Epoch 3/20 loss=0.4123 accuracy=0.8812 val_loss=0.3981 val_accuracy=0.895 1.2s`.
`EDGEKERAS_PROGRESS=0` turns both off.
"""

from __future__ import annotations

import os
import time

import keras

from edgekeras import progress, quiet


class EpochProgress(keras.callbacks.Callback):
    """Shows the epochs of a `fit` of `epochs` epochs (after a resume, from the first one run)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs
        self.bar = None
        self._started = 0.0

    def on_train_begin(self, logs=None):
        if progress.ENABLED and os.isatty(quiet.real_stderr_fd()):
            self.bar = progress.Progress("Training", self.epochs, " epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        if self.bar is not None:
            self.bar.count = epoch  # after a resume, start where the backup left off

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.bar is not None:
            shown = {k: v for k, v in logs.items() if k in ("loss", "val_loss") or "acc" in k}
            self.bar.update(status=" ".join(f"{k}={v:.4f}" for k, v in shown.items()))
        else:
            seconds = time.perf_counter() - self._started
            ordered = sorted(logs.items(), key=_log_order)
            progress.note(" ".join([f"Epoch {epoch + 1}/{self.epochs}", *map(_metric, ordered), f"{seconds:.1f}s"]))

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


def _log_order(item):
    """Training entries before validation ones, each led by its loss (Keras sorts logs by name)."""
    name = item[0]
    return name.startswith("val_"), name not in ("loss", "val_loss")


def _metric(item):
    """`name=value` for one entry of Keras' epoch logs."""
    name, value = item
    try:
        return f"{name}={float(value):.4g}"
    except (TypeError, ValueError):  # a non-scalar a callback put in the logs
        return f"{name}={value}"
