"""What a conversion will need — memory and disk — and whether this machine has it, before work starts.

The estimate is `base + factor x weight bytes` per (format, precision), fitted to the peaks
`benchmarks/convert_memory.py` measured (`MEASURED`, which it prints this estimate beside):
TensorFlow, the Keras model, the converter's copies of the weights, and the calibration and
validation batches (kept small by `batch_for`). Measured peaks, GiB (weights: float32 bytes):

    model (weights)     onnx fp32  onnx int8  tflite fp32  tflite int8
    ResNet50 (95 MB)    1.33       1.31       1.51         1.97
    VGG16 (537 MB)      2.60       2.50       2.93         3.00
    Dense2G (2.1 GB)    6.67       6.81       (over the flatbuffer limit)

ONNX int8 is pre-processed and calibrated from files (`export/onnx_calibration.py`): before
that, ONNX Runtime's tools held the model three times over and Dense2G peaked at 9.15.

TFLite int8 of VGG16 is quantized by ai-edge-quantizer (`AEQ_INT8_FROM`); through TensorFlow's
quantizer (quantize recipe `quantizer: converter`) it peaks at 4.99.

Artifacts are converted one after another (in child processes for a model file: `conversion`),
so a `convert` needs what its largest artifact needs.

Memory available is the smaller of the cgroup's room (v2 `memory.max - memory.current`, v1
`memory.limit_in_bytes - memory.usage_in_bytes`) and the kernel's `MemAvailable`;
`EDGEKERAS_MEMORY_AVAILABLE` (bytes, for the whole conversion, this process included) replaces
both, for tests and for users who know better.
A conversion that does not fit stops with `NotEnoughMemory` (exit 1) instead of meeting the
kernel's OOM killer; a destination without room for the artifacts stops with `NotEnoughDisk`
before anything is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgekeras.errors import NotEnoughDisk, NotEnoughMemory
from edgekeras.units import format_size

AVAILABLE_ENV = "EDGEKERAS_MEMORY_AVAILABLE"
GB = 10**9

# (format, precision) -> (base bytes, bytes per weight byte): the line through the ResNet50 and
# VGG16 peaks of `MEASURED` for that kind (its format's int8 where a kind has no VGG16 point), a
# few percent above both. It errs high (too low is an OOM kill) but not by much on mid-size
# models: ResNet50 is overestimated by about 4%. Precisions not listed use the format's "*" row.
FACTORS = {
    ("onnx", "fp32"): (1.2 * GB, 3.3),
    ("onnx", "int8"): (1.2 * GB, 3.3),  # under fp32's line at every measured size (calibrated from files)
    ("onnx", "*"): (1.2 * GB, 4.3),
    ("tflite", "fp32"): (1.36 * GB, 3.4),
    ("tflite", "int8"): (1.48 * GB, 7.6),
    # fp16, dynamic, int16x8: one converter call, quantizer and all (int8's before it was split in two)
    ("tflite", "*"): (1.1 * GB, 10.8),
}
# TFLite int8 from this many weight bytes is quantized by ai-edge-quantizer (quantize recipe
# `quantizer: auto`, `export/tflite.py`): TensorFlow's MLIR quantizer holds about 8x the weights
# (VGG16: 4.4 GiB for `mlir_quantize` alone), ai-edge-quantizer reading the float file 1.6 GiB.
AEQ_INT8_FROM = 256 * 2**20
# Its line: the fp32 conversion's base (it converts the float model first) through VGG16's peak.
ROUTE_FACTORS = {("tflite", "int8", "ai-edge-quantizer"): (1.36 * GB, 3.7)}
GIB = 2**30
# Peak resident memory of one artifact's `convert` (validation and 64 calibration samples
# included), measured with `python benchmarks/convert_memory.py --models ResNet50 VGG16`
# (keras.applications, weights=None, 224 x 224, 10 classes; 2 cores, December 2026):
# (model, float32 weight bytes, format, precision, peak bytes). ONNX: weights kept out of
# tf2onnx's TensorFlow passes (`export/tf2onnx_lean.py`); TFLite: `export/tflite_lean.py` and
# int8 in two steps (`tflite_convert.convert`), from 256 MB of weights through ai-edge-quantizer.
MEASURED = (
    ("ResNet50", 94.6e6, "onnx", "fp32", 1.33 * GIB),
    ("ResNet50", 94.6e6, "onnx", "int8", 1.31 * GIB),
    ("ResNet50", 94.6e6, "tflite", "fp32", 1.51 * GIB),
    ("ResNet50", 94.6e6, "tflite", "int8", 1.97 * GIB),
    ("VGG16", 537e6, "onnx", "fp32", 2.60 * GIB),
    ("VGG16", 537e6, "onnx", "int8", 2.50 * GIB),
    ("VGG16", 537e6, "tflite", "fp32", 2.93 * GIB),
    ("VGG16", 537e6, "tflite", "int8", 3.00 * GIB),  # ai-edge-quantizer (4.99 through the converter)
    ("Dense2G", 2148e6, "onnx", "fp32", 6.67 * GIB),
    ("Dense2G", 2148e6, "onnx", "int8", 6.81 * GIB),
)
# Bytes a stored weight takes per precision (dynamic-range and int8 store int8 weights).
STORED_BYTES = {"fp32": 4, "fp16": 2, "dynamic": 1, "int8": 1, "int16x8": 1}
TFLITE_LIMIT = 2**31  # a flatbuffer addresses 2 GiB; the converter writes nothing larger
# Largest activation of one sample times the batch: what a validation or calibration batch
# may hold at once (the model keeps a few such tensors alive).
BATCH_ACTIVATION_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Estimate:
    """Memory one artifact's conversion needs, and how it was reckoned."""

    format: str
    precision: str
    weight_bytes: int
    base: int
    factor: float

    @property
    def bytes(self) -> int:
        return int(self.base + self.factor * self.weight_bytes)

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision}"

    def explain(self) -> str:
        return (
            f"{self.label}: {format_size(self.bytes)} ({format_size(self.base)} + {self.factor:g} x "
            f"{format_size(self.weight_bytes)} of weights)"
        )


