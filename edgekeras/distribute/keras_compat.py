"""Keras 3.15 `fit`/`evaluate` under MultiWorkerMirroredStrategy: the two fixes, in one place.

Out of the box, `model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy` with Keras
3.15 (keras-team/keras#20585, tensorflow/tensorflow#72388), through two defects in
`keras/src/backend/tensorflow/trainer.py`:

1. `TensorFlowTrainer._maybe_symbolic_build` builds the model from the first distributed batch
   reduced with `strategy.reduce("MEAN", batch)`: under the multi-worker strategy that is a
   collective over the *inputs* and raises `Attempt to convert a value (PerReplica...) to a
   Tensor`. Only the batch's shapes and dtypes matter there, so this takes each value's local
   copy (`experimental_local_results(x)[0]`) instead.
2. `reduce_per_replica(..., "mean")` calls `strategy.reduce("MEAN", v, axis=0)` on the scalar
   logs (loss, metrics): `Invalid reduction dimension 0 for input with 0 dimensions`. Here
   rank-0 values are reduced with `axis=None` (the mean over replicas); the rest as before.

`multi_worker_fit()` applies both while training runs under that strategy and restores Keras
afterwards; each replacement hands every other strategy to Keras' own code. It patches only the
Keras versions and function bodies it was written against (`KERAS_VERSIONS`, `FINGERPRINTS`):
after a Keras upgrade that changes them it patches nothing and warns, and
tests/training/test_keras_compat.py fails until this module is checked against the new code.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

KERAS_VERSIONS = ((3, 15), (3, 16))  # [first, last): the minor versions checked against
# "qualified name" -> sha256 (first 16 hex digits) of the source it replaces or relies on, Keras 3.15.1
FINGERPRINTS = {
    "TensorFlowTrainer._maybe_symbolic_build": "92a504f5eba9b29f",
    "reduce_per_replica": "2e7d54b1e6edc29a",
    "_collective_all_reduce_multi_worker": "0302369d850e6694",
    "_is_per_replica_instance": "19a5613a75de7a78",
}


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def _lookup(module, qualname):
    value = module
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def fingerprint(function: Any) -> str:
    """The short sha256 of a function's source, as `FINGERPRINTS` records it."""
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def drift() -> list[str]:
    """What differs from the Keras this layer was written against: [] when it applies as is."""
    import keras

    problems = []
    version = tuple(int(p) for p in keras.__version__.split(".")[:2])
    if not KERAS_VERSIONS[0] <= version < KERAS_VERSIONS[1]:
        first, last = (".".join(map(str, v)) for v in KERAS_VERSIONS)
        problems.append(f"Keras {keras.__version__} is outside {first}.x (checked up to, not including, {last})")
    module = _trainer_module()
    for name, expected in FINGERPRINTS.items():
        try:
            found = fingerprint(_lookup(module, name))
        except (AttributeError, OSError, TypeError):
            problems.append(f"keras.src.backend.tensorflow.trainer.{name} is gone")
            continue
        if found != expected:
            problems.append(f"keras.src.backend.tensorflow.trainer.{name} changed ({found}, expected {expected})")
    return problems


@contextmanager
def multi_worker_fit() -> Iterator[bool]:
    """Within it, Keras' TensorFlow trainer works under MultiWorkerMirroredStrategy; yields
    whether the fixes are applied (False, with a warning, on a Keras they were not written for)."""
    problems = drift()
    if problems:
        log.warning(
            "edgekeras' multi-worker fixes for Keras 3.15 are not applied: %s. If model.fit fails under "
            "strategy: multi_worker, install keras==3.15.1 (or report the error).",
            "; ".join(problems),
        )
        yield False
        return
    module = _trainer_module()
    trainer_class = module.TensorFlowTrainer
    original_build, original_reduce = trainer_class._maybe_symbolic_build, module.reduce_per_replica
    trainer_class._maybe_symbolic_build = _local_symbolic_build(module, original_build)
    module.reduce_per_replica = _scalar_mean_reduce(module, original_reduce)
    try:
        yield True
    finally:
        trainer_class._maybe_symbolic_build = original_build
        module.reduce_per_replica = original_reduce


def _local_symbolic_build(module, original):
    """Fix 1: build from the local copy of the first batch instead of a collective over it."""
    import tensorflow as tf
    from keras.src import tree

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is None or self._distribute_strategy is None:
            return original(self, iterator=iterator, data_batch=data_batch)
        if not module._collective_all_reduce_multi_worker(strategy):
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:  # the first batch, as Keras takes it
            data_batch = tree.map_structure(
                lambda x: (
                    strategy.experimental_local_results(x)[0] if isinstance(x, tf.distribute.DistributedValues) else x
                ),
                next(it),
            )
            break
        return original(self, data_batch=data_batch)

    return _maybe_symbolic_build


def _scalar_mean_reduce(module, original):
    """Fix 2: the mean of rank-0 logs over the workers' replicas reduces no axis."""
    from keras.src import tree

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not module._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def _reduce(v):
            local = strategy.experimental_local_results(v)[0] if module._is_per_replica_instance(v) else v
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction)

        return tree.map_structure(_reduce, values)

    return reduce_per_replica
