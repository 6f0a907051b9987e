"""Distributed training: the recipe's `strategy:` on tf.distribute.

`plan_distribution` decides, without TensorFlow, what a training process is: the strategy
(`strategies.STRATEGIES`), its place in a multi-worker cluster (TF_CONFIG, `cluster`), whether
it is the chief. `start_distribution` builds the `tf.distribute` strategy (first thing in the
process, as MultiWorkerMirroredStrategy requires) and returns a `Distribution`, which:

- builds and compiles the model inside `scope()` (under `multi_worker`, with the Keras 3.15
  fixes of `keras_compat` applied for as long as the scope lasts);
- takes the recipe's `data.batch_size` as the *global* batch: every step consumes that many
  samples across all replicas, each replica `batch_size / replicas` of them (so the same recipe
  makes the same number of steps per epoch on 1 process or 4 workers);
- shards each dataset with `AutoShardPolicy.DATA`: every worker runs the same (identically
  seeded) pipeline over the in-memory arrays and keeps its share of each global batch; FILE
  sharding does not apply to arrays and would silently fall back;
- says what it was (`record()`, written to the run folder's run.json).

Only the chief writes the run folder; the other workers train into a temporary folder removed
at the end (`worker_folder`), the multi-worker checkpoint convention, and resume from the
chief's checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekeras.distribute.cluster import ENV, Cluster, read_cluster
from edgekeras.distribute.keras_compat import multi_worker_fit
from edgekeras.distribute.strategies import STRATEGIES
from edgekeras.errors import InputError, WorkerFailed

log = logging.getLogger(__name__)

SHARD_POLICY = "DATA"


@dataclass(frozen=True)
class DistributionPlan:
    """Where and how a training process trains, decided before TensorFlow runs."""

    strategy: str = "default"
    cluster: Cluster | None = None  # multi_worker under TF_CONFIG; None: this process alone

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder."""
        return self.cluster is None or self.cluster.is_chief

    @property
    def workers(self) -> int:
        return self.cluster.workers if self.cluster is not None else 1

    @property
    def role(self) -> str:
        """'chief' or 'worker N', for messages."""
        return "chief" if self.is_chief else f"worker {self.cluster.rank if self.cluster else 0}"


def plan_distribution(strategy: str = "default", environ: Mapping[str, str] | None = None) -> DistributionPlan:
    """The `DistributionPlan` of the recipe's `strategy:` in this process's environment;
    a malformed TF_CONFIG is an `InputError` here, before anything is loaded."""
    kind = STRATEGIES[strategy]
    environ = os.environ if environ is None else environ
    if not kind.multi_worker:
        if environ.get(ENV, "").strip():
            log.warning(
                "%s is set but the recipe's strategy is '%s': this process trains alone. Set 'strategy: "
                "multi_worker' to train with the cluster it describes.",
                ENV,
                strategy,
            )
        return DistributionPlan(strategy)
    return DistributionPlan(strategy, read_cluster(environ))


