"""`doctor`: which accelerators this machine actually has, for training and for each runtime.

Listing what a package was built with is not enough: onnxruntime-gpu lists the CUDA provider
even where the CUDA libraries are missing (and falls back to the CPU with a log line), and
LiteRT ships a GPU accelerator library that may find no adapter. So each runtime is probed
with a tiny model on each accelerator it offers, and reported usable only if that worked.

One check per component (`CHECKS`), each returning a JSON-ready dict; `problems` lists what
stands in the way (e.g. onnxruntime and onnxruntime-gpu installed side by side).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from typing import Any

from edgekeras.quiet import captured_output, quiet_tensorflow

NVIDIA_QUERY = ["--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits"]
# packages that provide the same import and must never be installed together
EXCLUSIVE = [("onnxruntime", "onnxruntime-gpu"), ("tensorflow", "tensorflow-cpu")]


def doctor() -> dict[str, Any]:
    """What this machine has: {nvidia, tensorflow, onnxruntime, litert, problems}."""
    quiet_tensorflow()
    report: dict[str, Any] = {name: _run(check) for name, check in CHECKS.items()}
    problems = [
        f"{a} and {b} are both installed: they provide the same module and overwrite each other's files. "
        f"Uninstall both, then install one (make venv for the CPU, make gpu for the GPU)."
        for a, b in EXCLUSIVE
        if _version(a) and _version(b)
    ]
    gpus = report["nvidia"]["gpus"]
    if gpus and report["tensorflow"].get("installed", True) and not report["tensorflow"].get("gpus"):
        problems.append(
            "nvidia-smi sees a GPU but TensorFlow does not: install the CUDA build (make gpu), "
            f"built for CUDA {report['tensorflow'].get('cuda_version') or '12'}."
        )
    if gpus and "CUDAExecutionProvider" not in report["onnxruntime"].get("usable", []):
        problems.append("nvidia-smi sees a GPU but ONNX Runtime cannot use it: install onnxruntime-gpu (make gpu).")
    report["problems"] = problems
    return report


def _run(check):
    """A check's report; a runtime that is not installed is reported so, not raised."""
    try:
        return check()
    except ImportError as e:
        return {"installed": False, "note": f"not installed ({e.name or e})", "gpus": [], "usable": []}


def _nvidia():
    """The GPUs nvidia-smi lists (none without it)."""
    path = shutil.which("nvidia-smi")
    if path is None:
        return {"gpus": [], "note": "nvidia-smi not found (no NVIDIA driver)"}
    try:
        out = subprocess.run([path, *NVIDIA_QUERY], capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError) as e:
        return {"gpus": [], "note": f"nvidia-smi failed: {e}"}
    return {"gpus": parse_nvidia_smi(out)}


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """The GPUs in nvidia-smi's `NVIDIA_QUERY` output, e.g. "0, NVIDIA H200, 143771, 580.159.04"."""
    gpus = []
    for line in text.strip().splitlines():
        index, name, memory, driver = (part.strip() for part in line.split(",", 3))
        gpus.append({"index": int(index), "name": name, "memory_mib": int(float(memory)), "driver": driver})
    return gpus


def _tensorflow():
    """TensorFlow's build (CPU or CUDA, which CUDA) and the GPUs it sees."""
    with captured_output():
        import tensorflow as tf

        info = tf.sysconfig.get_build_info()
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    package = next((p for p in ("tensorflow", "tensorflow-cpu") if _version(p)), None)
    return {
        "version": tf.__version__,
        "package": package,
        "cuda_build": bool(info.get("is_cuda_build")),
        "cuda_version": info.get("cuda_version"),
        "cudnn_version": info.get("cudnn_version"),
        "gpus": gpus,
    }


def _onnxruntime():
    """The execution providers compiled in, and those a session actually runs on."""
    import onnxruntime as ort

    compiled = list(ort.get_available_providers())
    model = _tiny_onnx()
    usable, failures = [], {}
    for provider in compiled:
        with captured_output() as log:
            try:
                session = ort.InferenceSession(model, providers=[provider])
                ran = provider in session.get_providers()
            except Exception as e:  # a provider whose libraries are missing
                ran, failures[provider] = False, _reason(str(e))
        if ran:
            usable.append(provider)
        elif provider not in failures:
            failures[provider] = _reason(log.text) or "fell back to another provider"
    package = next((p for p in ("onnxruntime-gpu", "onnxruntime") if _version(p)), None)
    return {"version": ort.__version__, "package": package, "compiled": compiled, "usable": usable, "failed": failures}


def _litert():
    """LiteRT's accelerators (CompiledModel API) that compile a tiny model fully."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    model = _tiny_tflite()
    usable, failures = [], {}
    for name in ("CPU", "GPU", "NPU"):
        accelerator = getattr(HardwareAccelerator, name, None)
        if accelerator is None:
            continue
        with captured_output() as log:
            try:
                ran = CompiledModel.from_buffer(model, hardware_accel=accelerator).is_fully_accelerated()
            except Exception as e:  # no adapter, no plugin for this machine
                ran, failures[name] = False, _reason(str(e), log.text)
        if ran:
            usable.append(name)
    return {"version": _version("ai-edge-litert"), "usable": usable, "failed": failures}


def _tiny_onnx():
    """y = x + 1 on a [1, 4] float input, as ONNX bytes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _tiny_tflite():
    """y = 2x + 1 on a [1, 4] float input, as TFLite bytes."""
    with captured_output():
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def probe(x):
            return x * 2.0 + 1.0

        return tf.lite.TFLiteConverter.from_concrete_functions([probe.get_concrete_function()], probe).convert()


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# what a runtime's log says when an accelerator is missing, most telling first
REASONS = ("No adapters found", "cannot open shared object", "not accelerated", "Failed to", "rror")


def _reason(*texts):
    """The line of a runtime's exception or log that says why an accelerator is not usable."""
    lines = [line.strip(" └\t") for text in texts for line in str(text).splitlines() if line.strip()]
    for marker in REASONS:
        found = next((line for line in lines if marker in line), None)
        if found:
            return found[:200]
    return lines[-1][:200] if lines else ""


CHECKS = {"nvidia": _nvidia, "tensorflow": _tensorflow, "onnxruntime": _onnxruntime, "litert": _litert}