def weight_bytes(model) -> int:
    """Bytes of every weight of a Keras model (trainable or not) as it holds them."""
    import numpy as np

    return int(sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights))


def tflite_int8_quantizer(weights: int, asked: str = "auto") -> str:
    """What quantizes a TFLite int8 artifact of a model with `weights` bytes of weights: what the
    quantize recipe asked, or for "auto" ai-edge-quantizer from `AEQ_INT8_FROM` bytes (where
    TensorFlow's quantizer would need twice the memory), else TensorFlow's converter."""
    if asked != "auto":
        return asked
    return "ai-edge-quantizer" if weights >= AEQ_INT8_FROM else "converter"


def estimate(format: str, precision: str, weights: int, quantizer: str = "auto") -> Estimate:
    """The memory converting a model with `weights` bytes of weights to (format, precision) needs
    (`quantizer`: the quantize recipe's, for TFLite int8)."""
    route = (format, precision, tflite_int8_quantizer(weights, quantizer))
    base, factor = (
        ROUTE_FACTORS.get(route)
        or FACTORS.get((format, precision))
        or FACTORS.get((format, "*"))
        or FACTORS[("onnx", "*")]
    )
    return Estimate(format, precision, weights, int(base), factor)


def artifact_bytes(format: str, precision: str, weights: int) -> int:
    """About how big the artifact will be: its weights at the precision's storage size."""
    return int(weights / 4 * STORED_BYTES.get(precision, 4))


def available() -> tuple[int | None, str]:
    """(bytes this process may still allocate, where that figure comes from); None when unknown."""
    given = os.environ.get(AVAILABLE_ENV, "").strip()
    if given.isdigit():
        return int(given), AVAILABLE_ENV
    found = [(room, source) for room, source in (_cgroup_room(), _mem_available()) if room is not None]
    return min(found) if found else (None, "unknown")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_room() -> tuple[int | None, str]:
    """Room under this process's cgroup memory limit (v2, then v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read(limit_file), _read(usage_file)
        if limit is None or not limit.isdigit() or int(limit) >= 2**60:  # "max", or v1's "no limit"
            continue
        used = int(usage) if usage and usage.isdigit() else 0
        return max(0, int(limit) - used), f"cgroup limit {format_size(int(limit))} ({limit_file})"
    return None, ""


def _mem_available() -> tuple[int | None, str]:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024, "MemAvailable (/proc/meminfo)"
    return None, ""


def _resident() -> int:
    """Resident bytes of this process (0 where /proc is missing)."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def check_memory(estimates: Iterable[Estimate], model_name: str) -> None:
    """Raises `NotEnoughMemory` when the largest estimate does not fit in what is available."""
    estimates = list(estimates)
    room, source = available()
    if room is None or not estimates:
        return
    if source != AVAILABLE_ENV:  # the estimate counts this process whole: TensorFlow and the model are in it
        room += _resident()
    largest = max(estimates, key=lambda e: e.bytes)
    if largest.bytes <= room:
        return
    fitting = [e.label for e in estimates if e.bytes <= room]
    too_big = [e for e in estimates if e.bytes > room]
    lighter = [e for e in (estimate("tflite", p, largest.weight_bytes) for p in ("fp32", "int8")) if e.bytes <= room]
    tries = []
    if fitting:
        tries.append(f"convert only what fits ({', '.join(fitting)})")
    elif lighter and largest.format != "tflite":
        tries.append(f"--format tflite first (needs about {format_size(lighter[0].bytes)})")
    tries += ["close other programs", f"a machine with more than {format_size(largest.bytes)} of memory"]
    raise NotEnoughMemory(
        f"Expected enough memory to convert '{model_name}': {'; '.join(e.explain() for e in too_big)}. "
        f"Received: {format_size(room)} available ({source}). Nothing was converted. Try: {'; '.join(tries)}. "
        f"(Artifacts convert one after another, so the largest one decides; {AVAILABLE_ENV}=BYTES overrides "
        "the measured figure.)"
    )


