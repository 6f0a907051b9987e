"""`launch`: N training workers on this machine, one multi-worker cluster on 127.0.0.1.

Each worker is `python -m edgekeras train RECIPE --out RUN_DIR` with its own TF_CONFIG (worker 0
is the chief), exactly what each machine of a real cluster runs. The launcher:

- checks everything it can before starting anyone: the worker count, the recipe (its strategy
  must be `multi_worker`), the run folder (an unfinished one resumes, a finished one needs
  `force`), the ports (`port`: that one and the next N-1 must be free; else free ones are picked);
- shows the chief's progress as it comes (its stderr lines, logged on this module's logger),
  keeps each worker's last stderr lines, and gives every worker a temporary folder of its own
  (TMPDIR), removed when the group ends, also after a SIGKILL;
- stops every worker as soon as one fails, and raises `WorkerFailed` naming it, with its last
  lines on stderr (its exit code: 2 for bad input, 1 otherwise);
- restarts the whole group when a worker was killed by a signal (a preempted or OOM-killed
  machine), up to `max_restarts` times: the chief's checkpoint (BackupAndRestore) makes
  training resume from the last completed epoch, on every worker, so each epoch appears once
  in history.csv.

Each worker gets `cpu_count // N` intra-op threads unless TF_NUM_INTRAOP_THREADS is set, so N
workers on one machine share its cores instead of each taking all of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.distribute.cluster import ENV, local_tf_config
from edgekeras.distribute.strategies import STRATEGIES
from edgekeras.errors import InputError, OutputExistsError, WorkerFailed
from edgekeras.recipe import load_recipe
from edgekeras.run_folder import RunFolder, new_run_path, unfinished_run

if TYPE_CHECKING:
    from edgekeras.hints import PathLike

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
TAIL_LINES = 20  # stderr lines kept per worker for the error message
GRACE_S = 3.0  # after a worker ends badly, how long the others may take to end on their own
FINISH_S = 60.0  # after the chief succeeded, how long the other workers may take to exit
STOP_S = 10.0  # SIGTERM, then SIGKILL after this long


@dataclass(frozen=True)
class LaunchPlan:
    """What `launch` starts, checked before any worker runs."""

    recipe: str  # as the workers are given it: a path or a shipped recipe name
    workers: int
    out: Path  # the chief's run folder
    fresh: bool = True  # start over: whatever `out` holds is removed first (else an unfinished run resumes)
    export: bool = True
    port: int | None = None  # the first of `workers` fixed ports; None: free ones at each start
    max_restarts: int = 3


def launch(
    recipe: PathLike,
    workers: int = 2,
    out: PathLike | None = None,
    force: bool = False,
    export: bool = True,
    port: int | None = None,
    max_restarts: int = 3,
) -> RunFolder:
    """Trains `recipe` (with `strategy: multi_worker`) on `workers` processes of this machine.

    Args:
        recipe: a recipe path or a shipped recipe name (the workers load it themselves).
        workers: how many worker processes (worker 0 is the chief, which writes the run folder).
        out: the run folder (default `runs/NAME-TIMESTAMP`, or the newest unfinished one, resumed).
        force: start over in `out` even if it holds a finished or unfinished run.
        export: convert the trained model as the recipe's `export:` says (the chief does).
        port: the chief's port, the others on the next ones (default: free ports).
        max_restarts: how often the group restarts after a worker is killed by a signal.

    Returns:
        The chief's `RunFolder`. Raises `WorkerFailed` when a worker fails.
    """
    return run_launch(plan_launch(recipe, workers, out, force, export, port, max_restarts))


def plan_launch(
    recipe: PathLike,
    workers: int = 2,
    out: PathLike | None = None,
    force: bool = False,
    export: bool = True,
    port: int | None = None,
    max_restarts: int = 3,
) -> LaunchPlan:
    """The `LaunchPlan` for `launch`'s arguments: every input checked and the run folder
    chosen (a new one, or an unfinished one to resume); nothing started or written."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"Expected --workers to be a positive number of worker processes. Received: {workers!r}.")
    if not isinstance(recipe, (str, os.PathLike)):
        raise InputError(
            f"Expected a recipe file or a shipped recipe name (each worker loads it). Received: {type(recipe).__name__}."
        )
    loaded = load_recipe(os.fspath(recipe))
    if not STRATEGIES[loaded.strategy].multi_worker:
        raise InputError(
            f"Expected 'strategy: multi_worker' in the recipe to launch workers. Received: '{loaded.strategy}'. "
            "Add 'strategy: multi_worker' at its top level (each worker then joins the cluster through TF_CONFIG)."
        )
    if port is not None:
        _check_ports(port, workers)
    if out is not None:
        root = Path(out)
        if root.exists() and not force and not RunFolder(root).unfinished:
            raise OutputExistsError(root)
        resumed = root.exists() and not force
    else:
        unfinished = None if force else unfinished_run(loaded.name)
        root = unfinished.root if unfinished is not None else new_run_path(loaded.name)
        resumed = unfinished is not None
    if resumed:
        log.info("Resuming the unfinished run in %s (delete it or pass --force to start over)", root)
    return LaunchPlan(os.fspath(recipe), workers, root, not resumed, export, port, max_restarts)


