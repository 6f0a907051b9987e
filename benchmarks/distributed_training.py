"""Two workers on this machine vs one process: wall time and test accuracy, side by side.

The shipped digits CNN recipe (EarlyStopping off, export off) is trained as `edgekeras train`
(strategy: default, one process) and as `edgekeras launch --workers 2` (strategy: multi_worker,
two processes on 127.0.0.1, each given cores // 2 intra-op threads), alternating, `--repeats`
times each; the medians are printed. Both take the recipe's batch size as the global batch, so
they make the same steps on the same samples; the two workers add process start-up, gRPC
all-reduces every step and share the same cores: on one small machine this shows the cost of
the machinery, not a speed-up (that needs workers on separate machines or GPUs).

    python benchmarks/distributed_training.py [--epochs 10] [--repeats 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def recipe(folder, epochs, strategy):
    """The shipped digits CNN recipe with `epochs` and `strategy`, training only."""
    from edgekeras.recipe import load_recipe

    spec = load_recipe("digits-cnn").to_dict()
    spec["fit"]["epochs"] = epochs
    spec["fit"]["callbacks"] = []  # EarlyStopping would make the runs' lengths differ
    spec["export"]["formats"] = []
    spec["strategy"] = strategy
    spec["name"] = f"digits-{strategy}"
    path = Path(folder) / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed(args, out):
    """(wall seconds, test accuracy) of one `edgekeras ...` run writing the run folder `out`."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgekeras", *map(str, args), "--out", str(out), "--force", "--json"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)["state"]["test_metrics"]["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        single, multi = recipe(folder, args.epochs, "default"), recipe(folder, args.epochs, "multi_worker")
        runs = {"1 process": [], "2 workers": []}
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            runs["1 process"].append(timed(["train", single], Path(folder) / "one"))
            runs["2 workers"].append(timed(["launch", "--workers", 2, multi], Path(folder) / "two"))
    print(f"digits CNN, {args.epochs} epochs, global batch 32, {os.cpu_count()} cores, median of {args.repeats}:")
    base = statistics.median(s for s, _ in runs["1 process"])
    for name, results in runs.items():
        wall = statistics.median(s for s, _ in results)
        accuracy = statistics.median(a for _, a in results)
        print(f"  {name:<10} wall {wall:6.1f} s ({wall / base:4.2f}x)   test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
