"""keras.applications as rows of a table: every architecture Keras ships, as a coverage `Family`.

`discover()` reads the list from Keras itself, so a Keras release that adds or drops an
architecture changes the table without an edit here: every public capitalized callable of
`keras.applications` defined in `keras.src.applications.*`, with the module whose
`preprocess_input` it expects and the smallest input it accepts. That size comes from Keras
too: given a 1x1 input, a constructor refuses it ("Input size must be at least 75x75") before
building anything (32 for most, 75 for InceptionV3/InceptionResNetV2, 71 for Xception).

`family(name)` makes one a `families.Family`, so the coverage cell runner (`cell.py`, in a
child process under `matrix.py`'s watchdog) builds, converts and classifies it like a layer
family: `weights=None`, `classes=CLASSES` with logits (`classifier_activation=None`: a softmax
over random weights quantizes to a constant), its weights from the family's fixed seed, and
its BatchNormalization moving statistics set from one training-mode pass over 1000 images
(`batchnorm_samples`: fewer, never under 200, above 32x32) (`set_batchnorm_statistics`; with initial statistics the outputs collapse to ~1e-10 and
parity means nothing; from the 100 calibration images, channels of near-zero variance amplify
float rounding: EfficientNetB0's fp32 artifacts then differ from Keras by 0.13 (both formats, and
Keras at batch 1 from Keras at batch 256 by 0.05), by 0.004 from 1000). The inputs
are what such a network is made for (`digit_images`): scikit-learn's embedded handwritten
digits upscaled to the input size, tinted per channel into RGB 0..255, then put through the
architecture's own `preprocess_input` -- never uniform noise that no preprocessing expects.

`edgekeras.coverage.applications:NAME` names the family of application NAME (the module's
`__getattr__`), the way `--family module:NAME` names a user's family, so child processes find it.
`python -m edgekeras.coverage.applications` prints `discover()` as JSON (the parent of a run
stays free of TensorFlow).
"""

from __future__ import annotations

import functools
import json
import re
import sys

import numpy as np

from edgekeras import quiet
from edgekeras.coverage.families import Family

CLASSES = 10
INPUT_NAME = "image"
PRECISIONS = ("fp32", "fp16", "int8")
BATCHNORM_SAMPLES = 1000  # of sklearn's 1797 digits, at 32x32; one forward pass in training mode
BATCHNORM_MIN_SAMPLES = 200  # larger inputs get fewer (same pixels): Xception's pass at 71x71 x 1000 took > 10 GB
BATCHNORM_SEED = 20261203
_REFUSAL = re.compile(r"at least (\d+)x(\d+)")


@functools.cache
def discover():
    """{name: {"name", "module", "min_size"}} for every architecture in `keras.applications`, in
    Keras' (alphabetical) order. `module` is the `keras.applications` submodule holding its
    `preprocess_input`."""
    import inspect

    import keras

    found = {}
    for name in sorted(dir(keras.applications)):
        constructor = getattr(keras.applications, name)
        if name[:1].isupper() and inspect.isfunction(constructor) and _defined_in_applications(constructor):
            found[name] = {"name": name, "module": _module_of(constructor), "min_size": _min_size(constructor)}
    return found


def _defined_in_applications(function):
    return getattr(function, "__module__", "").startswith("keras.src.applications.")


def _module_of(constructor):
    """The public `keras.applications` submodule whose source defines `constructor`."""
    return constructor.__module__.rsplit(".", 1)[1]


def _min_size(constructor):
    """The smallest height/width the constructor accepts, from its own refusal of a 1x1 input."""
    try:
        constructor(weights=None, input_shape=(1, 1, 3), classes=CLASSES, classifier_activation=None)
    except ValueError as e:
        match = _REFUSAL.search(str(e))
        if match:
            return int(match.group(1))
        raise
    return 1  # accepted a 1x1 input: no lower bound


@functools.cache
def _digits():
    """sklearn's 1797 embedded 8x8 handwritten digits, as floats in [0, 1]."""
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32) / 16.0


def digit_images(size, module):
    """An input generator: (rng, n) -> {"image": n digits at size x size x 3, 0..255 RGB (a random
    tint per image and channel, so channels differ), through `keras.applications.<module>`'s
    `preprocess_input`}."""

    def generate(rng, n):
        import keras
        from scipy.ndimage import zoom

        digits = _digits()
        chosen = digits[rng.choice(len(digits), size=n, replace=n > len(digits))]
        gray = np.clip(zoom(chosen, (1, size / 8, size / 8), order=1), 0.0, 1.0)
        tint = rng.uniform(0.5, 1.0, size=(n, 1, 1, 3))
        rgb = (gray[..., None] * tint * 255.0).astype(np.float32)
        preprocess = getattr(keras.applications, module).preprocess_input
        return {INPUT_NAME: np.asarray(preprocess(rgb), dtype=np.float32)}

    return generate


