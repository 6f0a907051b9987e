"""A subclassed keras.Model for subclassed-model.yaml (model.type: python).

edgekeras calls it on a named keras.Input from the recipe's `input_shape` and wraps it in a
functional model, which is what the converters need. `get_config` lets the saved model reload.
"""

import keras
from custom_parts import ChannelScale, hard_swish
from keras import layers


@keras.saving.register_keras_serializable(package="examples")
class ResidualBlock(layers.Layer):
    """Two 3x3 convolutions with BatchNormalization, the custom hard_swish activation and a skip."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.norm1 = layers.BatchNormalization()
        self.act = layers.Activation(hard_swish)
        self.conv2 = layers.Conv2D(filters, 3, padding="same", activation=hard_swish)
        self.scale = ChannelScale(0.5)

    def call(self, x, training=False):
        y = self.act(self.norm1(self.conv1(x), training=training))
        return x + self.scale(self.conv2(y))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="examples")
class ResidualCNN(keras.Model):
    def __init__(self, filters=16, blocks=2, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.blocks, self.classes = filters, blocks, classes
        self.stem = layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.body = [ResidualBlock(filters) for _ in range(blocks)]
        self.pool = layers.GlobalAveragePooling2D()
        self.head = layers.Dense(classes, activation="softmax")

    def call(self, x, training=False):
        x = self.stem(x)
        for block in self.body:
            x = block(x, training=training)
        return self.head(self.pool(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "blocks": self.blocks, "classes": self.classes}
