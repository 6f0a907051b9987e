"""An `.onnx` file parsed with its weights left on disk: the bytes of each initializer's
`raw_data` become an external-data reference to their place in the file itself.

`onnx.load` holds a one-file model twice while parsing it (the file's bytes and the parsed
protobuf: VGG16's 0.54 GB of weights took 1.1 GB); the weight report needs the graph and one
weight at a time. This walks the protobuf wire format in a memory map instead: every field
but the initializers' `raw_data` (above `INLINE_BYTES`) is parsed as usual, and `numpy_helper.to_array(tensor,
base_dir)` later reads one tensor's bytes from the file. Weights stored in other fields
(`float_data`, ...) are parsed as usual; a file already using external data keeps its own.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

# Field numbers of onnx.proto3 this reader walks, and the wire type of a length-delimited field.
MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9
# Tensors this small stay inline: shape inference reads small constants (Reshape's shape).
INLINE_BYTES = 4096
LENGTH_DELIMITED = 2


def load(path: str | Path):
    """The `onnx.ModelProto` of `path` without the raw bytes of its initializers."""
    import onnx

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        rest, graphs = bytearray(), []
        for number, start, end, field_start in _fields(data, 0, len(data)):
            if number == MODEL_GRAPH:
                graphs.append(_graph(data, start, end, Path(path).name))
            else:
                rest += data[field_start:end]
    model = onnx.ModelProto()
    model.ParseFromString(bytes(rest))
    for graph in graphs:  # a message field written in parts (`onnx_files` streams them) is merged, as protobuf does
        model.graph.MergeFrom(graph)
    return model


def _graph(data, start: int, end: int, location: str):
    import onnx

    rest, tensors = bytearray(), []
    for number, value_start, value_end, field_start in _fields(data, start, end):
        if number == GRAPH_INITIALIZER:
            tensors.append(_tensor(data, value_start, value_end, location))
        else:
            rest += data[field_start:value_end]
    graph = onnx.GraphProto()
    graph.ParseFromString(bytes(rest))
    graph.initializer.extend(tensors)
    return graph


def _tensor(data, start: int, end: int, location: str):
    import onnx

    rest, raw = bytearray(), None
    for number, value_start, value_end, field_start in _fields(data, start, end):
        if number == TENSOR_RAW_DATA and value_end - value_start > INLINE_BYTES:
            raw = value_start, value_end
        else:
            rest += data[field_start:value_end]
    tensor = onnx.TensorProto()
    tensor.ParseFromString(bytes(rest))
    if raw is not None and tensor.data_location != onnx.TensorProto.EXTERNAL:
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", location), ("offset", raw[0]), ("length", raw[1] - raw[0])):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
    return tensor


def _fields(data, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, value start, value end, field start) of each field in data[start:end]."""
    position = start
    while position < end:
        field_start = position
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, value_end = _varint(data, position)
        elif wire == 1:
            value_end = position + 8
        elif wire == LENGTH_DELIMITED:
            length, position = _varint(data, position)
            value_end = position + length
        elif wire == 5:
            value_end = position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {field_start}")
        if value_end > end:
            raise ValueError(f"truncated protobuf field at byte {field_start}")
        yield number, position, value_end, field_start
        position = value_end


def _varint(data, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
