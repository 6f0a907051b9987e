"""The TFLite converter's Python re-serialization, without its growing copies of every weight.

After the MLIR converter returns, `TFLiteConverter.convert` rewrites the whole flatbuffer twice
in Python (`deduplicate_readonly_buffers`, then the conversion metadata), each time through
`flatbuffer_utils.convert_object_to_bytearray`: a `flatbuffers.Builder` of 1 KiB that doubles
as it goes (the old and the new buffer live together at each step: 1.5 x the model at the
last one, rounded up to a power of two), then two more copies for `Output()` and `bytes()`.
And flatbuffers' `CreateNumpyVector` copies each weight buffer twice on its way in (a
"byteswap" of bytes, then `tobytes()`). For VGG16 (537 MB) that is 2 GB on top of everything
else, the peak of a whole fp32 `convert` (measured: benchmarks/convert_memory.py).

`lean_serialization()` swaps in the same function with the builder sized once for the
model's buffers, byte vectors copied straight in, and one copy out. A flatbuffer is built
back to front with offsets counted from its end, so the bytes are the same whatever the
builder's first size (the test compares them).
"""

from __future__ import annotations

import contextlib

_FILE_IDENTIFIER = b"TFL3"
_SLACK = 4 << 20  # tensors, ops, names and metadata beside the buffers, with room to spare


def _builder_class():
    import flatbuffers

    class Builder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):  # flatbuffers' name: ModelT.Pack calls it
            """flatbuffers' own, minus its two temporary copies of a byte vector."""
            if x.dtype.itemsize != 1 or x.dtype.kind not in "biu" or x.ndim != 1 or not x.flags.c_contiguous:
                return super().CreateNumpyVector(x)
            self.StartVector(1, x.size, x.dtype.alignment)
            self.head = self.head - x.size
            self.Bytes[self.head : self.head + x.size] = memoryview(x).cast("B")
            self.vectorNumElems = x.size
            return self.EndVector()

    return Builder


def object_to_bytes(model_object, extra_buffer=b""):
    """`flatbuffer_utils.convert_object_to_bytearray`, with one builder of about the final size."""
    import flatbuffers
    import numpy as np

    data = sum(b.data.nbytes for b in model_object.buffers or [] if isinstance(b.data, np.ndarray))
    size = min(int(data * 1.01) + _SLACK, flatbuffers.Builder.MAX_BUFFER_SIZE)
    builder = _builder_class()(size)
    builder.Finish(model_object.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    out = bytes(memoryview(builder.Bytes)[builder.Head() :])
    del builder
    return out + extra_buffer if extra_buffer else out


@contextlib.contextmanager
def lean_serialization():
    """Within the block, the converter re-serializes with `object_to_bytes`."""
    from tensorflow.lite.tools import flatbuffer_utils

    original = flatbuffer_utils.convert_object_to_bytearray
    flatbuffer_utils.convert_object_to_bytearray = object_to_bytes
    try:
        yield
    finally:
        flatbuffer_utils.convert_object_to_bytearray = original
