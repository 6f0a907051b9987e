"""Tuning throughput and k-fold cost, from one run on this machine:

- tuning trials per minute with `edgekeras tune` in one process, and with a Keras Tuner chief
  and 2 workers on 127.0.0.1 (`--workers 2`; each worker is its own process, the chief only
  holds the oracle), on the same small digits recipe (each trial: 1 hidden layer, `--epochs`);
- k-fold wall time (`kfold: {k}` with `edgekeras train`) against k separate `edgekeras train`
  runs of the same recipe, one after the other.

Wall times include each process's start (TensorFlow import) — what a user waits for.

    python benchmarks/tuning.py [--trials 6] [--epochs 3] [--k 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CLI = [sys.executable, "-c", "from edgekeras.cli import main; main()"]


def recipe(epochs, **extra):
    return {
        "name": "bench",
        "seed": 3,
        "data": {"source": "digits", "flatten": True, "batch_size": 64},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": 64, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs},
        "export": {"formats": []},
        **extra,
    }


def timed(args, cwd):
    start = time.perf_counter()
    subprocess.run([*CLI, *map(str, args)], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spaced = recipe(args.epochs, tune={"objective": "val_accuracy", "max_trials": args.trials})
        spaced["model"]["layers"][0]["Dense"]["units"] = {"int": {"min": 8, "max": 128, "step": 8}}
        (tmp / "tune.yaml").write_text(yaml.safe_dump(spaced))
        local = timed(["tune", "tune.yaml", "--out", "local"], tmp)
        workers = timed(["tune", "tune.yaml", "--out", "workers", "--workers", 2], tmp)
        print(f"tuning, {args.trials} trials of {args.epochs} epochs (digits MLP), {os.cpu_count()} cores")
        print(f"  one process:          {local:6.1f} s  {60 * args.trials / local:5.1f} trials/min")
        print(f"  chief + 2 workers:    {workers:6.1f} s  {60 * args.trials / workers:5.1f} trials/min")
        print(f"  speed-up with 2 workers: {local / workers:.2f}x")

        (tmp / "kfold.yaml").write_text(yaml.safe_dump(recipe(args.epochs, kfold={"k": args.k, "final": "best"})))
        (tmp / "single.yaml").write_text(yaml.safe_dump(recipe(args.epochs)))
        kfold = timed(["train", "kfold.yaml", "--out", "kfold"], tmp)
        singles = sum(timed(["train", "single.yaml", "--out", f"single-{i}"], tmp) for i in range(args.k))
        print(f"k-fold, k={args.k}, {args.epochs} epochs")
        print(f"  edgekeras train with kfold: {kfold:6.1f} s")
        print(f"  {args.k} separate edgekeras train: {singles:6.1f} s")
        print(f"  ratio k-fold / k single fits: {kfold / singles:.2f}")


if __name__ == "__main__":
    main()
