"""`edgekeras tune` / `ek.tune` end to end on the digits: Keras Tuner searching a recipe's spaces,
results table, plots and report, the best run folder, edge-aware objectives, resuming, and
Keras Tuner's chief/worker mode on 127.0.0.1."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import invoke

pytest.importorskip("keras_tuner", reason="keras-tuner is a dependency of edgekeras tune (pyproject.toml)")

PNG = b"\x89PNG"


def tiny_recipe(name="tiny", **tune):
    """A one-hidden-layer MLP on the digits, 1 epoch: a trial takes a few seconds."""
    return {
        "name": name,
        "seed": 1,
        "data": {"source": "digits", "flatten": True, "batch_size": 64},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": {"choice": [8, 64]}, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": {"float": {"min": 0.003, "max": 0.03, "sampling": "log"}}}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 1},
        "tune": tune,
    }


def _rows(folder):
    return list(csv.DictReader((folder / "trials.csv").open()))


def test_random_search_writes_the_table_plots_report_and_a_best_run_that_converts(ws):
    path = ws / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tuner="random", objective="val_accuracy", max_trials=2)))
    r = invoke("tune", path, "--out", ws / "t")
    assert r.exit_code == 0, r.describe()
    folder = ws / "t"
    rows = _rows(folder)
    assert [row["trial"] for row in rows] == ["0", "1"]
    assert {"model.layers[0].Dense.units", "compile.optimizer.Adam.learning_rate", "val_accuracy"} <= set(rows[0])
    best = max(rows, key=lambda row: float(row["val_accuracy"]))
    assert "(best)" in best["status"] and f"Best trial {best['trial']}" in r.stdout
    assert (folder / "scores.png").read_bytes().startswith(PNG)
    assert "## Trials" in (folder / "report.md").read_text() and (folder / "report.html").exists()
    assert json.loads((folder / "tuning.json").read_text())["status"] == "done"
    record = json.loads((folder / "trials" / best["trial"] / "trial.json").read_text())
    assert record["values"]["model.layers[0].Dense.units"] == int(best["model.layers[0].Dense.units"])
    c = invoke("convert", folder / "best", "--format", "tflite")
    assert c.exit_code == 0, c.describe()
    assert (folder / "best" / "artifacts" / "tiny-tflite-fp32.tflite").exists()


def test_an_int8_artifact_objective_keeps_infeasible_trials_off_the_best_and_draws_the_pareto_front(ws):
    import edgekeras as ek

    objective = {
        "artifact": {"format": "tflite", "precision": "int8", "metric": "accuracy"},
        "constraints": {"max_size_kb": 6},  # the 64-unit model's int8 file is ~9 KiB, the 8-unit one ~3
        "bench": {"runs": 5, "warmup": 1, "threads": 1},
    }
    result = ek.tune(tiny_recipe(tuner="bayesian", objective=objective, max_trials=2), out=ws / "t")
    by_units = {row["values"]["model.layers[0].Dense.units"]: row for row in result.trials}
    assert by_units[64]["status"] == "infeasible" and "max_size_kb" in by_units[64]["violations"][0]
    assert by_units[8]["status"] == "completed" and by_units[8]["best"]
    assert result.best["score"] == pytest.approx(by_units[8]["measures"]["accuracy"])
    assert all(row["measures"]["p50_ms"] > 0 for row in result.trials)
    assert (ws / "t" / "pareto.png").read_bytes().startswith(PNG)
    assert (result.best_run / "artifacts" / "tiny-tflite-int8.tflite").exists()


EXE = [sys.executable, "-c", "from edgekeras.cli import main; main()"]


@pytest.mark.slow
def test_a_search_killed_mid_way_resumes_where_it_stopped(ws):
    path = ws / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tuner="random", objective="val_loss", max_trials=3)))
    folder = ws / "t"
    env = {**os.environ, "EDGEKERAS_PROGRESS": "0"}
    proc = subprocess.Popen([*EXE, "tune", path, "--out", folder], env=env, stderr=subprocess.DEVNULL)
    first = folder / "trials" / "0" / "trial.json"
    deadline = time.time() + 180
    while not (first.exists() and json.loads(first.read_text())["status"] == "completed") and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((folder / "tuning.json").read_text())["status"] == "searching"
    done_at = (folder / "trials" / "0" / "run" / "model.keras").stat().st_mtime

    r = invoke("tune", path, "--out", folder)
    assert r.exit_code == 0, r.describe()
    assert [row["trial"] for row in _rows(folder)] == ["0", "1", "2"]  # max_trials, none run twice
    assert (folder / "trials" / "0" / "run" / "model.keras").stat().st_mtime == done_at  # not retrained


@pytest.mark.slow
def test_a_chief_and_two_workers_run_max_trials_unique_trials(ws):
    path = ws / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tuner="random", objective="val_accuracy", max_trials=4)))
    folder = ws / "t"
    proc = subprocess.run(
        [*EXE, "tune", path, "--out", folder, "--workers", "2", "--json"],
        env={**os.environ, "EDGEKERAS_PROGRESS": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    ids = [row["trial"] for row in result["trials"]]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(row["status"] == "completed" for row in result["trials"])
    assert "[worker1] Trial" in proc.stderr and "[worker2] Trial" in proc.stderr  # both workers trained
    assert (folder / "best" / "model.keras").exists()
