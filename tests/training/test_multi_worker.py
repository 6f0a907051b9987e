"""`edgekeras launch`: real worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

The two-worker run stays in the default suite (about 30 s on 2 cores); the comparison with a
single process, the kill-and-resume case and a failing worker are slow.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CLI_ENV, EDGEKERAS, FIXTURES, run_script


def _recipe(folder, epochs=3, callbacks=(), strategy="multi_worker", name="digits-mw", **extra):
    shutil.copy(FIXTURES / "ek_workers.py", folder)
    recipe = {
        "name": name,
        "seed": 7,
        "strategy": strategy,
        "data": {"source": "digits", "validation_split": 0.1, "test_split": 0.2, "batch_size": 32},
        "model": {
            "type": "sequential",
            "input_shape": [8, 8, 1],
            "layers": [
                {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}},
                {"MaxPooling2D": {}},
                {"Flatten": {}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": 0.003}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": epochs, "callbacks": list(callbacks)},
        "export": {"formats": []},
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _history(run):
    lines = (run / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def test_two_workers_train_in_lockstep_into_one_run_folder(ws):
    recipe = _recipe(ws, callbacks=[{"ek_workers:SaveWeights": {"folder": str(ws / "weights")}}])
    outcome = run_script("launch", "--workers", 2, recipe, "--out", ws / "run", "--json", cwd=ws, timeout=240)
    assert outcome.exit_code == 0, outcome.describe()
    state = outcome.json()["state"]
    assert state["status"] == "done" and state["test_metrics"]["accuracy"] > 0.8
    assert state["distribution"] == {
        "strategy": "multi_worker",
        "replicas": 2,
        "workers": 2,
        "global_batch_size": 32,
        "per_replica_batch_size": 16,
        "shard_policy": "DATA",
        "devices": ["/job:worker/replica:0/task:0/device:CPU:0"],  # the chief's
    }
    assert [row["epoch"] for row in _history(ws / "run")] == ["0", "1", "2"]
    chief, worker = (np.load(ws / "weights" / f"worker-{i}.npz") for i in (0, 1))
    assert len(chief.files) == len(worker.files) == 4
    for name in chief.files:  # the all-reduce kept both replicas identical
        np.testing.assert_array_equal(chief[name], worker[name])
    # one run folder, written by the chief; the other worker's copy is gone
    assert sorted(p.name for p in ws.iterdir() if p.name != "__pycache__") == [
        "digits-mw.yaml",
        "ek_workers.py",
        "run",
        "weights",
    ]


@pytest.mark.slow
def test_two_workers_reach_the_accuracy_of_one_process(ws):
    single = _recipe(ws, epochs=8, strategy="default", name="single")
    double = _recipe(ws, epochs=8, name="double")
    one = run_script("train", single, "--out", ws / "one", "--json", cwd=ws, timeout=240)
    two = run_script("launch", "--workers", 2, double, "--out", ws / "two", "--json", cwd=ws, timeout=300)
    assert one.exit_code == 0, one.describe()
    assert two.exit_code == 0, two.describe()
    accuracy = [o.json()["state"]["test_metrics"]["accuracy"] for o in (one, two)]
    assert accuracy[0] > 0.9 and abs(accuracy[0] - accuracy[1]) < 0.03, accuracy
    losses = [float(_history(ws / r)[-1]["loss"]) for r in ("one", "two")]
    assert losses[1] == pytest.approx(losses[0], rel=0.05)  # same global batch, same steps


@pytest.mark.slow
def test_two_workers_prune_with_identical_masks_then_quantize_aware(ws):
    epochs = 3
    callbacks = [{"ek_workers:SaveWeights": {"folder": str(ws / "weights")}}]
    recipe = _recipe(ws, epochs=epochs, callbacks=callbacks, prune={"sparsity": 0.75}, qat={"epochs": 1})
    outcome = run_script("launch", "--workers", 2, recipe, "--out", ws / "run", "--json", cwd=ws, timeout=300)
    assert outcome.exit_code == 0, outcome.describe()
    state = outcome.json()["state"]
    assert state["status"] == "done" and state["distribution"]["replicas"] == 2
    assert state["prune"]["sparsity"] == pytest.approx(0.75, abs=0.004)
    # the schedule counted global steps (one per global batch of 32), once, not once per worker
    from edgekeras.data import load_data
    from edgekeras.recipe import load_recipe

    loaded = load_recipe(recipe)
    train = load_data(loaded.data, seed=loaded.seed).train
    assert state["prune"]["steps"] == epochs * -(-len(train) // 32)
    # the masks are the kernels' zeros: the same weights and zeros on both workers
    chief, worker = (np.load(ws / "weights" / f"worker-{i}.npz") for i in (0, 1))
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name])
    kernels = [name for name in chief.files if chief[name].ndim > 1]
    assert len(kernels) == 2 and all(np.mean(chief[k] == 0) == pytest.approx(0.75, abs=0.004) for k in kernels)
    # the chief's run folder holds the plain pruned model, and its quantization-aware copy (fine-tuned
    # by both workers together: a collective) keeps the zeros
    from edgekeras.model_io import load_model

    for name in ("model.keras", "model-qat.keras"):
        kernels = [w for w in load_model(ws / "run" / name).model.weights if w.path.endswith("kernel")]
        assert len(kernels) == 2
        for kernel in kernels:
            assert np.mean(np.asarray(kernel) == 0) == pytest.approx(0.75, abs=0.004), (name, kernel.path)
    assert state["qat"]["test_metrics"]["accuracy"] > 0.8


def _children(pid):
    """{pid: TF_CONFIG task index} of the worker processes `pid` started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        config = next((e[len(b"TF_CONFIG=") :] for e in environ if e.startswith(b"TF_CONFIG=")), None)
        if ppid == pid and config:
            found[int(entry.name)] = json.loads(config)["task"]["index"]
    return found


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_restarts_the_group_and_training_resumes(ws):
    recipe = _recipe(ws, epochs=6)
    launcher = subprocess.Popen(
        [str(EDGEKERAS), "launch", "--workers", "2", str(recipe), "--out", str(ws / "run"), "--no-export"],
        cwd=ws,
        env={**os.environ, **CLI_ENV, "EDGEKERAS_PROGRESS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checkpoint = ws / "run" / "backup" / "training_metadata.json"
        deadline = time.monotonic() + 240
        while not (checkpoint.exists() and json.loads(checkpoint.read_text())["epoch"] >= 2):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # into epoch 3
        victim = next(pid for pid, index in _children(launcher.pid).items() if index == 1)
        os.kill(victim, signal.SIGKILL)
        out, err = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, f"{out}\n{err}"
    assert "Worker 1 was killed (SIGKILL): restarting the 2 workers" in err
    assert "Resuming the unfinished run" in err
    resumed_at = int(err.split("Resuming the unfinished run")[1].split("Epoch ")[1].split("/")[0])
    assert resumed_at >= 3, err  # it did not start over
    assert [row["epoch"] for row in _history(ws / "run")] == [str(e) for e in range(6)]  # each epoch once
    assert json.loads((ws / "run" / "run.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_a_failing_worker_stops_the_others_and_is_named(ws):
    recipe = _recipe(ws, epochs=20, callbacks=[{"ek_workers:FailOnWorker": {"index": 1, "epoch": 0}}])
    started = time.monotonic()
    outcome = run_script("launch", "--workers", 2, recipe, "--out", ws / "run", cwd=ws, timeout=240)
    assert outcome.exit_code == 1, outcome.describe()
    assert "Error: Worker 1 of 2 exited with code 1; the other workers were stopped." in outcome.stderr
    assert "RuntimeError: worker 1 fails on purpose at epoch 0" in outcome.stderr  # its last lines
    assert time.monotonic() - started < 120  # the chief did not train 20 epochs alone


@pytest.mark.slow
def test_workers_resuming_from_different_epochs_are_refused_not_hung(ws):
    # a finished single-worker run whose checkpoint (epoch 2) was kept, marked unfinished again
    recipe = _recipe(
        ws, epochs=2, callbacks=[{"BackupAndRestore": {"backup_dir": "backup", "delete_checkpoint": False}}]
    )
    first = run_script("train", recipe, "--out", ws / "run", cwd=ws, timeout=240)
    assert first.exit_code == 0, first.describe()
    state = json.loads((ws / "run" / "run.json").read_text())
    (ws / "run" / "run.json").write_text(json.dumps({**state, "status": "training"}))
    spec = yaml.safe_load(recipe.read_text())
    recipe.write_text(yaml.safe_dump({**spec, "fit": {**spec["fit"], "epochs": 4}}))
    # worker 1 is given another folder, as on a cluster without a shared filesystem: no checkpoint
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    workers = [
        subprocess.Popen(
            [str(EDGEKERAS), "train", str(recipe), "--out", str(ws / ("run" if i == 0 else "elsewhere"))],
            cwd=ws,
            env={
                **os.environ,
                **CLI_ENV,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [w.communicate(timeout=240) for w in workers]
    for worker, (_, err) in zip(workers, results):
        assert worker.returncode == 2, err
        assert "Expected every worker to resume from the same epoch" in err and "Traceback" not in err


def _free_ports(count):
    from edgekeras.launch import _free_ports as free

    return free(count)
