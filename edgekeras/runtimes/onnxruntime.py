"""ONNX Runtime for `.onnx` artifacts, with any execution provider it has.

The implementation is the on-device runner's `OnnxRuntime` backend.
"""

from __future__ import annotations

from edgekeras.devices.edgekeras_runner import OnnxRuntime
from edgekeras.runtimes.session import Session, open_backend

NAME = OnnxRuntime.NAME
PACKAGE = "onnxruntime"


def version():
    """Version of the installed package (None when absent), without importing it."""
    found = OnnxRuntime.installed()
    return found[1] if found else None


def open(path, threads=None, provider=None):
    return OrtSession(open_backend(OnnxRuntime, path, threads=threads, provider=provider))


class OrtSession(Session):
    runtime = NAME

    @property
    def session(self):
        """The `onnxruntime.InferenceSession`."""
        return self.backend.session
