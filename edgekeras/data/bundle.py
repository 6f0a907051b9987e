"""Train/validation/test splits held as numpy arrays, named per model input when bound."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekeras.errors import InputError


def _index(x, idx):
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    return None if x is None else x[idx]


def _length(x):
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


@dataclass
class Split:
    """One split: inputs `x` (an array, or {input name: array}) and labels `y` (or None)."""

    x: object
    y: object = None

    def __len__(self):
        return _length(self.x)

    def take(self, n, seed=0):
        """At most `n` samples, drawn evenly at random with a fixed seed."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return Split(_index(self.x, idx), _index(self.y, idx))

    def feeds(self, input_specs, what="inputs"):
        """{input name: array} for a model whose inputs are `input_specs`; errors say `what`."""
        from edgekeras.signature import check_feeds

        x = self.x
        if not isinstance(x, dict):
            if len(input_specs) != 1:
                raise InputError(
                    f"Expected {what} with one array per model input {[s.name for s in input_specs]}. "
                    "Received: a single array. Name the arrays after the inputs."
                )
            x = {input_specs[0].name: x}
        elif len(input_specs) == 1 and set(x) == {"x"}:
            x = {input_specs[0].name: x["x"]}
        return check_feeds(input_specs, x, what)


@dataclass
class DataBundle:
    """The splits a training run uses, and the batch size it trains with."""

    train: Split
    validation: Split | None
    test: Split | None
    batch_size: int = 32
    seed: int = 0
    shuffle_buffer: int = 1024

    @classmethod
    def from_arrays(cls, x, y, validation_split=0.1, test_split=0.2, batch_size=32, seed=0,
                    shuffle_buffer=1024):
        n = _length(x)
        n_test = int(round(n * test_split))
        n_val = int(round(n * validation_split))
        if n - n_test - n_val < 1:
            raise InputError(f"Expected enough samples to split. Received: {n} samples.")
        order = np.random.default_rng(seed).permutation(n)
        test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
        return cls(
            train=Split(_index(x, train_idx), _index(y, train_idx)),
            validation=Split(_index(x, val_idx), _index(y, val_idx)) if n_val else None,
            test=Split(_index(x, test_idx), _index(y, test_idx)) if n_test else None,
            batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer,
        )

    def calibration(self, n=200):
        """A representative sample of the training inputs for post-training quantization."""
        return self.train.take(n, seed=self.seed)

    def tf_dataset(self, split, shuffle=False):
        """A batched, prefetched `tf.data.Dataset` of (x, y) for `split`."""
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
        if shuffle:
            ds = ds.shuffle(min(self.shuffle_buffer, len(split)), seed=self.seed,
                            reshuffle_each_iteration=True)
        return ds.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)
