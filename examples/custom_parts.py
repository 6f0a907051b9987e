"""Custom Keras objects for custom-objects.yaml and subclassed-model.yaml, named in recipes as
`custom_parts:Name` (imported from the recipe's folder, registered with Keras so the saved model
reloads; run.json records them for `edgekeras convert RUN_DIR`)."""

import time

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="examples")
def hard_swish(x):
    """A custom activation: x * relu6(x + 3) / 6."""
    return x * ops.relu6(x + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="examples")
class ChannelScale(keras.layers.Layer):
    """A custom layer: a learned per-channel scale, initialized at `initial`."""

    def __init__(self, initial=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape):
        self.scale = self.add_weight(
            shape=(input_shape[-1],), name="scale", initializer=keras.initializers.Constant(self.initial)
        )

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


@keras.saving.register_keras_serializable(package="examples")
class SparseFocalLoss(keras.losses.Loss):
    """A custom loss: focal loss on integer labels and softmax outputs (gamma=0 is cross-entropy)."""

    def __init__(self, gamma=2.0, name="sparse_focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = gamma

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        y = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes)
        p = ops.sum(y * ops.clip(y_pred, 1e-7, 1.0), axis=-1)
        return -ops.power(1.0 - p, self.gamma) * ops.log(p)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="examples")
class MeanConfidence(keras.metrics.Metric):
    """A custom metric: the mean of the highest predicted probability."""

    def __init__(self, name="mean_confidence", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.sum(ops.max(y_pred, axis=-1)))
        self.count.assign_add(ops.cast(ops.shape(y_pred)[0], "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


class EpochSeconds(keras.callbacks.Callback):
    """A custom callback: adds each epoch's wall time to the logs (so history.csv gets an
    `epoch_seconds` column) and stops training once it passes `budget` seconds in total."""

    def __init__(self, budget=None):
        super().__init__()
        self.budget, self.total = budget, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.total += seconds
        if logs is not None:
            logs["epoch_seconds"] = seconds
        if self.budget is not None and self.total > self.budget:
            self.model.stop_training = True