def set_batchnorm_statistics(model, feeds, batch_size=None):
    """Sets every BatchNormalization's moving mean/variance to its batch statistics on `feeds`.

    One forward pass in training mode with momentum 0 and dropout off (dropout noise would
    shift every later layer's statistics) makes each layer's inference normalization what
    training normalization does on this batch; momentum and rates are restored after.
    `batch_size`: pass `feeds` in chunks of at most this many rows instead (a pass holds every
    activation of its chunk: MobileNetV2 at 128x128 x 256 images peaks near 9 GB), each chunk
    weighted equally -- the mean of the chunks' means and variances.
    Returns the number of BatchNormalization layers.
    """
    import keras

    layers = list(model._flatten_layers(include_self=False))
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:  # nothing to set (ConvNeXt normalizes by layer): no pass, which for
        return 0  # ConvNeXtLarge alone would hold 10 GB
    drops = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    saved = [(layer, layer.momentum) for layer in norms], [(layer, layer.rate) for layer in drops]
    for layer in drops:
        layer.rate = 0.0
    for k, chunk in enumerate(_chunks(feeds, batch_size)):
        for layer in norms:  # moving = k/(k+1) moving + 1/(k+1) batch: the running mean of the chunks
            layer.momentum = k / (k + 1)
        model(chunk, training=True)  # by input name
    for layer, momentum in saved[0]:
        layer.momentum = momentum
    for layer, rate in saved[1]:
        layer.rate = rate
    return len(norms)


def _chunks(feeds, batch_size):
    """`feeds` (an array or {input name: array}) in near-equal row chunks of at most `batch_size`."""
    if not batch_size:
        return [feeds]
    rows = len(next(iter(feeds.values())) if isinstance(feeds, dict) else feeds)
    parts = np.array_split(np.arange(rows), max(1, -(-rows // batch_size)))
    if isinstance(feeds, dict):
        return [{name: values[index] for name, values in feeds.items()} for index in parts]
    return [feeds[index] for index in parts]


def batchnorm_samples(size):
    """Images in the BatchNormalization pass at `size`: 1000 at 32x32, the same pixels above (one
    pass holds every activation of the batch), never fewer than BATCHNORM_MIN_SAMPLES."""
    return max(BATCHNORM_MIN_SAMPLES, min(BATCHNORM_SAMPLES, BATCHNORM_SAMPLES * 32 * 32 // (size * size)))


def _batchnorm_from_images(size, module):
    """A `prepare` hook: BatchNormalization statistics from `BATCHNORM_SAMPLES` fresh images (a fixed
    seed), not the calibration batch it is handed."""

    def prepare(model, feeds):
        n = batchnorm_samples(size)
        images = digit_images(size, module)(np.random.default_rng(BATCHNORM_SEED), n)
        found = set_batchnorm_statistics(model, images)
        if not _normalizes(model):  # VGG: nothing renormalizes what random weights shrink layer by layer
            scale_to_unit_variance(model, images)
        return found

    return prepare


def _normalizes(model):
    """Whether any layer of `model` normalizes activations (Batch-, Layer-, Group-, Unit-...)."""
    return any("Normalization" in type(layer).__name__ for layer in model._flatten_layers(include_self=False))


def scale_to_unit_variance(model, feeds):
    """Scales each convolution and Dense layer's kernel and bias, in graph order, so its output has
    unit standard deviation on `feeds` (LSUV, Mishkin & Matas 2016). Without BatchNormalization,
    Keras' default Glorot initialization halves the variance at every ReLU layer: VGG19's
    random-weight logits end with a standard deviation of 0.005, and parity on them means nothing.
    Returns the number of layers scaled."""
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.Dense)
    layers = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, kinds)]
    for layer in layers:
        probe = keras.Model(model.inputs, layer.output)
        std = float(np.std(probe.predict(feeds, batch_size=100, verbose=0)))
        if std > 0:
            for weight in (layer.kernel, layer.bias) if layer.use_bias else (layer.kernel,):
                weight.assign(weight / std)
    return len(layers)


def _builder(name):
    def build(x):
        import keras

        constructor = getattr(keras.applications, name)
        model = constructor(weights=None, input_tensor=x, classes=CLASSES, classifier_activation=None)
        # a classifier emitting logits, as users train one: validation judges it by top-1
        # agreement (edgekeras.heads), not as a regressor of ten values
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    return build


def family(name, info=None, size=None):
    """Application `name` as a coverage Family (see the module docstring); `info`: its
    `discover()` entry, when known (else Keras is asked); `size`: the input's height and width
    (default: the smallest Keras accepts, the table's)."""
    info = info or discover()[name]
    size = size or info["min_size"]
    return Family(
        name=name,
        group=info["module"],
        build=_builder(name),
        inputs=digit_images(size, info["module"]),
        description=(
            f"keras.applications.{name}(weights=None, classes={CLASSES}, classifier_activation=None) at {size}x{size}x3"
        ),
        prepare=_batchnorm_from_images(size, info["module"]),
        ref=f"{__name__}:{name}",
    )


def __getattr__(name):
    """`edgekeras.coverage.applications:ResNet50` -> that application's Family (see docstring)."""
    if name[:1].isupper():
        found = discover()
        if name in found:
            return family(name, found[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main():
    """Prints `discover()` as JSON on stdout (the Keras import's chatter goes to stderr)."""
    quiet.quiet_tensorflow()
    with quiet.captured_output():
        found = discover()
    sys.stdout.write(json.dumps(list(found.values())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
