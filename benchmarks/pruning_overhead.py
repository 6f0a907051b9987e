"""Does pruning slow training down? Prints the wall time per epoch of `model.fit` with the
pruning masks and their callback (what `edgekeras prune` and a recipe's `prune:` run) next to
a plain `model.fit` on the same digits CNN, data pipeline and batch size, and their ratio.

Rounds alternate plain and pruned fits in one process (ABBA), so machine noise hits both alike; an
epoch's time is read by a callback (the first epoch, which traces the train step, is left
out), and the figure is the median over every round's epochs. Target: <= 1.15.

    python benchmarks/pruning_overhead.py [--epochs 12] [--rounds 3] [--sparsity 0.8]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def one_fit(recipe, bundle, epochs, sparsity):
    """Seconds per epoch (after the first) of one `model.fit`, pruned when `sparsity` is set."""
    import keras

    from edgekeras.models import build_model
    from edgekeras.pruning import FIELDS, start_pruning
    from edgekeras.recipe.schema import check_section
    from edgekeras.training import _compile

    keras.utils.set_random_seed(recipe.seed)
    model = build_model(recipe.model)
    _compile(model, recipe.compile)
    timer = epoch_timer()
    callbacks = [timer]
    if sparsity is not None:
        steps = -(-len(bundle.train) // bundle.batch_size) * epochs
        _, callback = start_pruning(model, check_section({"sparsity": sparsity}, FIELDS, "prune"), steps)
        callbacks.insert(0, callback)
    model.fit(
        bundle.tf_dataset(bundle.train, shuffle=True),
        validation_data=bundle.tf_dataset(bundle.validation),
        epochs=epochs,
        callbacks=callbacks,
        verbose=0,
    )
    return timer.times[1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sparsity", type=float, default=0.8)
    args = parser.parse_args()

    from edgekeras.data import load_data
    from edgekeras.quiet import quiet_tensorflow
    from edgekeras.recipe import load_recipe

    quiet_tensorflow()
    recipe = load_recipe("digits-cnn")
    bundle = load_data(recipe.data, seed=recipe.seed)
    plain, pruned = [], []
    one_fit(recipe, bundle, 2, None)  # warm up TensorFlow and the data pipeline
    for i in range(args.rounds):  # ABBA order: neither always runs first
        for kind in ("plain", "pruned")[:: 1 if i % 2 == 0 else -1]:
            if kind == "plain":
                plain += one_fit(recipe, bundle, args.epochs, None)
            else:
                pruned += one_fit(recipe, bundle, args.epochs, args.sparsity)
    p, q = statistics.median(plain), statistics.median(pruned)
    print(
        f"digits CNN, batch {bundle.batch_size}, {len(bundle.train)} samples, {args.rounds} rounds x {args.epochs} epochs"
    )
    print(f"plain model.fit        {p * 1000:8.1f} ms/epoch (median)")
    print(f"pruned ({args.sparsity:.0%}) model.fit {q * 1000:8.1f} ms/epoch (median)")
    print(f"ratio pruned / plain   {q / p:8.3f}   (target <= 1.15)")


if __name__ == "__main__":
    main()
