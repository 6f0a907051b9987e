"""A distributed search on this machine: a Keras Tuner chief and N workers on 127.0.0.1.

Each is an `edgekeras tune RECIPE --out FOLDER` process with Keras Tuner's environment:
KERASTUNER_TUNER_ID ("chief", "worker1", ...), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT.
The chief holds the oracle and, once every worker is done, writes the results; the workers
train the trials, each in its own run folder under FOLDER/trials. Their messages are relayed
here prefixed with their name. When one exits with an error, the others are stopped.
On a cluster, run the same command on every machine with those variables set instead (the
chief's IP; a folder every machine can reach, for the results and best/).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from edgekeras.errors import CheckFailed, InputError

if TYPE_CHECKING:
    from edgekeras.hints import PathLike
    from edgekeras.tuning.folder import TuningFolder

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
CLI = "from edgekeras.cli import main; main()"  # the command line of this Python's edgekeras


def free_port(port: int | None = None) -> int:
    """`port` if it is free on 127.0.0.1 (else an `InputError`), or a free one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port or 0))
        except OSError:
            raise InputError(
                f"Expected a free port for the tuning chief. Received: --port {port}, which is in use on {HOST}. "
                "Choose another, or leave --port out for a free one."
            ) from None
        return s.getsockname()[1]


def launch(folder: TuningFolder, workers: int, port: int | None = None, recipe: PathLike | None = None) -> None:
    """Runs the search of `recipe` (default: the folder's copy) with a chief and `workers` workers; returns
    when all have finished. One failing stops all: `CheckFailed` (exit 1), or `InputError`
    when it failed on bad input (exit 2)."""
    if not isinstance(workers, int) or workers < 1:
        raise InputError(
            f"Expected --workers to be at least 1 (worker processes besides the chief). Received: {workers}."
        )
    port = free_port(port)
    log.info(f"Tuning with a chief and {workers} worker(s) on {HOST}:{port} in {folder.root}")
    names = ["chief"] + [f"worker{i}" for i in range(1, workers + 1)]
    procs, tails = {}, {}
    try:
        for name in names:
            procs[name], tails[name] = _start(name, folder, port, recipe or folder.recipe)
        _wait(procs, tails)
    finally:
        _stop(procs)


def _start(name, folder, port, recipe):
    env = {
        **os.environ,
        "KERASTUNER_TUNER_ID": name,
        "KERASTUNER_ORACLE_IP": HOST,
        "KERASTUNER_ORACLE_PORT": str(port),
    }
    command = [sys.executable, "-c", CLI, "tune", str(recipe), "--out", str(folder.root)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail: deque[str] = deque(maxlen=20)
    threading.Thread(target=_relay, args=(name, proc.stderr, tail), daemon=True).start()
    return proc, tail


def _relay(name, stream, tail):
    """Each line a process writes on stderr, logged with its name (and kept for errors)."""
    for line in stream:
        line = line.rstrip()
        if line:
            tail.append(line)
            log.info(f"[{name}] {line}")


def _wait(procs, tails):
    while True:
        for name, proc in procs.items():
            code = proc.poll()
            if code not in (None, 0):
                time.sleep(0.2)  # its last lines
                last = " | ".join(list(tails[name])[-3:]) or "no message"
                error = InputError if code == 2 else CheckFailed
                raise error(f"The tuning {name} exited with status {code} ({last}). Stopped the chief and the workers.")
        if all(proc.poll() == 0 for proc in procs.values()):
            return
        time.sleep(0.2)


def _stop(procs):
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
