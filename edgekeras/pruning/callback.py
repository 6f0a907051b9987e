"""`PruningCallback`: recomputes a `Pruner`'s masks on its schedule's steps.

Keras dispatches `on_train_batch_end` on a worker thread unless a callback needs it, and a
callback that overrides it makes every step wait for its logs; this one works in
`on_train_batch_begin` (a Python counter, no read from the device) and reads the optimizer's
step counter once per epoch, so training keeps its pace between mask updates.
"""

from __future__ import annotations

import logging

import keras

from edgekeras.pruning.pruner import Pruner
from edgekeras.pruning.schedules import PruningSchedule

log = logging.getLogger(__name__)


class PruningCallback(keras.callbacks.Callback):
    """Updates `pruner`'s masks as `schedule` says; the step counts batches since pruning began
    (`pruner.step`, saved in the checkpoint: a resumed run continues the schedule). The pruner
    is attached before `fit` (`start_pruning` does it), so the traced train step applies the masks."""

    def __init__(self, pruner: Pruner, schedule: PruningSchedule):
        super().__init__()
        self.pruner, self.schedule = pruner, schedule
        self._base = self._iterations = 0

    def _optimizer_step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        # after every on_train_begin: a checkpoint restored there brought the step and masks back
        self._base, self._iterations = int(self.pruner.step.numpy()), self._optimizer_step()

    def on_train_batch_begin(self, batch, logs=None):
        step = self._base + batch
        per_call = max(int(getattr(self.model, "steps_per_execution", 1) or 1), 1)
        due = [s for s in range(step, step + per_call) if self.schedule.should_update(s)]
        if due:
            self.pruner.update(self.schedule.sparsity(due[-1]))

    def on_epoch_end(self, epoch, logs=None):
        self.pruner.step.assign(self._base + self._optimizer_step() - self._iterations)

    def on_train_end(self, logs=None):
        step = int(self.pruner.step.numpy())
        if step <= self.schedule.end_step:
            log.warning(
                "Training ended at pruning step %d, before the schedule's end_step %d: the final sparsity %.2f "
                "is applied without fine-tuning. Train longer or lower end_step.",
                step,
                self.schedule.end_step,
                self.schedule.final_sparsity,
            )
            self.pruner.update(self.schedule.final_sparsity)
