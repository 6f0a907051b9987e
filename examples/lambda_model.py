"""Model functions for the Lambda examples: Lambda layers wrapping plain Python code.

A Lambda's function is saved with the model. A named, registered function is saved as a
reference (package>name) and reloads in Keras' safe mode once this module is imported (edgekeras
re-imports it from run.json); an anonymous `lambda` is saved as bytecode, which Keras loads only
with safe_mode off.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="examples")
def center(x):
    """Pixels in [0, 1] to [-1, 1]."""
    return x * 2.0 - 1.0


@keras.saving.register_keras_serializable(package="examples")
def soft_abs(x):
    """A smooth |x|."""
    return ops.sqrt(ops.square(x) + 1e-3)


def lambda_cnn(classes=10):
    """Lambda layers on named, registered functions: safe to save and reload."""
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Lambda(center, name="center")(image)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Lambda(soft_abs, name="soft_abs")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(image, keras.layers.Dense(classes, activation="softmax", name="probs")(x), name="lambda_cnn")


def anonymous_lambda_cnn(classes=10):
    """The same model with an anonymous lambda: its bytecode reloads only with safe_mode off."""
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Lambda(lambda t: t * 2.0 - 1.0, name="center")(image)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(
        image, keras.layers.Dense(classes, activation="softmax", name="probs")(x), name="anonymous_lambda_cnn"
    )