def run_launch(plan: LaunchPlan) -> RunFolder:
    """Starts the plan's workers, restarting the group after a worker is killed by a signal."""
    if plan.fresh and plan.out.exists():
        shutil.rmtree(plan.out)
    for attempt in range(plan.max_restarts + 1):
        failure = _run_group(plan)
        if failure is None:
            return RunFolder(plan.out)
        worker, code = failure
        if code >= 0:
            raise WorkerFailed(_failure_message(worker, code, plan.workers), code)
        if attempt == plan.max_restarts:
            raise WorkerFailed(
                f"{_failure_message(worker, code, plan.workers)}\nGave up after {plan.max_restarts} restart(s); "
                "run the same command again to resume from the last completed epoch."
            )
        log.warning(
            "%s was killed (%s): restarting the %d workers from the last completed epoch (restart %d of %d).",
            worker.name.capitalize(),
            _signal_name(code),
            plan.workers,
            attempt + 1,
            plan.max_restarts,
        )
    raise AssertionError("unreachable")  # the loop returns or raises


@dataclass
class _Worker:
    """One running worker process and what it printed."""

    rank: int
    process: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    readers: list = field(default_factory=list)
    ended_at: float | None = None

    @property
    def name(self) -> str:
        return "worker 0 (the chief)" if self.rank == 0 else f"worker {self.rank}"


def _run_group(plan):
    """Runs one group of workers to its end: None when all succeeded, else (worker, exit code)
    of the one to blame (a worker killed by a signal first: the others failed because of it)."""
    ports = list(range(plan.port, plan.port + plan.workers)) if plan.port is not None else _free_ports(plan.workers)
    if plan.port is not None:
        _check_ports(plan.port, plan.workers)
    addresses = [f"{HOST}:{p}" for p in ports]
    scratch = Path(tempfile.mkdtemp(prefix="edgekeras-launch-"))
    # an unfinished run resumes; a folder left by a start killed before it wrote run.json is refilled
    leftover = plan.out.exists() and not RunFolder(plan.out).unfinished
    workers = []
    try:
        for rank in range(plan.workers):
            workers.append(_start(plan, rank, addresses, scratch, leftover))
        return _watch(workers)
    finally:
        _stop(workers)
        shutil.rmtree(scratch, ignore_errors=True)


