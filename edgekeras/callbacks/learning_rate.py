"""Callbacks that set the optimizer's learning rate need a fixed one, not a schedule.

ReduceLROnPlateau and LearningRateScheduler assign `optimizer.learning_rate`; Keras refuses
that for an optimizer built on a `LearningRateSchedule` ("its learning rate is not
settable"), but only when the callback first acts, epochs into training. The combination
is refused before training instead, naming both recipe keys.
"""

from __future__ import annotations

from edgekeras.errors import InputError

# Keras callbacks that assign optimizer.learning_rate while training.
SETTERS = ("ReduceLROnPlateau", "LearningRateScheduler")


def check_settable_learning_rate(callbacks, paths, optimizer, optimizer_path):
    """Raises `InputError` if one of `callbacks` (recipe paths `paths`) sets the learning rate
    of `optimizer`, whose learning rate (at `optimizer_path`) is a schedule."""
    schedule = schedule_name(optimizer)
    if schedule is None:
        return
    import keras

    for callback, path in zip(callbacks, paths):
        setter = next((name for name in SETTERS if isinstance(callback, getattr(keras.callbacks, name))), None)
        if setter is None:
            continue
        raise InputError(
            f"Expected a fixed learning rate at '{optimizer_path}' with '{path}' ({setter}), which sets the "
            f"learning rate itself. Received: the schedule {schedule}, which Keras does not let a callback "
            f"override. Choose one: a fixed learning_rate (e.g. 0.001) with {setter}, or the schedule "
            f"without {setter}."
        )


def schedule_name(optimizer):
    """The class name of `optimizer`'s learning-rate schedule, or None for a fixed rate."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer (mixed precision)
    try:
        rate = optimizer.get_config().get("learning_rate")
    except Exception:  # an optimizer without a config: nothing to tell
        return None
    # get_config serializes a schedule as {class_name, config}, a fixed rate as a number.
    return rate.get("class_name", "a LearningRateSchedule") if isinstance(rate, dict) else None
