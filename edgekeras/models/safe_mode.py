"""Keras' safe mode as a scope, for deserialization that takes no `safe_mode` argument."""

from __future__ import annotations


def safe_mode_scope(safe_mode):
    """A context in which Keras deserializes with `safe_mode` (False: lambdas' bytecode loads).

    Building a recipe's model deserializes configs deep inside Keras (Model.from_config,
    layers.deserialize), which take no safe_mode argument and read Keras' scope instead.
    """
    import contextlib

    if safe_mode:
        return contextlib.nullcontext()  # Keras' own default: safe
    from keras.src.saving.serialization_lib import SafeModeScope  # no public scoped form

    return SafeModeScope(False)