def _start(plan, rank, addresses, scratch, leftover):
    """Starts worker `rank`: `edgekeras train` with its TF_CONFIG and its own TMPDIR."""
    args = [sys.executable, "-m", "edgekeras", "train", plan.recipe, "--out", str(plan.out)]
    args += ["--force"] if leftover else []
    args += [] if plan.export else ["--no-export"]
    tmp = scratch / f"worker{rank}"
    tmp.mkdir()
    env = {**os.environ, ENV: local_tf_config(addresses, rank), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // plan.workers)))
    process = subprocess.Popen(
        args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    worker = _Worker(rank, process)
    for stream, show in ((process.stderr, rank == 0), (process.stdout, False)):
        reader = threading.Thread(target=_read, args=(stream, worker, show), daemon=True)
        reader.start()
        worker.readers.append(reader)
    return worker


def _read(stream, worker, show):
    """Keeps the worker's last lines; the chief's are shown as they come."""
    for line in stream:
        line = line.rstrip("\n")
        worker.tail.append(line)
        if show and line.strip():
            log.info("%s", line)


def _watch(workers):
    """Waits for the group's end (see `_run_group`)."""
    chief_done = None
    while True:
        now = time.monotonic()
        for worker in workers:
            if worker.ended_at is None and worker.process.poll() is not None:
                worker.ended_at = now
                log.debug("%s ended with exit code %s", worker.name.capitalize(), worker.process.returncode)
        failed = [w for w in workers if w.ended_at is not None and w.process.returncode != 0]
        if failed and workers[0].process.returncode == 0:  # the run folder is complete; the rest only exited
            for worker in failed:
                log.warning(
                    "%s exited with code %s after the chief finished.",
                    worker.name.capitalize(),
                    worker.process.returncode,
                )
            return None
        if failed:
            time.sleep(GRACE_S)  # a killed worker's peers fail soon after it: let them, to blame the right one
            for worker in workers:
                if worker.ended_at is None and worker.process.poll() is not None:
                    worker.ended_at = time.monotonic()
            failed = [w for w in workers if w.ended_at is not None and w.process.returncode != 0]
            killed = [w for w in failed if w.process.returncode < 0]
            blamed = min(killed or failed, key=lambda w: w.ended_at)
            return blamed, blamed.process.returncode
        if all(w.ended_at is not None for w in workers):
            return None
        if workers[0].ended_at is not None:  # the chief wrote the run folder; the rest only exit
            chief_done = chief_done or now
            if now - chief_done > FINISH_S:
                log.warning("The chief finished but other workers did not exit within %.0f s: stopping them.", FINISH_S)
                return None
        time.sleep(0.1)


def _stop(workers):
    """SIGTERM to every worker still running, SIGKILL to those still there after STOP_S."""
    running = [w for w in workers if w.process.poll() is None]
    for worker in running:
        worker.process.terminate()
    deadline = time.monotonic() + STOP_S
    for worker in running:
        try:
            worker.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
    for worker in workers:
        for reader in worker.readers:
            reader.join(timeout=5)


def _failure_message(worker, code, count):
    how = f"was killed ({_signal_name(code)})" if code < 0 else f"exited with code {code}"
    lines = [line for line in worker.tail if line.strip()]
    tail = "\n".join(f"  {line}" for line in lines) if lines else "  (nothing)"
    return f"{worker.name.capitalize()} of {count} {how}; the other workers were stopped. Its last lines on stderr:\n{tail}"


def _signal_name(code):
    with contextlib.suppress(ValueError):
        return signal.Signals(-code).name
    return f"signal {-code}"


def _free_ports(count):
    """`count` distinct ports free on HOST now (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _check_ports(first, count):
    """InputError unless ports first..first+count-1 are valid and free on HOST."""
    if isinstance(first, bool) or not isinstance(first, int) or not 1024 <= first <= 65536 - count:
        raise InputError(
            f"Expected --port to be a port from 1024 to {65536 - count} (the chief's; the {count - 1} other "
            f"worker(s) take the next ones). Received: {first!r}."
        )
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # as gRPC binds: a port a previous group left in TIME_WAIT is free, one with a listener is not
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                raise InputError(
                    f"Expected port {port} on {HOST} to be free for worker {port - first}. Received: a port in use. "
                    "Choose another --port, or leave it out to pick free ports."
                ) from None
