"""LiteRT (ai-edge-litert; tflite-runtime as a fallback) for `.tflite` artifacts.

Inputs and outputs go through the model's signature, by name: TFLite's tensor order is not
Keras' order. Artifacts without a signature fall back to tensor names.
"""

from __future__ import annotations

import importlib

import numpy as np

from edgekeras.runtimes.session import Session, dequantize, quantize
from edgekeras.signature import TensorSpec

NAME = "litert"
FORMATS = ("tflite",)
PACKAGE = "ai-edge-litert"
_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def _interpreter_module():
    for name in _MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def version():
    from importlib import metadata

    for dist in ("ai-edge-litert", "tflite-runtime"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def open(path, threads=None, xnnpack=True, delegate=None):
    return LiteRTSession(path, threads=threads, xnnpack=xnnpack, delegate=delegate)


class LiteRTSession(Session):
    runtime = NAME

    def __init__(self, path, threads=None, xnnpack=True, delegate=None):
        from edgekeras.errors import InputError

        module = _interpreter_module()
        kwargs = {"model_path": str(path), "num_threads": threads}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if delegate:
            kwargs["experimental_delegates"] = [module.load_delegate(delegate)]
        from edgekeras.quiet import captured_output

        try:
            with captured_output():  # "Created TensorFlow Lite XNNPACK delegate" etc.
                self.interpreter = module.Interpreter(**kwargs)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InputError(f"Could not load '{path}' as a TFLite model: {str(e).strip().splitlines()[0]}") from None
        self.threads, self.xnnpack, self.delegate = threads, xnnpack, delegate
        signatures = self.interpreter.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            runner = self.interpreter.get_signature_runner(key)
            in_details = runner.get_input_details()
            out_details = runner.get_output_details()
            del runner  # it holds numpy views that would block resize/allocate later
        else:
            in_details = {d["name"]: d for d in self.interpreter.get_input_details()}
            out_details = {d["name"]: d for d in self.interpreter.get_output_details()}
        self._in = in_details
        self._out = out_details
        self.inputs = [_spec(n, d, float_io=True) for n, d in in_details.items()]
        self.outputs = [_spec(n, d, float_io=True) for n, d in out_details.items()]
        self._shapes = {}

    def _set(self, feeds):
        resized = False
        for name, arr in feeds.items():
            d = self._in[name]
            if self._shapes.get(name) != arr.shape:
                self.interpreter.resize_tensor_input(d["index"], arr.shape, strict=False)
                self._shapes[name] = arr.shape
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for name, arr in feeds.items():
            d = self._in[name]
            if d["dtype"] in (np.int8, np.uint8, np.int16) and np.issubdtype(arr.dtype, np.floating):
                scale, zero = d["quantization"]
                arr = quantize(arr, scale, zero, d["dtype"])
            self.interpreter.set_tensor(d["index"], arr.astype(d["dtype"], copy=False))

    def _get(self):
        out = {}
        for name, d in self._out.items():
            arr = self.interpreter.get_tensor(d["index"])
            if d["dtype"] in (np.int8, np.uint8, np.int16):
                scale, zero = d["quantization"]
                if scale:
                    arr = dequantize(arr, scale, zero)
            out[name] = arr
        return out

    def _run(self, feeds):
        self._set(feeds)
        self.interpreter.invoke()
        return self._get()

    def prepare(self, feeds):
        from edgekeras.signature import check_feeds

        self._set(check_feeds(self.inputs, feeds))

    def invoke(self):
        self.interpreter.invoke()

    def details(self):
        return {"threads": self.threads, "xnnpack": self.xnnpack, "delegate": self.delegate}


def _spec(name, d, float_io):
    shape = tuple(None if s < 0 else int(s) for s in d.get("shape_signature", d["shape"]))
    dtype = np.dtype(d["dtype"]).name
    if float_io and dtype in ("int8", "uint8", "int16") and d["quantization"][0]:
        dtype = "float32"  # quantized I/O: the session (de)quantizes, callers see floats
    return TensorSpec(name, shape, dtype)
