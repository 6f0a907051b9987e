"""`prune:` and `qat:` under `strategy: mirrored`, on two real replicas (two logical CPUs): the
masks, the schedule's step and the FakeQuant ranges are distributed variables that stay the same
on every replica, the schedule counts global steps, and the artifacts are as sparse as the model.
(Two workers under `multi_worker`: tests/training/test_multi_worker.py.)"""

import json

import pytest
from conftest import run_python

# A fresh Python: the CPU is split into two logical devices before TensorFlow runs anything, and
# `strategy: mirrored` mirrors over both (on this machine it would take the one CPU alone).
CHILD = """
import json, math
from dataclasses import replace
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgekeras.distribute import strategies

two = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
strategies.STRATEGIES["mirrored"] = replace(strategies.STRATEGIES["mirrored"], build=two)
import edgekeras as ek

run = ek.train(RECIPE, out=OUT)
strategy = run.distribution.strategy

def replicas(model):
    found = {}
    for v in model.variables:
        values = [np.asarray(x) for x in strategy.experimental_local_results(v.value)]
        found[v.path] = {
            "replicas": len(values),
            "same": all(np.array_equal(values[0], x) for x in values),
            "zeros": [float(np.mean(x == 0)) for x in values],
        }
    return found

print(json.dumps({
    "model": replicas(run.model),
    "qat": replicas(run.qat_model) if run.qat_model is not None else None,
    "steps_per_epoch": math.ceil(len(run.data.train) / run.data.batch_size),
    "artifacts": {a.path.name: json.loads(a.path.with_suffix(".json").read_text())["weight_stats"]["sparsity"]
                  for a in run.artifacts},
}))
"""


def _recipe(epochs, **extra):
    return {
        "name": "mirrored-prune",
        "seed": 7,
        "strategy": "mirrored",
        "data": {"source": "digits", "validation_split": 0.1, "test_split": 0.2, "batch_size": 32},
        "model": {
            "type": "sequential",
            "input_shape": [8, 8, 1],
            "layers": [
                {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu", "name": "conv"}},
                {"MaxPooling2D": {}},
                {"Flatten": {}},
                {"Dense": {"units": 10, "activation": "softmax", "name": "probs"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": 0.003}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": epochs},
        "prune": {"sparsity": 0.8},
        "export": {"formats": []},
        **extra,
    }


def _train(ws, recipe):
    """What the child saw: per-replica facts of the model (and QAT copy), steps per epoch, and
    the artifacts' kernel sparsity; the run folder is ws/run."""
    code = CHILD.replace("RECIPE", repr(recipe)).replace("OUT", repr(str(ws / "run")))
    return json.loads(run_python(code).splitlines()[-1]), json.loads((ws / "run" / "run.json").read_text())


KERNELS = ("sequential/conv/kernel", "sequential/probs/kernel")


def _assert_pruned_alike(found, state, epochs):
    for name, seen in found["model"].items():  # every weight one value on both replicas
        assert seen["replicas"] == 2 and seen["same"], name
    for name in KERNELS:  # the final sparsity, exactly, on each replica (3*3*16 = 144 -> 115 zeros)
        assert found["model"][name]["zeros"] == [pytest.approx(0.8, abs=0.004)] * 2, name
    assert state["status"] == "done" and state["distribution"]["replicas"] == 2
    assert state["prune"]["sparsity"] == pytest.approx(0.8, abs=0.004)
    assert state["prune"]["steps"] == epochs * found["steps_per_epoch"]  # global steps, not per replica
    assert state["test_metrics"]["accuracy"] > 0.75


def test_mirrored_prunes_identically_on_two_replicas(ws):
    found, state = _train(ws, _recipe(epochs=2))
    _assert_pruned_alike(found, state, epochs=2)


@pytest.mark.slow
def test_mirrored_prunes_quantizes_and_exports_sparse_artifacts(ws):
    export = {"formats": ["tflite"], "precisions": ["fp32", "int8"]}
    found, state = _train(ws, _recipe(epochs=4, qat={"epochs": 1}, export=export))
    _assert_pruned_alike(found, state, epochs=4)
    # the quantization-aware copy: FakeQuant ranges averaged over the replicas, zeros kept
    ranges = [name for name in found["qat"] if name.endswith(("range_min", "range_max"))]
    assert len(ranges) >= 6
    for name, seen in found["qat"].items():
        assert seen["replicas"] == 2 and seen["same"], name
    for name in KERNELS:
        assert found["qat"][name]["zeros"] == found["model"][name]["zeros"]
    assert state["qat"]["test_metrics"]["accuracy"] > 0.8
    assert found["artifacts"] == {  # the int8 artifact comes from the QAT copy
        "mirrored-prune-tflite-fp32.tflite": pytest.approx(0.8, abs=0.004),
        "mirrored-prune-qat-tflite-int8.tflite": pytest.approx(0.8, abs=0.004),
    }