@dataclass(frozen=True)
class Distribution:
    """A started `DistributionPlan`: the tf.distribute strategy training runs under."""

    plan: DistributionPlan
    strategy: Any  # tf.distribute.Strategy, or None for TensorFlow's default
    chief_out: Path | None = None  # the run folder the chief writes, when given (--out)

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync) if self.strategy is not None else 1

    @property
    def is_chief(self) -> bool:
        return self.plan.is_chief

    def check_batch_size(self, batch_size: int) -> None:
        """The global `batch_size` must split evenly over the replicas."""
        if batch_size % self.replicas:
            raise InputError(
                f"Expected 'data.batch_size' (the global batch, split over the replicas) to be a multiple of the "
                f"{self.replicas} replicas of 'strategy: {self.plan.strategy}'. Received: {batch_size}."
            )

    def checkpoint_dirs(self, backup_dir: Path, root: Path) -> tuple[Path, Path | None]:
        """(where this process checkpoints, where it restores from) for the run folder `root`
        and its checkpoint folder `backup_dir`. A worker that is not the chief restores the
        chief's checkpoint (in `chief_out`; none when that was not given) and writes its own in
        its temporary folder, never in the chief's."""
        backup_dir, root = Path(backup_dir), Path(root)
        if self.is_chief:
            return backup_dir, backup_dir
        if backup_dir.is_relative_to(root):
            inside = backup_dir.relative_to(root)
            return backup_dir, (self.chief_out / inside if self.chief_out is not None else None)
        return root / "backup", backup_dir  # the recipe's own folder outside the run belongs to the chief

    def scope(self) -> Any:
        """The context models are built, compiled, trained and evaluated in."""
        if self.strategy is None:
            return nullcontext()
        stack = ExitStack()
        stack.enter_context(self.strategy.scope())
        if STRATEGIES[self.plan.strategy].multi_worker:
            stack.enter_context(multi_worker_fit())
            stack.enter_context(_peers_watched(self.plan))
        return stack

    def shard(self, dataset: Any) -> Any:
        """`dataset` (batched with the global batch size) with the auto-shard policy set."""
        if self.strategy is None:
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy, SHARD_POLICY)
        return dataset.with_options(options)

    def record(self, batch_size: int) -> dict[str, Any]:
        """What run.json says about it, for the recipe's global `batch_size`."""
        return {
            "strategy": self.plan.strategy,
            "replicas": self.replicas,
            "workers": self.plan.workers,
            "global_batch_size": batch_size,
            "per_replica_batch_size": batch_size // self.replicas,
            "shard_policy": SHARD_POLICY if self.strategy is not None else None,
            "devices": self.devices,
        }

    @property
    def devices(self) -> list[str]:
        """The devices this process trains on, e.g. ['/job:localhost/replica:0/task:0/device:GPU:0']."""
        if self.strategy is None:
            return []
        return [str(d) for d in self.strategy.extended.worker_devices]


def start_distribution(plan: DistributionPlan, out: str | os.PathLike[str] | None = None) -> Distribution:
    """Builds the plan's strategy, before TensorFlow has run anything in this process; `out`
    is the run folder the chief writes (where the other workers find its checkpoint)."""
    try:
        strategy = STRATEGIES[plan.strategy].build()
    except RuntimeError as e:  # e.g. "Collective ops must be configured at program startup"
        raise InputError(
            f"Expected 'strategy: {plan.strategy}' to start before TensorFlow ran anything in this process. "
            f"Received: {str(e).strip().splitlines()[0]}. Train it from a recipe in a fresh process "
            "(edgekeras train / edgekeras launch)."
        ) from None
    return Distribution(plan, strategy, Path(out) if out is not None else None)


@contextmanager
def worker_folder(plan: DistributionPlan) -> Iterator[Path | None]:
    """None for the chief; for another worker, a temporary folder for its copy of the run
    folder, removed when training ends."""
    if plan.is_chief:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix=f"edgekeras-{plan.role.replace(' ', '')}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _peers_watched(plan: DistributionPlan) -> Iterator[None]:
    """TensorFlow's error when another worker vanished mid-step (a collective aborted, a socket
    closed) becomes a `WorkerFailed` saying so, instead of a traceback from inside TensorFlow."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError)
    try:
        yield
    except lost as e:
        first = next((line.strip() for line in str(e.message).splitlines() if line.strip()), type(e).__name__)
        if isinstance(e, tf.errors.InternalError) and "ollective" not in first:
            raise
        raise WorkerFailed(
            f"The {plan.role} lost another worker of the cluster mid-training ({first}). Restart every worker "
            "(edgekeras launch does): training resumes from the chief's last completed epoch."
        ) from None


def check_same_start(strategy: Any, epoch: int) -> None:
    """Under a multi-worker strategy, every worker must resume from the same epoch, or the one
    with fewer epochs left finishes while the others wait for it forever: an `InputError` on
    every worker instead. One all-reduce of (epoch, epoch²): all equal iff n·Σe² = (Σe)²."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or strategy.num_replicas_in_sync < 2:
        return

    def on_replica():
        return tf.constant([epoch, epoch * epoch], tf.int64)

    @tf.function(autograph=False)  # in a graph: run eagerly, the collective warns of its overhead
    def sums():
        return strategy.reduce("SUM", strategy.run(on_replica), axis=None)

    total, squares = (int(v) for v in sums().numpy())
    replicas = strategy.num_replicas_in_sync
    if replicas * squares != total * total:
        raise InputError(
            f"Expected every worker to resume from the same epoch. Received: epoch {epoch} here, a mean of "
            f"{total / replicas:.2f} over the {replicas} replicas. Give every worker the same --out, a folder they "
            "all reach (the chief's checkpoint is there), or delete the chief's unfinished run folder to start over."
        )
