"""Does `edgekeras train` cost more than a plain `model.fit`? Prints the wall time of
`ek.train(recipe)` (export off: training only, with everything else a run does — checks,
run folder, per-epoch crash-safe checkpoint, history CSV, TensorBoard logs, saving, test
evaluation, curves, model.png) divided by the wall time of a plain script on the same model
and data: build, compile, `model.fit` on numpy arrays with the same batch size, epochs and
validation split. The runs are interleaved in one process so machine noise hits both
alike; the median ratio of several rounds is the figure. Target: <= 1.03. A third run,
`model.fit` on the very tf.data pipeline edgekeras uses, separates what the pipeline gains
from what edgekeras' extras (checkpoints, logs, saving, plots) cost.

    python benchmarks/train_overhead.py [--epochs 60] [--repeats 4]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def spec(epochs):
    """The shipped digits CNN recipe with `epochs`, training only."""
    from edgekeras.recipe import load_recipe

    recipe = load_recipe("digits-cnn").to_dict()
    recipe["fit"]["epochs"] = epochs
    recipe["fit"]["callbacks"] = []  # EarlyStopping would make the two runs' lengths differ
    recipe["export"]["formats"] = []
    return recipe


def plain_fit(recipe, bundle, pipeline=False):
    """What a Keras user writes by hand for the same recipe: numpy arrays, or (`pipeline`) the
    same tf.data pipeline edgekeras feeds, which isolates what edgekeras adds around `fit`."""
    import keras

    from edgekeras.models import build_model
    from edgekeras.recipe import load_recipe
    from edgekeras.training import _compile

    r = load_recipe(recipe)
    keras.utils.set_random_seed(r.seed)
    model = build_model(r.model)
    _compile(model, r.compile)
    val = bundle.validation
    if pipeline:
        model.fit(
            bundle.tf_dataset(bundle.train, shuffle=True),
            validation_data=bundle.tf_dataset(val),
            epochs=r.fit["epochs"],
            verbose=0,
        )
    else:
        model.fit(
            bundle.train.x,
            bundle.train.y,
            batch_size=r.data["batch_size"],
            epochs=r.fit["epochs"],
            validation_data=(val.x, val.y),
            shuffle=True,
            verbose=0,
        )
    return model


def edgekeras_train(recipe, out):
    import edgekeras as ek

    return ek.train(recipe, out=out, force=True)


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=4, help="rounds of the three runs (ABC, CBA, ...)")
    args = parser.parse_args()

    from edgekeras.data import load_data
    from edgekeras.recipe import load_recipe

    recipe = spec(args.epochs)
    r = load_recipe(recipe)
    bundle = load_data(r.data, seed=r.seed)  # the same split ek.train makes
    with tempfile.TemporaryDirectory() as tmp:
        print("warming up (TensorFlow, tracing) ...", file=sys.stderr)
        warm = spec(1)
        plain_fit(warm, bundle)
        edgekeras_train(warm, Path(tmp) / "warm")
        times = {"ours": [], "plain": [], "pipeline": []}
        runs = {
            "plain": lambda i: plain_fit(recipe, bundle),
            "pipeline": lambda i: plain_fit(recipe, bundle, pipeline=True),
            "ours": lambda i: edgekeras_train(recipe, Path(tmp) / f"run{i}"),
        }
        for i in range(args.repeats):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))  # ABC, CBA, ...
            for which in order:
                times[which].append(timed(runs[which], i))
            print(
                f"round {i + 1}: edgekeras train {times['ours'][-1]:.2f} s, plain model.fit on arrays "
                f"{times['plain'][-1]:.2f} s, on the same tf.data pipeline {times['pipeline'][-1]:.2f} s",
                file=sys.stderr,
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(o / p for o, p in zip(times["ours"], times["plain"]))
    extras = statistics.median(o / p for o, p in zip(times["ours"], times["pipeline"]))
    print(
        f"edgekeras train / plain model.fit: median ratio {ratio:.3f} (target <= 1.03); "
        f"vs model.fit on the same tf.data pipeline: {extras:.3f}"
    )
    print(
        f"  medians: edgekeras {med['ours']:.2f} s, model.fit arrays {med['plain']:.2f} s, "
        f"model.fit tf.data {med['pipeline']:.2f} s; {args.epochs} epochs of digits-cnn, "
        f"{args.repeats} interleaved rounds, {os.cpu_count()} CPU cores"
    )


if __name__ == "__main__":
    main()
