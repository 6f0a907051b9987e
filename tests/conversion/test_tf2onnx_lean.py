"""edgekeras' lean tf2onnx route patches exactly the tf2onnx it was written against.

Fails on purpose when a tf2onnx upgrade changes a function `export/tf2onnx_lean.py` replaces or
relies on: read the new `tf2onnx/graph.py` (Node.update_proto) and `convert.py`, check that a
constant's NodeProto is still unused for the model, then update TF2ONNX_VERSIONS/FINGERPRINTS.
"""

from edgekeras.export import tf2onnx_lean


def test_the_installed_tf2onnx_is_the_one_the_patch_was_written_for():
    assert tf2onnx_lean.drift() == [], (
        "tf2onnx changed what edgekeras/export/tf2onnx_lean.py patches: re-check Node.update_proto and the "
        "large-model route, then update TF2ONNX_VERSIONS/FINGERPRINTS."
    )


def test_the_patch_holds_only_inside_the_block():
    from tf2onnx import graph

    original = graph.Node.update_proto
    with tf2onnx_lean.lean_constants():
        assert graph.Node.update_proto is not original
    assert graph.Node.update_proto is original


def _both_routes(model):
    """(op types of edgekeras' graph, of tf2onnx's own large-model route, max abs difference of
    their outputs on one batch)."""
    import collections

    import numpy as np
    import onnx
    import onnxruntime
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    from edgekeras.export.graph import serving_function
    from edgekeras.export.onnx_files import in_memory, write

    patch_tf2onnx()
    import tf2onnx

    fn = serving_function(model)
    ours, tensors = tf2onnx_lean.convert_function(tf2onnx, fn, 18)
    theirs, storage = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=18, large_model=True)
    ops = [collections.Counter(n.op_type for n in m.graph.node) for m in (ours, theirs)]
    x = np.random.default_rng(0).random((4, *model.inputs[0].shape[1:]), dtype=np.float32)
    outputs = []
    for m, found in ((ours, tensors), (theirs, tf2onnx_lean.tensors(storage))):
        blob = f"/tmp/edgekeras-lean-{len(outputs)}.onnx"
        write(m, in_memory(found), blob, external=False)
        session = onnxruntime.InferenceSession(blob)
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
        onnx.checker.check_model(blob)
    return ops[0], ops[1], float(np.abs(outputs[0] - outputs[1]).max())


def test_weights_kept_out_of_tensorflow_give_the_graph_tf2onnx_gives():
    """Handlers, rewriters and optimizers see the weights as constants, as on tf2onnx's own
    route: kernels transposed in place, batch norms folded into the convolutions, an LSTM
    matched into one ONNX LSTM -- the same ops, the same outputs."""
    import keras

    keras.utils.set_random_seed(0)
    images = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(48, 3, use_bias=False)(images)
    x = keras.layers.BatchNormalization(moving_mean_initializer="uniform")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3)(x)
    x = keras.layers.BatchNormalization(moving_variance_initializer=keras.initializers.RandomUniform(0.5, 1.5))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    cnn = keras.Model(images, keras.layers.Dense(10)(keras.layers.Dense(300, activation="relu")(x)))
    sequence = keras.Input((12, 8))
    lstm = keras.Model(sequence, keras.layers.Dense(3)(keras.layers.LSTM(40)(sequence)))
    for model in (cnn, lstm):
        ours, theirs, difference = _both_routes(model)
        assert ours == theirs, (model.name, ours, theirs)
        assert difference < 1e-5
    assert ours["LSTM"] == 1


def test_freezing_sets_the_variables_aside_instead_of_copying_them_into_the_graph():
    """The frozen GraphDef holds no weight bytes: each variable's array, as TensorFlow read it,
    goes straight to the weights tf2onnx gets back (Dense2G's 2.1 GB were held three times)."""
    import keras
    import numpy as np
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tensorflow.python.framework import tensor_util

    from edgekeras.export.graph import serving_function

    patch_tf2onnx()
    import tf2onnx

    inputs = keras.Input((64,), name="x")
    hidden = keras.layers.Dense(128, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    original = tensor_util.make_tensor_proto
    graph_def, weights, *_ = tf2onnx_lean.freeze(tf2onnx, serving_function(model).get_concrete_function())
    assert tensor_util.make_tensor_proto is original  # restored after freezing
    assert max(len(n.attr["value"].tensor.tensor_content) for n in graph_def.node) < tf2onnx_lean.WEIGHT_BYTES
    kernels = {tuple(shape): blob for _, shape, blob in weights.values() if len(shape) == 2}
    assert all(isinstance(blob, np.ndarray) for blob in kernels.values())  # TensorFlow's read, not a copy
    np.testing.assert_array_equal(kernels[(64, 128)], model.get_layer("hidden").kernel.numpy())
    np.testing.assert_array_equal(kernels[(128, 3)], model.get_layer("out").kernel.numpy())
