"""ONNX Runtime for `.onnx` artifacts, with any execution provider it has."""

from __future__ import annotations

import numpy as np

from edgekeras.runtimes.session import Session
from edgekeras.signature import TensorSpec

NAME = "onnxruntime"
FORMATS = ("onnx",)
PACKAGE = "onnxruntime"

_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int32)": "int32",
           "tensor(int64)": "int64", "tensor(float16)": "float16", "tensor(int8)": "int8",
           "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(string)": "str"}


def version():
    try:
        from importlib import metadata

        for dist in ("onnxruntime", "onnxruntime-gpu"):
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    except Exception:
        pass
    return None


def open(path, threads=None, provider=None):
    return OrtSession(path, threads=threads, provider=provider)


class OrtSession(Session):
    runtime = NAME

    def __init__(self, path, threads=None, provider=None):
        import onnxruntime as ort

        from edgekeras.errors import InputError

        available = ort.get_available_providers()
        providers = [provider] if provider else ["CPUExecutionProvider"]
        for p in providers:
            if p not in available:
                raise InputError(
                    f"Expected an ONNX Runtime provider available here: {', '.join(available)}. "
                    f"Received: '{p}'."
                )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
            raise InputError(f"Could not load '{path}' as an ONNX model: {str(e).strip().splitlines()[0]}") from None
        self.threads = threads
        self.inputs = [_spec(i) for i in self.session.get_inputs()]
        self.outputs = [_spec(o) for o in self.session.get_outputs()]
        self._names = [o.name for o in self.session.get_outputs()]
        self._feeds = None

    def _run(self, feeds):
        return dict(zip(self._names, self.session.run(self._names, feeds)))

    def prepare(self, feeds):
        from edgekeras.signature import check_feeds

        self._feeds = check_feeds(self.inputs, feeds)

    def invoke(self):
        self.session.run(self._names, self._feeds)

    def details(self):
        return {"threads": self.threads, "providers": self.session.get_providers()}


def _spec(node):
    shape = tuple(s if isinstance(s, int) else None for s in node.shape)
    return TensorSpec(node.name, shape, _DTYPES.get(node.type, "float32"))
