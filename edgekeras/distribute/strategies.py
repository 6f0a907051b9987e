"""The recipe's `strategy:` values, one record each: what it trains on and how it is built.

Each builder returns the `tf.distribute.Strategy` (None for `default`: Keras' own default
strategy, no scope) and is called once per process, before TensorFlow runs anything (the
multi-worker strategy configures collective ops at start-up and refuses to come later).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekeras.errors import InputError


@dataclass(frozen=True)
class StrategyKind:
    """One `strategy:` value."""

    name: str
    doc: str
    build: Callable[[], Any]  # -> tf.distribute.Strategy, or None for TensorFlow's default
    multi_worker: bool = False  # reads TF_CONFIG; workers beside the chief write no run folder


def _default():
    return None


def _mirrored():
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()  # every visible GPU, else the CPU


def _multi_worker():
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()  # the cluster from TF_CONFIG (none: one worker)


def _tpu():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            "Expected a TPU for 'strategy: tpu'. Received: none found on this machine "
            f"(TensorFlow's TPU resolver: {reason}). Run on a TPU VM (or set TPU_NAME), or use "
            "'strategy: mirrored' (GPUs) or 'strategy: default'."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


STRATEGIES = {
    kind.name: kind
    for kind in (
        StrategyKind("default", "one process on one device (TensorFlow's default strategy)", _default),
        StrategyKind("mirrored", "one process, a replica on every visible GPU (the CPU when none)", _mirrored),
        StrategyKind(
            "multi_worker",
            "one process per machine (TF_CONFIG), all-reduce between them; `edgekeras launch` on one machine",
            _multi_worker,
            multi_worker=True,
        ),
        StrategyKind("tpu", "the TPU cores of this TPU VM (TPUStrategy)", _tpu),
    )
}
