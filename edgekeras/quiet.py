"""Keeps TensorFlow's and the converters' chatter off the user's terminal.

The converters print to stdout and absl/oneDNN print to stderr from C++, so Python-level
redirection is not enough: `captured_output` swaps file descriptors 1 and 2 and hands the
text back, so it can be shown with --verbose or attached to an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

VERBOSE = os.environ.get("EDGEKERAS_VERBOSE", "") not in ("", "0")


def quiet_tensorflow():
    """Sets the environment TensorFlow reads at import to log errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "absl.logging" in sys.modules:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


class Captured:
    text = ""


_saved_stderr = []  # fds of the real stderr while a capture is active (innermost last)


def real_stderr_fd():
    """The terminal's stderr even inside `captured_output` (progress bars write here)."""
    return _saved_stderr[-1] if _saved_stderr else 2


@contextlib.contextmanager
def captured_output():
    """Captures everything written to fds 1 and 2 (Python and C++) inside the block.

    With `VERBOSE` nothing is captured, but fd 1 is pointed at stderr for the block: the
    converters' chatter is shown without mixing into a command's `--json` on stdout.
    """
    result = Captured()
    if VERBOSE:
        with _stdout_to_stderr():
            yield result
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        _saved_stderr.append(saved[1])
        try:
            yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _saved_stderr.pop()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            result.text = tmp.read().decode("utf-8", "replace")


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(real_stderr_fd(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
