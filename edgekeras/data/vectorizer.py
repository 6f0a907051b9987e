"""The text vocabulary (`vectorizer.json`): raw strings -> the int32 token ids models take.

`text_dir` fits a Keras `TextVectorization` (output_mode "int", padded/truncated to
`sequence_length`) on the training texts and saves its settings and vocabulary as a JSON
asset in the run folder. The model and its exported TFLite/ONNX artifacts take token ids,
so anything that feeds them raw text (predict, validation on new text) calls `vectorize`
with that asset to get exactly the ids the model was trained on.

    ids = vectorize(["a new review"], "runs/reviews")   # (1, sequence_length) int32
"""

from __future__ import annotations

import json

import numpy as np

from edgekeras.data.assets import asset_path
from edgekeras.errors import InputError

ASSET = "vectorizer.json"
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SPLIT = ("whitespace", "character", None)
ADAPT_BATCH = 256


def build(config, vocabulary=None):
    """A `TextVectorization` layer from `config` (max_tokens, sequence_length, standardize,
    split), with a fixed vocabulary when given."""
    import keras

    return keras.layers.TextVectorization(
        max_tokens=config["max_tokens"],
        standardize=config["standardize"],
        split=config["split"],
        output_mode="int",
        output_sequence_length=config["sequence_length"],
        vocabulary=vocabulary,
    )


def adapt(config, texts):
    """A vectorizer fitted on `texts`, an unbatched `tf.data.Dataset` of strings."""
    layer = build(config)
    layer.adapt(texts.batch(ADAPT_BATCH))
    return layer


def to_json(layer, config):
    """The asset text: the settings and the vocabulary (index = token id)."""
    vocabulary = [str(t) for t in layer.get_vocabulary()]
    return json.dumps({"config": dict(config), "vocabulary": vocabulary}, indent=1) + "\n"


def load(path):
    """The vectorizer saved in a run folder (or a `vectorizer.json` path)."""
    target = asset_path(path, ASSET)
    try:
        doc = json.loads(target.read_text())
        config, vocabulary = doc["config"], doc["vocabulary"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise InputError(
            f"Expected a vectorizer asset with 'config' and 'vocabulary' in '{target}'. "
            f"Received: a file that does not parse ({e!r}). Train the run again to rewrite it."
        ) from None
    return build(config, vocabulary=vocabulary), config


def vectorize(texts, path):
    """Token ids (N, sequence_length) int32 for the strings `texts`, as the run trained."""
    import tensorflow as tf

    if isinstance(texts, str):
        texts = [texts]
    layer, _ = load(path)
    return np.asarray(layer(tf.constant(list(texts), dtype=tf.string))).astype("int32")


def vectorize_dataset(dataset, layer):
    """Maps an unbatched (text, label) dataset to (int32 token ids, label)."""
    import tensorflow as tf

    def ids(text, label):
        return tf.cast(layer(text), tf.int32), label

    return dataset.batch(ADAPT_BATCH).map(ids, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
