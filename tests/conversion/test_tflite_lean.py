"""The TFLite converter writes the same bytes with edgekeras' lean re-serialization as without.

`export/tflite_lean.py` swaps the flatbuffers round trip TF's converter runs after the MLIR
converter (buffer deduplication, conversion metadata) for one that does not copy every weight
four times; its output must stay byte-for-byte TF's own.
"""

import numpy as np
import pytest

from edgekeras.export import tflite_lean


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import keras

    inputs = keras.Input((8, 8, 1), name="x")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(40, name="y")(x))
    path = tmp_path_factory.mktemp("lean") / "saved_model"
    model.export(str(path), verbose=False)
    return str(path)


@pytest.mark.parametrize("optimize", [False, True])  # fp32; dynamic-range (int8 weights)
def test_the_converter_writes_the_same_bytes_with_the_lean_round_trip(saved_model, optimize):
    import tensorflow as tf

    def convert(lean):
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not lean:
            return converter.convert()
        with tflite_lean.lean_serialization():
            return converter.convert()

    plain, lean = convert(False), convert(True)
    assert len(lean) > 1000 and lean == plain


def test_a_model_object_packs_to_flatbuffer_utils_bytes_and_the_swap_is_undone():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT() for _ in range(4)]
    model.buffers[1].data = np.arange(1000, dtype=np.uint8)
    model.buffers[2].data = np.arange(-50, 50, dtype=np.int8)
    model.buffers[3].data = np.linspace(0, 1, 7, dtype=np.float32).view(np.uint8)
    original = flatbuffer_utils.convert_object_to_bytearray
    assert tflite_lean.object_to_bytes(model) == original(model)
    assert tflite_lean.object_to_bytes(model, b"tail") == original(model, b"tail")
    with pytest.raises(RuntimeError), tflite_lean.lean_serialization():
        assert flatbuffer_utils.convert_object_to_bytearray is tflite_lean.object_to_bytes
        raise RuntimeError("a converter failure")
    assert flatbuffer_utils.convert_object_to_bytearray is original


def test_int8_in_two_steps_is_the_one_step_artifact_but_for_its_model_hash(saved_model):
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from edgekeras.export import tflite_convert

    x = {"x": np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)}
    settings = {"saved_model": saved_model, "ops": ["TFLITE_BUILTINS_INT8"], "optimize": True, "calibrate": True}
    settings.update(batch=1, samples=16)
    assert tflite_convert.in_two_steps(settings)
    two, notes = tflite_convert.convert(settings, x)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    tflite_convert.configure(converter, settings, x)
    one = converter.convert()

    def parts(flatbuffer):
        model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
        meta = {m.buffer for m in model.metadata if m.name == b"CONVERSION_METADATA"}
        buffers = [None if b.data is None else bytes(b.data) for i, b in enumerate(model.buffers) if i not in meta]
        graph = model.subgraphs[0]
        quant = [(t.name, None if t.quantization is None else _floats(t.quantization.scale)) for t in graph.tensors]
        return sorted(b for b in buffers if b), [(op.opcodeIndex, list(op.inputs)) for op in graph.operators], quant

    assert notes == {} and parts(two) == parts(one)


def _floats(values):
    return None if values is None else [float(v) for v in values]
