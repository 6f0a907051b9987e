"""What the command line shows of the library's messages, and what --verbose/--quiet change.

edgekeras' modules log on loggers under `edgekeras` (`logging.getLogger(__name__)`); the
library installs no handler, so a Python caller decides what it sees (Python's last-resort
handler prints warnings). For one CLI run, `terminal()` puts a handler on the `edgekeras`
logger that prints each message on stderr (a warning as "Warning: ...") at the level the run
asks for:

    default    INFO and up: progress notes ("Converting ..."), notices, warnings
    --quiet    WARNING and up; progress bars off
    --verbose  DEBUG and up, and TensorFlow's, the converters' and the runtimes' own output
               (`quiet.VERBOSE`; TensorFlow's C++ log from INFO up), on stderr

Both flags are taken before or after the command name; the last one given wins.
Errors are not log records: the group prints them (`Error: ...`) whatever the level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from edgekeras import progress, quiet

LOGGER = "edgekeras"
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's C++ log: 0 everything, 3 fatal errors only

PREFIXES = {logging.WARNING: "Warning: ", logging.ERROR: "Error: ", logging.CRITICAL: "Error: "}
# verbosity -> (lowest level shown, converter chatter shown, progress bars on; None: as they were)
VERBOSITY = {
    "quiet": (logging.WARNING, False, False),
    "verbose": (logging.DEBUG, True, None),
}


class TerminalHandler(logging.Handler):
    """Writes each message to the current `sys.stderr`, looked up per message (click's test
    runner swaps it), or to the terminal's own stderr while `quiet.captured_output` holds fd 2."""

    def format(self, record):
        return PREFIXES.get(record.levelno, "") + record.getMessage()

    def emit(self, record):
        try:
            text = self.format(record) + "\n"
            stream = sys.stderr
            if quiet.real_stderr_fd() != 2 and _writes_to_fd2(stream):
                os.write(quiet.real_stderr_fd(), text.encode("utf-8", "replace"))
            else:
                stream.write(text)
                stream.flush()
        except Exception:
            self.handleError(record)


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def terminal():
    """For one CLI run: messages at INFO and up on stderr; everything restored afterwards
    (in a long-lived process, e.g. the test suite, one run's flags do not leak into the next)."""
    logger = logging.getLogger(LOGGER)
    saved = logger.level, logger.propagate, quiet.VERBOSE, progress.ENABLED
    saved_env = os.environ.get(TF_LOG_LEVEL)
    handler = TerminalHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler some library configured would print each message twice
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate, quiet.VERBOSE, progress.ENABLED = saved
        if saved_env is None:
            os.environ.pop(TF_LOG_LEVEL, None)
        else:
            os.environ[TF_LOG_LEVEL] = saved_env


def set_verbosity(name):
    """Applies "quiet" or "verbose" (see `VERBOSITY`) to the current run."""
    level, chatter, bars = VERBOSITY[name]
    logging.getLogger(LOGGER).setLevel(level)
    quiet.VERBOSE = chatter
    if bars is not None:
        progress.ENABLED = bars
    # read when TensorFlow is imported (after the options are parsed) and by child processes
    os.environ[TF_LOG_LEVEL] = "0" if chatter else "3"
