"""Progress bars on stderr for long work (training, calibration, benchmark runs).

They write to the terminal's real stderr even while converter output is being captured
(see `quiet.captured_output`), redraw in place on a TTY, and print one summary line
otherwise so logs stay short. `EDGEKERAS_PROGRESS=0` (or the CLI's `--quiet`) turns them off.

Messages are not progress bars: modules log them on their own logger
(`logging.getLogger(__name__)`, under `edgekeras`), so a Python caller can capture or
silence them and the CLI renders them (`edgekeras.cli.messages`). `note`/`notice` are
shorthands that log on the caller's module logger.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from edgekeras import quiet

ENABLED = os.environ.get("EDGEKERAS_PROGRESS", "1") != "0"


def _write(text):
    fd = quiet.real_stderr_fd()
    os.write(fd, text.encode("utf-8", "replace"))


class Progress:
    """A counter with a bar: `with Progress("Calibrating", total=200) as p: p.update()`."""

    def __init__(self, label, total=None, unit=""):
        self.label, self.total, self.unit = label, total, unit
        self.count = 0
        self.status = ""
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = ENABLED and os.isatty(quiet.real_stderr_fd())

    def __enter__(self):
        return self

    def update(self, n=1, status=""):
        self.count += n
        if status:
            self.status = status
        now = time.perf_counter()
        if self._tty and (now - self._last > 0.1 or self.count == self.total):
            self._last = now
            _write("\r" + self._line() + "\x1b[K")

    def _line(self):
        elapsed = time.perf_counter() - self.start
        if self.total:
            frac = min(self.count / self.total, 1.0)
            bar = "#" * int(frac * 24)
            head = f"{self.label} [{bar:<24}] {self.count}/{self.total}{self.unit}"
        else:
            head = f"{self.label} {self.count}{self.unit}"
        return f"{head} {elapsed:5.1f}s {self.status}".rstrip()

    def close(self):
        if not ENABLED:
            return
        _write(("\r" if self._tty else "") + self._line() + ("\x1b[K" if self._tty else "") + "\n")

    def __exit__(self, *exc):
        self.close()


def track(iterable, label, total=None, unit=""):
    """Yields from `iterable` while showing a bar."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(label, total, unit) as bar:
        for item in iterable:
            yield item
            bar.update()


def note(text):
    """A progress message ("Converting ..."): INFO on the calling module's logger."""
    _caller_logger().info(text, stacklevel=2)


def notice(text):
    """Something the user should know that is not a problem (a resumed run, a skipped
    diagram): INFO on the calling module's logger. A problem is `log.warning`."""
    _caller_logger().info(text, stacklevel=2)


def _caller_logger():
    return logging.getLogger(sys._getframe(2).f_globals.get("__name__", "edgekeras"))
