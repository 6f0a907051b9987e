"""Quantization-aware training (QAT) on Keras 3, without tfmot.

`quantize_aware(model, data)` (`qat/aware.py`) returns a copy of a trained model that simulates the 8-bit
tensors of an int8 artifact (`FakeQuant` layers where `transform.needs_fake_quant` says),
with ranges calibrated on representative inputs and then fine-tuned for a few epochs, so the
network learns to live with int8 rounding. Convert that model: the TFLite converter and the
ONNX int8 exporter take its ranges, and its artifacts are validated against it, the very
function they compute.

Post-training int8 is enough for most networks; QAT is for those whose error adds up with
depth (EfficientNet's swish and squeeze-excite: tests/coverage/test_applications.py).
"""

from __future__ import annotations

from edgekeras.errors import InputError
from edgekeras.precisions import PRECISIONS
from edgekeras.recipe.schema import Field

DEFAULT_EPOCHS = 2
DEFAULT_CALIBRATION_SAMPLES = 200
DEFAULT_DECAY = 0.99

# The recipe's `qat:` section: present (even empty) means fine-tune a quantization-aware copy
# after training, and export the int8 artifacts from it.
FIELDS = {
    "epochs": Field("posint", DEFAULT_EPOCHS, doc="Fine-tuning epochs of the quantization-aware copy."),
    "learning_rate": Field("float", None, doc="Fine-tuning rate (default: a tenth of the optimizer's)."),
}


def fake_quant_layers(model):
    """The `FakeQuant` layers of `model`, in graph order (empty for a plain model)."""
    return [layer for layer in model._flatten_layers(include_self=False) if type(layer).__name__ == "FakeQuant"]


def check_precisions(model, precisions):
    """Refuses precisions a quantization-aware `model` cannot honestly convert to."""
    if not fake_quant_layers(model):
        return
    refused = [p for p in precisions if not PRECISIONS[p].takes_quantization_aware]
    if refused:
        allowed = [name for name, p in PRECISIONS.items() if p.takes_quantization_aware]
        raise InputError(
            f"Expected precision {' or '.join(allowed)} for a quantization-aware model (it simulates "
            f"int8 tensors, which the converters turn into integer ones). Received: {', '.join(refused)}. "
            f"Pass --precision {allowed[0]}, or convert the float model it was made from for other precisions."
        )
