"""Mixed-precision training (`precision:` in a recipe) and the float32 form used for export.

Training under `mixed_float16`/`mixed_bfloat16` computes in 16 bits with float32 variables.
The model's inputs stay float32 and its output layers are made float32 (their dtype policy),
so the saved model takes and returns float32. The global Keras policy is restored after.
Edge converters cannot lower float16 compute (TFLite: "'tf.Conv2D' op is neither a custom op
nor a flex op"), so conversion and validation use `float32_model`: the same weights with
every layer computing in float32.
"""

from __future__ import annotations

import contextlib

from edgekeras.adaptation import refresh_adapted_state
from edgekeras.errors import InputError
from edgekeras.keras_model import _flat_outputs

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def global_policy(name):
    """Sets Keras' global dtype policy for the block and restores the previous one."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def mixed_policy(model):
    """The mixed-precision policy some layer of `model` computes under, or None."""
    for layer in model._flatten_layers(include_self=True, recursive=True):
        name = getattr(getattr(layer, "dtype_policy", None), "name", "")
        if name.startswith("mixed_"):
            return name
    return None


def output_layer_names(model):
    return [t._keras_history[0].name for t in _flat_outputs(model, model.outputs)]


def _retyped(model, policy, float32_outputs):
    """A copy of `model` (same weights) whose layers compute under `policy`, output layers in
    float32 if asked. Needs a serializable model (functional, Sequential, registered classes)."""
    import keras

    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    outputs = set(output_layer_names(model)) if float32_outputs else set()

    def walk(node, layer_name=None):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and node.get("config", {}).get("name") in POLICIES:
                node["config"]["name"] = "float32" if layer_name in outputs else policy
                return
            name = node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
            for key, value in node.items():
                walk(value, name if key == "config" else layer_name)
        elif isinstance(node, list):
            for item in node:
                walk(item, layer_name)

    walk(config)
    with global_policy(policy):
        clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())
    refresh_adapted_state(clone)  # e.g. an adapted Normalization's statistics
    return clone


def apply_policy(model, policy):
    """`model` rebuilt to train under `policy` with float32 outputs (and float32 inputs).

    Call under `global_policy(policy)` so the optimizer set at compile time gets loss scaling.
    """
    if policy in (None, "float32"):
        return model
    try:
        return _retyped(model, policy, float32_outputs=True)
    except Exception as e:  # a model Keras cannot serialize cannot be rebuilt under the policy
        raise InputError(
            f"Expected a model Keras can rebuild from its config for 'precision: {policy}'. Received: "
            f"{type(model).__name__}, which failed ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}). "
            "Give its custom classes get_config(), or train in float32."
        ) from None


def float32_model(model):
    """`model` itself if it computes in float32, else a float32 copy with the same weights,
    compiled like the original (its loss and metrics still measure accuracy)."""
    if mixed_policy(model) is None:
        return model
    clone = _retyped(model, "float32", float32_outputs=False)
    compile_config = getattr(model, "_compile_config", None)
    if getattr(model, "compiled", False) and compile_config is not None:
        args = dict(compile_config.config)
        args.pop("auto_scale_loss", None)
        clone.compile(**args)
    return clone
