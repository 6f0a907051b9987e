"""TF_CONFIG: the cluster a multi-worker training process belongs to, read and checked.

`tf.distribute.MultiWorkerMirroredStrategy` reads the `TF_CONFIG` environment variable:

    {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}

(optionally with a `"chief": ["host:port"]` job). TensorFlow's own errors for a malformed one
come from deep inside its cluster resolver, or as a hang while the workers wait for a task that
never comes; here it is checked first, without TensorFlow, and every problem is an `InputError`
naming the key at fault. The chief is the `chief` task if the cluster has one, else worker 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from edgekeras.errors import InputError, suggest

ENV = "TF_CONFIG"
JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy's jobs (no parameter servers, no evaluator)
EXAMPLE = '{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker cluster, as TF_CONFIG describes it."""

    jobs: dict[str, list[str]]  # job name -> its tasks' "host:port"
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        """How many training processes the cluster has (the chief included)."""
        return sum(len(tasks) for tasks in self.jobs.values())

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder (the chief task, else worker 0)."""
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def rank(self) -> int:
        """0 for the chief, then the workers in order (for names in messages and folders)."""
        offset = 1 if "chief" in self.jobs and self.task_type == "worker" else 0
        return offset + self.task_index

    @property
    def address(self) -> str:
        return self.jobs[self.task_type][self.task_index]


def read_cluster(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The `Cluster` TF_CONFIG describes, or None when TF_CONFIG is unset or empty."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"Expected {ENV} to be JSON such as {EXAMPLE}. Received: {_shorten(text)!r}, which is not valid JSON ({e})."
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise InputError(
            f"Expected {ENV} to hold a 'cluster' mapping of jobs, e.g. {EXAMPLE}. Received: {_shorten(text)!r}."
        )
    jobs = {name: _tasks(name, tasks) for name, tasks in config["cluster"].items()}
    for name in jobs:
        if name not in JOBS:
            raise InputError(
                f"Expected the jobs of {ENV}'s 'cluster' to be {' and '.join(map(repr, JOBS))} (multi_worker "
                f"training has no parameter servers or evaluator). Received: {name!r}.{suggest(name, JOBS)}"
            )
    if len(jobs.get("chief", [])) > 1:
        raise InputError(f"Expected at most one 'chief' task in {ENV}. Received: {len(jobs['chief'])}.")
    task = config.get("task")
    if not isinstance(task, dict):
        raise InputError(
            f'Expected {ENV} to name this process\'s task, e.g. "task": {{"type": "worker", "index": 0}}. '
            f"Received: {task!r}."
        )
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs:
        raise InputError(
            f"Expected {ENV}'s task.type to be a job of its cluster ({', '.join(map(repr, jobs))}). "
            f"Received: {task_type!r}.{suggest(task_type, jobs)}"
        )
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[task_type]):
        raise InputError(
            f"Expected {ENV}'s task.index to be 0 to {len(jobs[task_type]) - 1} (the cluster's "
            f"{len(jobs[task_type])} {task_type!r} task(s)). Received: {index!r}."
        )
    return Cluster(jobs, str(task_type), index)


def local_tf_config(addresses: list[str], index: int) -> str:
    """The TF_CONFIG of worker `index` of a cluster of `addresses` (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def _tasks(name, tasks):
    """A job's list of "host:port", checked."""
    if not isinstance(tasks, list) or not tasks:
        raise InputError(f'Expected {ENV}\'s cluster.{name} to be a list of "host:port". Received: {tasks!r}.')
    for address in tasks:
        host, _, port = str(address).rpartition(":")
        if not isinstance(address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f'Expected {ENV}\'s cluster.{name} to list "host:port" addresses. Received: {address!r}.')
    if len(set(tasks)) != len(tasks):
        raise InputError(f"Expected distinct addresses in {ENV}'s cluster.{name}. Received: {tasks!r}.")
    return list(tasks)


def _shorten(text, limit=120):
    return text if len(text) <= limit else text[:limit] + "..."
