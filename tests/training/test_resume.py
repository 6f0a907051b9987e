"""A training run killed with SIGKILL resumes from its last completed epoch when re-run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import invoke

EXE = str(Path(sys.executable).parent / "edgekeras")
EPOCHS = 30


def _epochs(history):
    if not history.exists():
        return []
    with open(history, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]


def test_sigkill_then_same_command_resumes(tmp_path):
    recipe = {
        "name": "crashy",
        "seed": 3,
        "data": {"source": "digits", "flatten": True},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": 256, "activation": "relu"}},
                {"Dense": {"units": 256, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": EPOCHS},
        "export": {"formats": ["onnx"], "precisions": ["fp32"]},
    }
    path = tmp_path / "crashy.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    cmd = [EXE, "train", str(path), "--out", str(out)]
    env = {**os.environ, "EDGEKERAS_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while len(_epochs(out / "history.csv")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _epochs(out / "history.csv")
    assert 3 <= len(done_before) < EPOCHS, "the kill must land mid-training"
    assert json.loads((out / "run.json").read_text())["status"] == "training"
    assert not (out / "model.keras").exists()

    # The same command again, in-process: the kill needed a process of its own, the resume does not.
    r = invoke("train", path, "--out", out)
    assert r.exit_code == 0, r.describe()
    assert "Resuming" in r.stderr
    epochs = _epochs(out / "history.csv")
    assert epochs == list(range(EPOCHS)), epochs  # no epoch repeated or lost
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "done" and state["epochs"] == EPOCHS
    assert (out / "model.keras").exists() and (out / "artifacts" / "crashy-onnx-fp32.onnx").exists()
