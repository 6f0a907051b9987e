"""`source: text_dir` — a folder of `.txt` files, one sub-folder per class
(`keras.utils.text_dataset_from_directory` + `TextVectorization`).

    data: {source: text_dir, path: reviews/, max_tokens: 20000, sequence_length: 200}

Texts become int32 token ids of length `sequence_length` (padded with 0, unknown words 1),
so the model — and every exported artifact — takes token ids: start it with
`input_shape: [SEQUENCE_LENGTH]`, `input_dtype: int32` and an `Embedding`. The vocabulary
is fitted on the training split only and saved as `vectorizer.json` in the run folder;
`edgekeras.data.vectorizer.vectorize(texts, RUN)` turns raw text into the same ids.
"""

from __future__ import annotations

from edgekeras.data.assets import read_data_info
from edgekeras.data.bundle import DatasetSplit, Loaded
from edgekeras.data.folders import FOLDER_FIELDS, folder_splits
from edgekeras.data.vectorizer import ASSET, SPLIT, STANDARDIZE, adapt, to_json, vectorize_dataset
from edgekeras.data.vectorizer import load as load_vectorizer
from edgekeras.errors import InputError, suggest
from edgekeras.recipe.schema import Field

FIELDS = {
    **FOLDER_FIELDS,
    "sequence_length": Field(
        "posint", doc="Give 'data.sequence_length', the token ids per text (the model's input length), e.g. 200."
    ),
    "max_tokens": Field("posint", 20000, doc="Vocabulary size, padding and unknown-word ids included."),
    "standardize": Field("any", "lower_and_strip_punctuation"),
    "split": Field("any", "whitespace"),
    "max_length": Field("posint", None, doc="Characters read per file (default: all)."),
}


def check(section, path="data"):
    for key, choices in (("standardize", STANDARDIZE), ("split", SPLIT)):
        if section[key] not in choices:
            raise InputError(
                f"Expected '{path}.{key}' to be one of {', '.join(repr(c) for c in choices if c)} or null. "
                f"Received: {section[key]!r}.{suggest(section[key], [c for c in choices if c])}"
            )
    if section["max_tokens"] < 3:
        raise InputError(
            f"Expected '{path}.max_tokens' of at least 3 (padding, unknown word and one word). "
            f"Received: {section['max_tokens']}."
        )


def _config(section):
    return {k: section[k] for k in ("max_tokens", "sequence_length", "standardize", "split")}


def load(section, seed=0, fitted=None):
    import keras

    fitted = fitted or {}
    splits, class_names = folder_splits(
        keras.utils.text_dataset_from_directory,
        section,
        seed,
        class_names=fitted.get("class_names"),
        what="text files",
        max_length=section["max_length"],
    )
    config = _config(section)
    layer = fitted.get("vectorizer")
    if layer is None:
        layer = adapt(config, splits[0].dataset.map(lambda text, label: text))
    splits = tuple(None if s is None else DatasetSplit(vectorize_dataset(s.dataset, layer), s.size) for s in splits)
    metadata = {
        "class_names": class_names,
        "vectorizer": ASSET,
        "sequence_length": config["sequence_length"],
        "vocabulary_size": layer.vocabulary_size(),
    }
    return Loaded(
        splits=splits,
        metadata=metadata,
        assets={ASSET: to_json(layer, config)},
        fitted={"class_names": class_names, "vectorizer": layer},
    )


def restore(run_folder):
    """The class names and the vocabulary a finished run trained with."""
    layer, _ = load_vectorizer(run_folder)
    return {"class_names": read_data_info(run_folder).get("class_names"), "vectorizer": layer}
