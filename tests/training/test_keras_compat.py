"""The Keras 3.15 multi-worker compatibility layer patches exactly what it was written against.

This test fails on purpose when a Keras upgrade changes a function the layer replaces or relies
on: read the new `keras/src/backend/tensorflow/trainer.py`, check whether both defects are still
there (STACK-NOTES "Distributed training"; the two-worker tests in test_multi_worker.py show it),
then update `KERAS_VERSIONS`/`FINGERPRINTS` in edgekeras/distribute/keras_compat.py, or delete
the layer if Keras fixed them.
"""

from edgekeras.distribute import keras_compat


def test_the_installed_keras_is_the_one_the_layer_was_written_for():
    assert keras_compat.drift() == [], (
        "Keras changed what edgekeras/distribute/keras_compat.py patches: re-check both defects against the "
        "new trainer.py and update KERAS_VERSIONS/FINGERPRINTS (or remove the layer if Keras fixed them)."
    )


def test_the_patches_hold_only_inside_the_context_and_defer_to_keras_elsewhere():
    from keras.src.backend.tensorflow import trainer

    build, reduce = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica
    with keras_compat.multi_worker_fit() as applied:
        assert applied
        assert trainer.TensorFlowTrainer._maybe_symbolic_build is not build
        assert trainer.reduce_per_replica is not reduce
        import tensorflow as tf

        # not the multi-worker strategy: Keras' own reduction, unchanged
        values = {"loss": tf.constant(1.5)}
        assert float(trainer.reduce_per_replica(values, tf.distribute.get_strategy(), "auto")["loss"]) == 1.5
    assert trainer.TensorFlowTrainer._maybe_symbolic_build is build
    assert trainer.reduce_per_replica is reduce
