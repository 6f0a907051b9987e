"""One call run in a fresh Python process, which returns all its memory to the system when it ends.

`run_in_child(fn, *args)` starts `python -m edgekeras.child_process`, sends it `fn` and its
arguments (pickled: `fn` must be a module-level function), and returns what `fn` returns or
raises what it raised. The child is a new interpreter, not a fork: TensorFlow's threads do
not survive a fork, and multiprocessing's spawn would re-run the caller's `__main__` script.

What the caller sees stays as if the call ran in its own process: the child's `edgekeras`
log records are handled by the parent's loggers as they happen (the CLI prints them the same
way), its progress bars write to the same stderr, and `--quiet`/`--verbose` carry over. A
child the kernel kills (the OOM killer) or that ends without an answer raises `ConversionError`.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from edgekeras import progress, quiet
from edgekeras.errors import ConversionError

LOGGER = "edgekeras"
_ROOT = str(Path(__file__).resolve().parents[1])  # the folder this edgekeras is imported from


def run_in_child(fn: Callable[..., Any], *args: Any, what: str = "conversion") -> Any:
    """`fn(*args)` in a fresh Python process; its result, or its exception raised here."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        child = subprocess.Popen(
            [sys.executable, "-m", "edgekeras.child_process", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_ROOT, os.environ.get("PYTHONPATH"))))},
        )
        theirs.close()
        connection = Connection(os.dup(ours.fileno()))
        try:
            connection.send(_settings())
            connection.send_bytes(pickle.dumps((fn, args)))
            answer = _serve(connection)
        except BaseException:  # Ctrl-C or a failed send: the child goes with us
            child.kill()
            child.wait()
            raise
        finally:
            connection.close()
        code = child.wait()
    if answer is None:
        raise ConversionError(_died(what, code))
    ok, value = answer
    if ok:
        return value
    raise value


def _settings() -> dict[str, Any]:
    """What the child copies from this process before unpickling the call."""
    return {
        "sys_path": list(sys.path),
        "level": logging.getLogger(LOGGER).getEffectiveLevel(),
        "progress": progress.ENABLED,
        "verbose": quiet.VERBOSE,
    }


def _serve(connection: Connection) -> tuple[bool, Any] | None:
    """Handles the child's log records until its answer comes; None when it ended without one."""
    while True:
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            return None
        if kind == "log":
            logger = logging.getLogger(payload.name)
            if logger.isEnabledFor(payload.levelno):
                logger.handle(payload)
        else:
            return payload


def _died(what: str, code: int) -> str:
    if code < 0 and -code == signal.SIGKILL:
        cause = "was killed (SIGKILL: most likely the kernel's OOM killer, for lack of memory)"
    elif code < 0:
        cause = f"ended with signal {signal.Signals(-code).name}"
    else:
        cause = f"exited with code {code} without an answer"
    return (
        f"The {what} process {cause}. Nothing of it was kept. Try converting fewer artifacts at once, "
        "closing other programs, or a machine with more memory; run with --verbose to see its log."
    )


class _Forward(logging.Handler):
    """Sends each record to the parent, its message formatted here (arguments may not pickle)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text, record.exc_info = logging.Formatter().formatException(record.exc_info), None
        self.connection.send(("log", record))


def _child(fd: int) -> None:
    connection = Connection(fd)
    settings = connection.recv()
    sys.path[:] = settings["sys_path"]
    progress.ENABLED, quiet.VERBOSE = settings["progress"], settings["verbose"]
    logger = logging.getLogger(LOGGER)
    logger.setLevel(settings["level"])
    logger.propagate = False
    logger.addHandler(_Forward(connection))
    try:
        fn, args = pickle.loads(connection.recv_bytes())
        answer: tuple[bool, Any] = (True, fn(*args))
    except BaseException as e:  # every failure goes back to the parent, which raises it
        answer = (False, e)
    try:
        pickle.loads(pickle.dumps(answer))  # what the parent will unpickle
    except Exception:  # an exception (or result) that does not survive pickling: its message does
        answer = (False, ConversionError(f"{type(answer[1]).__name__}: {answer[1]}"))
    connection.send(("answer", answer))
    connection.close()


if __name__ == "__main__":
    _child(int(sys.argv[1]))
