"""The serving function every converter starts from: Keras names in, Keras names out.

Inputs are `tf.TensorSpec`s named after the Keras inputs and outputs are a dict keyed by
Keras output names, so TFLite signatures and ONNX graphs carry the same names and
validation matches outputs by name (converters reorder them; see STACK-NOTES).
"""

from __future__ import annotations

from edgekeras.keras_model import input_specs, outputs_by_name
from edgekeras.quiet import captured_output


def serving_function(model, batch=None):
    """A `tf.function` with a fixed signature calling `model(..., training=False)`.

    `batch` fixes the batch dimension (None keeps it dynamic).
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((batch, *s.shape[1:]), s.dtype, name=s.name) for s in input_specs(model)]
    if len(specs) == 1:

        @tf.function(input_signature=specs)
        def serve(x):
            return outputs_by_name(model, model(x, training=False))
    else:
        signature = [{s.name: s for s in specs}]

        @tf.function(input_signature=signature)
        def serve(inputs):
            return outputs_by_name(model, model(inputs, training=False))

    return serve


def saved_model(context, batch=None, unrolled=False):
    """A SavedModel with the serving signature, written once per variant into the workdir.

    Written with Keras' `ExportArchive`, which tracks Keras 3 variables so the converter
    can freeze them (a plain `tf.Module` leaves READ_VARIABLE ops that break calibration and
    make fixed-batch recurrent models fail at invoke). `unrolled` exports a clone whose
    recurrent layers are unrolled (see `recurrent.py`).
    """

    def build():
        import keras

        model = context.unrolled_model if unrolled else context.model
        fn = (
            serving_function(model, batch)
            if (batch, unrolled) != (None, False)
            else context.cached("serving_function", lambda: serving_function(model))
        )
        path = context.workdir / f"saved_model-b{batch or 'any'}{'-unrolled' if unrolled else ''}"
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", fn)
        with captured_output():
            archive.write_out(str(path), verbose=False)
        return path

    return context.cached(("saved_model", batch, unrolled), build)
