"""An epoch progress bar with the latest loss and accuracy, on stderr."""

from __future__ import annotations

import keras

from edgekeras.progress import Progress


class EpochProgress(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = Progress("Training", self.epochs, " epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self.bar.count = epoch  # after a resume, start where the backup left off

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: v for k, v in (logs or {}).items() if k in ("loss", "val_loss") or "acc" in k}
        self.bar.update(status=" ".join(f"{k}={v:.4f}" for k, v in shown.items()))

    def on_train_end(self, logs=None):
        self.bar.close()
