"""LiteRT (ai-edge-litert; tflite-runtime as a fallback) for `.tflite` artifacts.

The implementation is the on-device runner's `LiteRT` backend: inputs and outputs by
signature name, quantized I/O (de)quantized, XNNPACK on or off, external delegates by path.
"""

from __future__ import annotations

from edgekeras.devices.edgekeras_runner import LiteRT
from edgekeras.runtimes.session import Session, open_backend

NAME = LiteRT.NAME
PACKAGE = "ai-edge-litert"


def version():
    """Version of the installed package (None when absent), without importing it."""
    found = LiteRT.installed()
    return found[1] if found else None


def open(path, threads=None, xnnpack=True, delegate=None):
    return LiteRTSession(open_backend(LiteRT, path, threads=threads, xnnpack=xnnpack, delegate=delegate))


class LiteRTSession(Session):
    runtime = NAME

    @property
    def interpreter(self):
        """The LiteRT `Interpreter` (tensor details for precision detection, constraints)."""
        return self.backend.interpreter
