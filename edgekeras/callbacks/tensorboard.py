"""The TensorBoard logs every run folder gets (`tensorboard/`): Keras' callback, per epoch.

Two of Keras' defaults cost training time for nothing a run needs: `write_graph` traces
the train function once more to write its graph (about a second; `model.png` shows the
model), and with `update_freq="epoch"` Keras still builds a scalar summary per batch and
per metric that no writer records. A recipe that wants either gives its own TensorBoard.
"""

from __future__ import annotations

import keras


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard(log_dir, write_graph=False)`, without the per-batch no-ops."""

    def __init__(self, log_dir):
        super().__init__(log_dir, write_graph=False, update_freq="epoch")

    def on_train_batch_end(self, batch, logs=None):
        # update_freq="epoch": no default writer is pushed, so Keras' batch scalars record nothing
        if self._should_trace:
            super().on_train_batch_end(batch, logs)
