"""Train/validation/test splits and the tf.data pipeline a training run reads them through.

A `Split` holds numpy arrays (inputs `x`: an array or {input name: array}; labels `y`: an
array, {output name: array} or None). A `DatasetSplit` holds an unbatched `tf.data.Dataset`
of (x, y) elements instead, for data too large to hold (image and text folders, time series
windows); it turns into arrays only where arrays are needed (`take`, `feeds`, `.x`, `.y`).
`DataBundle` keeps the splits with the pipeline options (batch size, shuffle buffer, cache,
prefetch, augmentation) and the metadata a run folder records (`save_assets`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.data.assets import write_assets
from edgekeras.data.augment import augment_fn
from edgekeras.errors import InputError
from edgekeras.signature import check_feeds

if TYPE_CHECKING:
    import tensorflow as tf

    from edgekeras.hints import Arrays, PathLike
    from edgekeras.signature import TensorSpec

MATERIALIZE_BATCH = 256


def _index(x, idx):
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    return None if x is None else x[idx]


def _index_labels(y, idx):
    """Labels at `idx`: an array, {output name: array} or a list per output."""
    if isinstance(y, (list, tuple)):
        return [v[idx] for v in y]
    return _index(y, idx)


def _length(x):
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def _concat(parts):
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


class Split:
    """One split held as arrays: inputs `x` (an array, or {input name: array}) and labels `y`."""

    def __init__(self, x: Any, y: Any = None) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return _length(self.x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples)"

    def take(self, n: int, seed: int = 0) -> Split:
        """At most `n` samples, drawn evenly at random with a fixed seed."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return Split(_index(self.x, idx), _index_labels(self.y, idx))

    def hold_out(self, n: int, seed: int = 0) -> tuple[Split, Split]:
        """(kept, held_out): `n` samples drawn at random (fixed seed) and the rest, disjoint,
        e.g. calibration inputs that validate an int8 artifact without having calibrated it."""
        if not 0 < n < len(self):
            raise InputError(f"Expected to hold out between 1 and {len(self) - 1} samples. Received: {n}.")
        held = np.zeros(len(self), dtype=bool)
        held[np.random.default_rng(seed).choice(len(self), n, replace=False)] = True
        kept_idx, held_idx = np.flatnonzero(~held), np.flatnonzero(held)
        return (
            Split(_index(self.x, kept_idx), _index_labels(self.y, kept_idx)),
            Split(_index(self.x, held_idx), _index_labels(self.y, held_idx)),
        )

    def feeds(self, input_specs: Sequence[TensorSpec], what: str = "inputs") -> Arrays:
        """{input name: array} for a model whose inputs are `input_specs`; errors say `what`."""
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

    def to_tf_dataset(self) -> tf.data.Dataset:
        """An unbatched `tf.data.Dataset` of (x, y) elements (x alone without labels)."""
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(self.x if self.y is None else (self.x, self.y))

    def element_shapes(self) -> Any:
        """{part: per-sample shape} of inputs and labels, to compare two splits' structure."""
        return _shapes({"x": self.x, "y": self.y}, lambda a: tuple(np.shape(a)[1:]))


class DatasetSplit(Split):
    """One split as an unbatched `tf.data.Dataset` of (x, y) elements with a known size.

    `random_order` says the elements already come in random order (files shuffled by a
    seed), so `take(n)` can read the first n instead of scanning the whole split.
    """

    def __init__(self, dataset, size, random_order=True):
        import tensorflow as tf

        if int(dataset.cardinality()) < 0:  # e.g. after unbatch(): tell Keras how many batches
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(int(size)))
        self.dataset, self.size, self.random_order = dataset, int(size), random_order
        self._arrays = None

    def __len__(self):
        return self.size

    @property
    def x(self):
        return self._materialize()[0]

    @property
    def y(self):
        return self._materialize()[1]

    def _materialize(self):
        if self._arrays is None:
            self._arrays = _to_arrays(self.dataset)
        return self._arrays

    def take(self, n, seed=0):
        if self._arrays is not None or n >= self.size:
            return Split(*self._materialize()).take(n, seed)
        if self.random_order:
            return Split(*_to_arrays(self.dataset.take(n)))
        import tensorflow as tf

        idx = tf.constant(np.sort(np.random.default_rng(seed).choice(self.size, n, replace=False)))
        picked = self.dataset.enumerate().filter(lambda i, _: tf.reduce_any(tf.equal(i, idx)))
        return Split(*_to_arrays(picked.map(lambda _, element: element)))

    def to_tf_dataset(self):
        return self.dataset

    def element_shapes(self):
        spec = self.dataset.element_spec
        x, y = spec if isinstance(spec, tuple) else (spec, None)
        return _shapes({"x": x, "y": y}, lambda s: tuple(s.shape))


def _shapes(tree, shape_of):
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: _shapes(v, shape_of) for k, v in tree.items()}
    return shape_of(tree)


