"""Per-sample loss weights given with training data (`train(data=(x, y, w))` or a `sample_weight` array).

They ride along with the labels while the data is split (`with_sample_weight`), are taken out
of each split again (`unpack_sample_weight`), and join each split's tf.data pipeline as the third
element `model.fit` reads (`weighted_dataset`).
"""

from __future__ import annotations

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.errors import InputError

_LABELS, _WEIGHTS = "__labels__", "__sample_weight__"


def pop_sample_weight(data):
    """(data without sample weights, sample weights or None) from what `train` was given."""
    if isinstance(data, tuple) and len(data) == 3:
        return data[:2], data[2]
    if isinstance(data, dict) and "sample_weight" in data:
        data = dict(data)
        return data, data.pop("sample_weight")
    return data, None


def with_sample_weight(labels, weights, n):
    """`labels` with `weights` (checked: one finite, non-negative number per sample) riding along."""
    weights = np.asarray(weights, dtype="float32")
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InputError(
            f"Expected sample_weight as {n} finite, non-negative numbers (one per sample). Received: an "
            f"array of shape {weights.shape}{'' if weights.shape != (n,) else ' with negative or NaN values'}."
        )
    return {_LABELS: labels, _WEIGHTS: weights}


def unpack_sample_weight(bundle):
    """Takes the sample weights out of each split's labels: {split name: weights} or None."""
    first = bundle.train.y
    if not (isinstance(first, dict) and _WEIGHTS in first):
        return None
    weights = {}
    for name in ("train", "validation", "test"):
        split = getattr(bundle, name)
        if split is not None:
            weights[name] = split.y[_WEIGHTS]
            split.y = split.y[_LABELS]
    return weights


def weighted_dataset(bundle, split, weights, shuffle=False):
    """The bundle's tf.data pipeline for `split`, yielding (x, y, sample_weight) with weights."""
    name = bundle.split_name(split)
    if weights is None or name not in weights:
        return bundle.tf_dataset(split, shuffle=shuffle)
    weighted = Split(split.x, (split.y, weights[name]))
    ds = bundle.tf_dataset(weighted, shuffle=shuffle, training=name == "train")
    return ds.map(lambda x, yw: (x, yw[0], yw[1]))
