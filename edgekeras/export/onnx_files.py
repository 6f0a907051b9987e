"""ONNX files on disk: one `.onnx`, or an `.onnx` with its weights in `NAME.onnx.data` beside it.

A protobuf stops at 2 GB, so a model whose weights come near that is written with ONNX
external data: the graph in `NAME.onnx`, every large tensor's bytes in `NAME.onnx.data`
(location, offset and length recorded in the graph). Smaller models stay one file.

Both are written one tensor at a time, so a model is never held twice: the external form
appends each tensor to the data file; the single-file form writes the graph without its
large initializers and then each initializer as a further `graph` field. Protobuf merges
repeated occurrences of a message field into one (and appends to repeated fields), so
every reader sees one graph with all its initializers; only the order of fields differs
from `onnx.save`'s.

`EDGEKERAS_ONNX_EXTERNAL_BYTES` lowers the size at which the external form is chosen (tests
use it to write small models that way).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

THRESHOLD_ENV = "EDGEKERAS_ONNX_EXTERNAL_BYTES"
# Protobuf's limit is 2**31 - 1 bytes; the graph itself needs room beside the weights.
DEFAULT_THRESHOLD = 2_000_000_000
INLINE_MAX = 1024  # tensors smaller than this stay inside the graph in the external form


# Graphs in a conversion's work folder (the fp32 graph ONNX Runtime's tools pre-process,
# calibrate and quantize) keep their weights in a data file from this size on: those tools load
# and save the model several times, and a model in one file is held twice while it is parsed or
# serialized (VGG16 int8: 3.26 -> 3.03 GB at peak). Artifacts follow `threshold`.
WORK_THRESHOLD = 256 * 2**20


def threshold() -> int:
    """Model bytes from which artifacts are written with external data."""
    value = os.environ.get(THRESHOLD_ENV, "")
    return int(value) if value.strip().isdigit() else DEFAULT_THRESHOLD


def work_threshold() -> int:
    """Model bytes from which work-folder graphs are written with external data."""
    return min(threshold(), WORK_THRESHOLD)


def data_path(path: str | Path) -> Path:
    """Where the external data of the `.onnx` at `path` goes: `NAME.onnx.data` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def all_tensors(graph, initializers: bool = True) -> Iterator:
    """Every TensorProto of `graph`: initializers (unless `initializers` is false, for this graph
    only) and attribute tensors, nested graphs included."""
    from onnx import AttributeProto

    if initializers:
        yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == AttributeProto.GRAPH:
                yield from all_tensors(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from all_tensors(sub)


def is_external(tensor) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL


def _info(tensor) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def external_files(path: str | Path) -> list[Path]:
    """The data files the `.onnx` at `path` refers to (existing or not), without reading weights."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    locations = dict.fromkeys(_info(t)["location"] for t in all_tensors(model.graph) if is_external(t))
    return [Path(path).parent / location for location in locations]


def in_memory(tensors: dict[str, bytes]) -> Callable:
    """A reader of external tensors whose location names an entry of `tensors` (tf2onnx's form)."""

    def read(tensor) -> bytes:
        return tensors[_info(tensor)["location"]]

    return read


def in_files(base_dir: str | Path) -> Callable:
    """A reader of external tensors stored in files under `base_dir` (ONNX's form)."""

    def read(tensor) -> bytes:
        info = _info(tensor)
        with open(Path(base_dir) / info["location"], "rb") as f:
            f.seek(int(info.get("offset", 0)))
            return f.read(int(info["length"])) if "length" in info else f.read()

    return read


def stored_bytes(model) -> int:
    """Bytes of the model once written: the graph plus every external tensor."""
    size = model.ByteSize()
    for tensor in all_tensors(model.graph):
        if is_external(tensor):
            size += int(_info(tensor).get("length", 0))
    return size


def write(
    model, read: Callable | None, path: str | Path, external: bool | None = None, limit: int | None = None
) -> list[Path]:
    """Writes `model` to `path`, reading its external tensors with `read`; returns the files written.

    `external` None decides by size: from `limit` bytes on (default: `threshold()`). `model` is
    consumed: its tensors are moved out (a copy of it would be one more copy of every weight held
    inline).
    """
    path = Path(path)
    if external is None:
        external = _size(model, read) >= (threshold() if limit is None else limit)
    if external:
        _write_external(model, read, path)
        return [path, data_path(path)]
    _write_single(model, read, path)
    return [path]


def repack(source: str | Path, target: str | Path, external: bool | None = None) -> list[Path]:
    """Copies the ONNX file `source` (and its external data) to `target`, in either form. A
    single-file source that stays one file is copied as bytes (it is under protobuf's limit)."""
    import onnx

    if not data_path(source).exists() and not external:
        shutil.copyfile(source, target)
        return [Path(target)]
    model = onnx.load(str(source), load_external_data=False)
    return write(model, in_files(Path(source).parent), target, external)


def _size(model, read) -> int:
    size = model.ByteSize()
    for tensor in all_tensors(model.graph):
        if is_external(tensor):
            info = _info(tensor)
            size += int(info["length"]) if "length" in info else len(read(tensor))
    return size


def _write_external(skeleton, read, path: Path) -> None:
    from onnx import TensorProto

    data = data_path(path)
    offset = 0
    with open(data, "wb") as f:
        for tensor in all_tensors(skeleton.graph):
            if is_external(tensor):
                blob = read(tensor)
            elif tensor.HasField("raw_data") and len(tensor.raw_data) >= INLINE_MAX:
                blob = tensor.raw_data
            else:
                continue
            f.write(blob)
            tensor.ClearField("raw_data")
            del tensor.external_data[:]
            for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(len(blob)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            tensor.data_location = TensorProto.EXTERNAL
            offset += len(blob)
            del blob
    path.write_bytes(skeleton.SerializeToString())


def _write_single(skeleton, read, path: Path) -> None:

    streamed = [t for t in skeleton.graph.initializer if is_external(t)]
    kept = [t for t in skeleton.graph.initializer if not is_external(t)]
    for tensor in all_tensors(skeleton.graph, initializers=False):  # Constant nodes' values: few, small
        if is_external(tensor):
            _inline(tensor, read(tensor))
    del skeleton.graph.initializer[:]
    skeleton.graph.initializer.extend(kept)
    with open(path, "wb") as f:
        f.write(skeleton.SerializeToString())
        for tensor in streamed:
            _write_initializer(f, tensor, read(tensor))


def _write_initializer(f, tensor, blob: bytes) -> None:
    """Appends `tensor` with `blob` as its raw data to a ModelProto being written to `f`, as a
    further `graph` field holding one `initializer`; `blob` is written as it is, never copied."""
    import onnx

    head = onnx.TensorProto()
    head.CopyFrom(tensor)
    del head.external_data[:]
    head.data_location = onnx.TensorProto.DEFAULT
    fields = head.SerializeToString() + _key(onnx.TensorProto, "raw_data") + _varint(len(blob))
    size = len(fields) + len(blob)
    initializer = _key(onnx.GraphProto, "initializer") + _varint(size)
    f.write(_key(onnx.ModelProto, "graph") + _varint(len(initializer) + size) + initializer + fields)
    f.write(blob)


def _key(message, field: str) -> bytes:
    """The tag of a length-delimited `field` of protobuf `message` (wire type 2)."""
    return _varint(message.DESCRIPTOR.fields_by_name[field].number << 3 | 2)


def _inline(tensor, blob: bytes) -> None:
    from onnx import TensorProto

    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT
    tensor.raw_data = blob


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
