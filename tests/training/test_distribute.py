"""The recipe's `strategy:`, TF_CONFIG and `edgekeras launch`: bad inputs are refused before any
worker starts (exit 2, naming what is wrong), and `mirrored` trains and says how it did."""

import json
import socket

import pytest
import yaml
from conftest import assert_bad_input, invoke, run_python

from edgekeras.distribute import plan_distribution
from edgekeras.distribute.cluster import read_cluster
from edgekeras.errors import InputError

WORKERS = {"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]}, "task": {"type": "worker", "index": 1}}


def _recipe(folder, strategy="multi_worker", epochs=1, name="digits-dist"):
    recipe = {
        "name": name,
        "seed": 7,
        "strategy": strategy,
        "data": {"source": "digits", "validation_split": 0.1, "test_split": 0.2, "batch_size": 32},
        "model": {
            "type": "sequential",
            "input_shape": [8, 8, 1],
            "layers": [{"Flatten": {}}, {"Dense": {"units": 10, "activation": "softmax"}}],
        },
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs},
        "export": {"formats": []},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_tf_config_names_the_cluster_and_the_chief():
    cluster = read_cluster({"TF_CONFIG": json.dumps(WORKERS)})
    assert cluster.workers == 2 and cluster.rank == 1 and not cluster.is_chief
    assert cluster.address == "127.0.0.1:20002"
    with_chief = {"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = read_cluster({"TF_CONFIG": json.dumps(with_chief)})
    assert cluster.workers == 2 and cluster.rank == 1 and not cluster.is_chief
    assert read_cluster({}) is None
    plan = plan_distribution("multi_worker", {"TF_CONFIG": json.dumps(WORKERS)})
    assert plan.workers == 2 and plan.role == "worker 1"


@pytest.mark.parametrize(
    "text, names",
    [
        ("{not json", ["TF_CONFIG", "not valid JSON"]),
        ('{"task": {"type": "worker", "index": 0}}', ["'cluster'"]),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', ['"host:port"', "'localhost'"]),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', ["task.index", "0 to 1"]),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "workr", "index": 0}}', ["task.type", "'worker'"]),
        ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', ["'ps'", "parameter servers"]),
    ],
)
def test_a_malformed_tf_config_is_named(text, names):
    with pytest.raises(InputError) as caught:
        read_cluster({"TF_CONFIG": text})
    for name in names:
        assert name in str(caught.value)


def test_train_refuses_a_bad_tf_config_before_loading_anything(ws):
    recipe = _recipe(ws)
    bad = invoke("train", recipe, env={"TF_CONFIG": "{'cluster': 1}"})
    assert_bad_input(bad, "TF_CONFIG", "not valid JSON")
    wrong_task = {**WORKERS, "task": {"type": "worker", "index": 3}}
    assert_bad_input(invoke("train", recipe, env={"TF_CONFIG": json.dumps(wrong_task)}), "task.index", "Received: 3")
    assert not (ws / "runs").exists()


def test_a_misspelt_strategy_suggests_the_closest(ws):
    recipe = _recipe(ws, strategy="mirored")
    assert_bad_input(invoke("train", recipe), "'strategy'", suggestion="mirrored")


def test_launch_refuses_bad_inputs_before_starting_a_worker(ws):
    recipe = _recipe(ws)
    assert_bad_input(invoke("launch", "--workers", 0, recipe), "--workers", "Received: 0")
    single = _recipe(ws, strategy="default", name="single")
    assert_bad_input(invoke("launch", single), "strategy: multi_worker", "'default'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_bad_input(invoke("launch", "--port", port, recipe), f"port {port}", "in use")
    assert not (ws / "runs").exists()


def test_tpu_without_a_tpu_is_bad_input(ws):
    outcome = invoke("train", _recipe(ws, strategy="tpu"))
    assert_bad_input(outcome, "Expected a TPU", "strategy: tpu")


def test_mirrored_trains_on_the_cpu_and_records_the_strategy(ws):
    outcome = invoke("train", _recipe(ws, strategy="mirrored"), "--out", ws / "run", "--json")
    assert outcome.exit_code == 0, outcome.describe()
    state = json.loads((ws / "run" / "run.json").read_text())
    assert state["status"] == "done"
    assert state["distribution"] == {
        "strategy": "mirrored",
        "replicas": 1,
        "workers": 1,
        "global_batch_size": 32,
        "per_replica_batch_size": 32,
        "shard_policy": "DATA",
        "devices": ["/job:localhost/replica:0/task:0/device:CPU:0"],
    }
    assert yaml.safe_load((ws / "run" / "recipe.yaml").read_text())["strategy"] == "mirrored"


def test_a_model_built_outside_the_strategy_scope_is_refused():
    import keras

    import edgekeras as ek

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(loss="mse")
    with pytest.raises(InputError, match=r"built inside strategy\.scope"):
        ek.train(model, data=([[0.0] * 4] * 8, [[0.0] * 2] * 8), recipe={"strategy": "mirrored"})


def test_the_global_batch_must_split_evenly_over_the_replicas():
    out = run_python(
        """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgekeras.distribute import Distribution, DistributionPlan
from edgekeras.errors import InputError
two = Distribution(DistributionPlan("mirrored"), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
two.check_batch_size(32)
print(two.record(32)["per_replica_batch_size"])
try:
    two.check_batch_size(33)
except InputError as e:
    print(e)
"""
    )
    assert out.splitlines()[0] == "16"
    assert "Expected 'data.batch_size'" in out and "multiple of the 2 replicas" in out and "Received: 33" in out