def _to_arrays(dataset):
    """(x, y) numpy arrays (dicts where the elements are dicts) from an unbatched dataset."""
    xs, ys = [], []
    for element in dataset.batch(MATERIALIZE_BATCH).as_numpy_iterator():
        x, y = element if isinstance(element, tuple) else (element, None)
        xs.append(x)
        ys.append(y)
    if not xs:
        raise InputError("Expected a split with samples. Received: an empty dataset.")
    return _concat(xs), None if ys[0] is None else _concat(ys)


def split_arrays(x, y, validation_split=0.1, test_split=0.2, seed=0):
    """(train, validation, test) `Split`s drawn at random from arrays (None where empty)."""
    n = _length(x)
    n_test = round(n * test_split)
    n_val = round(n * validation_split)
    if n - n_test - n_val < 1:
        raise InputError(f"Expected enough samples to split. Received: {n} samples.")
    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    return (
        Split(_index(x, train_idx), _index(y, train_idx)),
        Split(_index(x, val_idx), _index(y, val_idx)) if n_val else None,
        Split(_index(x, test_idx), _index(y, test_idx)) if n_test else None,
    )


@dataclass
class Loaded:
    """What a data source's `load` returns when it is more than `(x, y)` arrays.

    Either `x`/`y` (every sample; the bundle splits them at random) or `splits`
    (train, validation, test) for a source that splits itself (folders keep Keras' seeded
    file split, time series split by time).
    """

    x: object = None
    y: object = None
    splits: tuple | None = None
    metadata: dict = field(default_factory=dict)  # recorded in the run folder's data.json
    assets: dict = field(default_factory=dict)  # {file name: text} written beside it
    fitted: object = None  # preprocessing state an explicit validation set reuses


@dataclass
class DataBundle:
    """The splits a training run uses and the tf.data pipeline options it reads them with."""

    train: Split
    validation: Split | None
    test: Split | None
    batch_size: int = 32
    seed: int = 0
    shuffle_buffer: int = 1024
    cache: bool | str = False  # False, True (memory) or a folder for file caches
    prefetch: bool = True
    augment: list = field(default_factory=list)  # Keras layers applied to training batches only
    metadata: dict = field(default_factory=dict)
    assets: dict = field(default_factory=dict)
    fingerprint: str = ""  # names file caches so a changed data section misses them

    @classmethod
    def from_arrays(
        cls,
        x: Any,
        y: Any,
        validation_split: float = 0.1,
        test_split: float = 0.2,
        batch_size: int = 32,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        **options: Any,
    ) -> DataBundle:
        train, validation, test = split_arrays(x, y, validation_split, test_split, seed)
        return cls(train, validation, test, batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer, **options)

    def calibration(self, n: int = 200) -> Split:
        """A representative sample of the training inputs for post-training quantization."""
        return self.train.take(n, seed=self.seed)

    def split_name(self, split: Split | None) -> str | None:
        for name in ("train", "validation", "test"):
            if getattr(self, name) is split:
                return name
        return None

    def tf_dataset(self, split: Split, shuffle: bool = False, training: bool | None = None) -> tf.data.Dataset:
        """A batched `tf.data.Dataset` of (x, y) for `split`: cached, shuffled, augmented
        (`training`: default, when `split` is the train split) and prefetched as configured."""
        import tensorflow as tf

        training = split is self.train if training is None else training
        ds = split.to_tf_dataset()
        if self.cache:
            ds = ds.cache(self._cache_file(split))
        if shuffle:
            ds = ds.shuffle(max(1, min(self.shuffle_buffer, len(split))), seed=self.seed, reshuffle_each_iteration=True)
        ds = ds.batch(self.batch_size)
        if training and self.augment:
            ds = ds.map(augment_fn(self.augment), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE) if self.prefetch else ds

    def _cache_file(self, split: Split) -> str:
        """'' (memory) or `CACHE/<split>-<fingerprint>`; stale lock files of a killed run go."""
        name = self.split_name(split)
        if self.cache is True or self.cache is False or name is None:
            return ""
        folder = Path(self.cache)
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / f"{name}-{self.fingerprint or 'data'}"
        for lock in folder.glob(f"{prefix.name}*.lockfile"):
            lock.unlink(missing_ok=True)
        return str(prefix)

    def save_assets(self, root: PathLike) -> Path:
        """Writes `data.json` (source, split sizes, class names, ...) and the source's asset
        files (e.g. `vectorizer.json`) into the run folder `root`, each atomically."""
        sizes = {
            name: len(getattr(self, name)) if getattr(self, name) is not None else 0
            for name in ("train", "validation", "test")
        }
        return write_assets(root, {**self.metadata, "samples": sizes}, self.assets)


def fingerprint(section, seed, sizes=()):
    """A short hash of a data section (minus pipeline-only keys), the seed and the split
    sizes (so adding or removing files misses an old cache)."""
    keep = {
        k: v for k, v in section.items() if k not in ("cache", "prefetch", "augment", "batch_size", "shuffle_buffer")
    }
    text = json.dumps([keep, seed, list(sizes)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
