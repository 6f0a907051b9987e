"""`FakeQuant`: the Keras layer that simulates an 8-bit activation tensor during training.

It rounds its input to the 256 levels of an affine uint8/int8 grid over [min, max] and back
to float (TensorFlow's `FakeQuantWithMinMaxVars`, reached through
`keras.quantizers.fake_quant_with_min_max_vars`). The converters read that op: the TFLite
converter quantizes the tensor with exactly this range, and tf2onnx writes it as a
QuantizeLinear/DequantizeLinear pair whose range the ONNX int8 exporter hands to ONNX Runtime.
So the quantized artifact computes what the model computed while it trained.

The range follows the tensor while training: an exponential moving average of each batch's
min/max (as TensorFlow Model Optimization's `MovingAverageQuantizer` does), always holding
zero so that zero padding stays exact. Outside training the layer only reads it. It starts at
[-6, 6] (TensorFlow's default) until `set_range` gives it a calibrated one.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "edgekeras"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FakeQuant(keras.layers.Layer):
    """Simulates per-tensor 8-bit quantization of its input with a tracked [min, max] range.

    Args:
        decay: weight of the old range in the moving average of batch ranges while training.
        num_bits: bits of the simulated integer grid (8).
        fixed_range: [min, max] that never changes: the output grid runtimes fix for an
            activation (sigmoid and softmax [0, 255/256], tanh [-1, 127/128]).
    """

    def __init__(self, decay=0.99, num_bits=8, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)
        self.num_bits = int(num_bits)
        self.fixed_range = None if fixed_range is None else [float(v) for v in fixed_range]
        self.supports_masking = True
        self.enabled = True  # off while calibrating: ranges are measured on the float model

    def build(self, input_shape):
        low, high = self.fixed_range or (-6.0, 6.0)
        # Under a tf.distribute strategy each replica sees its own batch: "mean" makes the moving
        # average one range, the same on every replica and worker (with "none", TensorFlow updates
        # each replica's copy alone and the copies drift apart).
        self.range_min = self._range_weight("range_min", low)
        self.range_max = self._range_weight("range_max", high)

    def _range_weight(self, name, value):
        return self.add_weight(
            name=name,
            shape=(),
            trainable=False,
            dtype="float32",
            initializer=keras.initializers.Constant(value),
            aggregation="mean",
        )

    def set_range(self, low, high):
        """Sets [min, max] (widened to hold zero), e.g. from calibration data; a fixed range stays."""
        if self.fixed_range is not None:
            return
        self.range_min.assign(min(float(low), 0.0))
        self.range_max.assign(max(float(high), 0.0))

    def call(self, inputs, training=False):
        if not self.enabled:
            return inputs
        x = ops.cast(inputs, "float32")
        if training and self.fixed_range is None:
            batch_min = ops.minimum(ops.min(x), 0.0)
            batch_max = ops.maximum(ops.max(x), 0.0)
            self.range_min.assign(self.decay * self.range_min + (1.0 - self.decay) * batch_min)
            self.range_max.assign(self.decay * self.range_max + (1.0 - self.decay) * batch_max)
        quantized = keras.quantizers.fake_quant_with_min_max_vars(
            x, self.range_min, self.range_max, num_bits=self.num_bits
        )
        return ops.cast(quantized, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "decay": self.decay, "num_bits": self.num_bits, "fixed_range": self.fixed_range}
