"""The interface every runtime session offers, over the on-device runner's backends.

The runner (`edgekeras/devices/edgekeras_runner.py`) holds the only implementation of loading
a model, feeding it by name and (de)quantizing its I/O; a `Session` adapts one of its backends
to edgekeras: `TensorSpec`s, `check_feeds` and `InputError` instead of the runner's `RunnerError`.
"""

from __future__ import annotations

import contextlib

from edgekeras.devices import edgekeras_runner as runner
from edgekeras.errors import InputError
from edgekeras.quiet import captured_output
from edgekeras.signature import TensorSpec, check_feeds


@contextlib.contextmanager
def runner_errors():
    """Re-raises the runner's `RunnerError` as `InputError` (exit code 2)."""
    try:
        yield
    except runner.RunnerError as e:
        raise InputError(str(e)) from None


class Session:
    """A loaded artifact: `inputs`/`outputs` as `TensorSpec`s, `run(feeds)` -> {name: array}.

    `run` is for validation (any batch size). Benchmarks do not time through here: they run
    the runner itself (see `edgekeras.bench`).
    """

    runtime = ""

    def __init__(self, backend):
        self.backend = backend
        self.inputs = [TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in backend.inputs]
        self.outputs = [TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in backend.outputs]

    def run(self, feeds):
        feeds = check_feeds(self.inputs, feeds)
        with runner_errors():
            try:
                self.backend.set_inputs(feeds)
                self.backend.invoke()
            except (RuntimeError, ValueError) as e:
                raise runner.RunnerError(
                    f"{self.runtime} could not run '{self.backend.path}': {runner._first_line(e)}"
                ) from None
            return self.backend.get_outputs()

    def details(self):
        """Runtime facts for reports: providers, delegates and what they took, threads."""
        with runner_errors():
            return self.backend.details()


def open_backend(cls, path, threads=None, **options):
    """`cls(path, ...)` with the runner's errors as `InputError` and the runtime's own chatter
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") hidden unless --verbose."""
    with runner_errors(), captured_output():
        return cls(path, threads=threads, **options)
