"""Runtimes that load and run artifacts: one module each, listed once here.

A runtime module has `NAME`, `PACKAGE` (what to pip install), `version()`
(None when not installed) and `open(path, threads=None, **options) -> Session`. Each is a thin
adapter over a backend of the on-device runner (`edgekeras/devices/edgekeras_runner.py`),
which holds the one implementation; `runner.py` here runs that file as a process.
Which runtime runs which format is said once, by each format's record (`edgekeras.formats`).
Nothing in this package imports TensorFlow: a benchmark needs only numpy and one runtime.
"""

from __future__ import annotations

import importlib

from edgekeras import formats
from edgekeras.errors import InputError, expected_one_of

RUNTIMES = {
    "litert": "edgekeras.runtimes.litert",
    "onnxruntime": "edgekeras.runtimes.onnxruntime",
}


def get_runtime(name):
    if name not in RUNTIMES:
        raise expected_one_of("--runtime", name, RUNTIMES)
    module = importlib.import_module(RUNTIMES[name])
    if module.version() is None:
        available = [n for n in RUNTIMES if importlib.import_module(RUNTIMES[n]).version()]
        raise InputError(
            f"Runtime '{name}' is not installed. Install it with 'pip install {module.PACKAGE}'. "
            f"Available here: {', '.join(available) or 'none'}."
        )
    return module


def runtimes_for(format):
    """Names of the runtimes that can run artifacts of `format` (its record's; default first)."""
    return formats.runtimes_for(format)


def open_session(path, runtime=None, threads=None, **options):
    """Opens `path` in `runtime` (default: the first runtime for its format)."""
    format = formats.format_of_path(path)
    name = runtime or runtimes_for(format)[0]
    module = get_runtime(name)
    if name not in runtimes_for(format):
        raise InputError(
            f"Expected a runtime that runs {format} artifacts ({', '.join(runtimes_for(format))}). "
            f"Received: --runtime {name}."
        )
    check_options(name, options)
    return module.open(path, threads=threads, **options)


def runtime_options(name):
    """The keyword options runtime `name` takes (xnnpack/delegate, provider)."""
    import inspect

    module = importlib.import_module(RUNTIMES[name])
    return [p for p in inspect.signature(module.open).parameters if p not in ("path", "threads")]


def check_options(name, options):
    """Raises `InputError` for options runtime `name` does not take."""
    accepted = runtime_options(name)
    wrong = sorted(set(options) - set(accepted))
    if wrong:
        raise InputError(
            f"Expected options that runtime '{name}' takes ({', '.join(accepted) or 'none'}). "
            f"Received: {', '.join(wrong)}."
        )