def check_tflite_size(format: str, precision: str, weights: int) -> None:
    """Refuses a TFLite artifact a flatbuffer cannot hold (2 GiB), before conversion starts."""
    size = artifact_bytes(format, precision, weights)
    if format != "tflite" or size < TFLITE_LIMIT:
        return
    smaller = [p for p in ("fp16", "int8") if artifact_bytes(format, p, weights) < TFLITE_LIMIT]
    raise NotEnoughMemory(
        f"Expected a TFLite {precision} artifact under the flatbuffer limit of {format_size(TFLITE_LIMIT)}. "
        f"Received: a model with {format_size(weights)} of weights, about {format_size(size)} as tflite "
        f"{precision}; the TFLite converter cannot write it. Use --format onnx (written with external data) "
        + (f"or --precision {' or '.join(smaller)}." if smaller else "instead.")
    )


def check_disk(paths_and_sizes: Iterable[tuple[Path, int]], scratch: int) -> None:
    """Raises `NotEnoughDisk` when a destination (or the temporary folder, which holds `scratch`
    bytes of intermediate files) lacks room for what will be written there."""
    needs: dict[Path, int] = {}
    for path, size in paths_and_sizes:
        root = _existing(Path(path).parent)
        needs[root] = needs.get(root, 0) + size
    temp = _existing(Path(tempfile.gettempdir()))
    needs[temp] = needs.get(temp, 0) + scratch
    by_device: dict[int, tuple[Path, int]] = {}
    for root, size in needs.items():
        device = root.stat().st_dev
        seen = by_device.get(device, (root, 0))
        by_device[device] = (seen[0], seen[1] + size)
    for root, size in by_device.values():
        free = shutil.disk_usage(root).free
        if size > free:
            raise NotEnoughDisk(
                f"Expected {format_size(size)} of free disk space under '{root}' for the artifacts and "
                f"intermediate files of this conversion. Received: {format_size(free)} free. Nothing was written. "
                "Free some space, pass --out on another filesystem, or set TMPDIR to one with room."
            )


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def batch_for(model, default: int, artifact_tensor: int | None = None) -> int:
    """A batch size for running `model` (validation, calibration) whose largest activation stays
    under `BATCH_ACTIVATION_BYTES`: 64 for a digits CNN, 5 for VGG16 at 224 x 224.
    `artifact_tensor`: an artifact's own largest tensor per sample where its converter recorded
    one (`largest_tensor_bytes`), which may exceed any of the Keras model's."""
    largest = max(largest_activation_bytes(model) or 0, artifact_tensor or 0)
    if not largest:
        return default
    return max(1, min(default, BATCH_ACTIVATION_BYTES // largest))


def largest_activation_bytes(model) -> int | None:
    """Bytes of the largest layer output of one sample (float32), or None when the model's
    layers have no static output shapes (subclassed models)."""
    import numpy as np

    largest = 0
    for layer in model._flatten_layers(include_self=False):
        try:
            outputs = layer.output
        except (AttributeError, ValueError):  # a layer never called symbolically, or called more than once
            continue
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            shape = getattr(output, "shape", None)
            if shape is None or any(d is None for d in shape[1:]):
                continue
            largest = max(largest, int(np.prod(shape[1:])) * 4)
    return largest or None


def release_memory() -> None:
    """Frees what the last artifact left: Python's cycles (tf2onnx's graphs are full of them),
    then glibc's free lists, which otherwise keep the peak's pages in the process."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps its own counsel
        pass
