"""`train`: a recipe (or a Keras model plus data) to a trained model in a run folder.

The run folder gets the resolved recipe, `model.keras`, `history.csv`, training curves,
test metrics in `run.json`, the recipe's export artifacts with manifests, and `report.md`.
Training checkpoints every epoch (Keras' BackupAndRestore), so the same command run again
after a crash resumes from the last completed epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekeras.errors import InputError


@dataclass
class Run:
    """The outcome of `train`: the run folder, the trained model, its data and artifacts."""

    run_dir: object
    recipe: object
    model: object
    data: object
    history: dict = field(default_factory=dict)
    test_metrics: dict = field(default_factory=dict)
    artifacts: list = field(default_factory=list)
    resumed: bool = False

    @property
    def path(self):
        return self.run_dir.root


def _compile(model, section):
    from edgekeras.recipe.keras_objects import resolve

    optimizer = resolve(section["optimizer"], "optimizers", "compile.optimizer")
    loss = section["loss"]
    if isinstance(loss, dict) and not any(k[:1].isupper() or ":" in k for k in loss):
        loss = {k: resolve(v, "losses", f"compile.loss.{k}") for k, v in loss.items()}
    elif isinstance(loss, list):
        loss = [resolve(v, "losses", f"compile.loss[{i}]") for i, v in enumerate(loss)]
    else:
        loss = resolve(loss, "losses", "compile.loss")
    metrics = section["metrics"]
    if isinstance(metrics, list):
        metrics = [resolve(m, "metrics", f"compile.metrics[{i}]") for i, m in enumerate(metrics)]
    elif isinstance(metrics, dict):
        metrics = {k: [resolve(m, "metrics", f"compile.metrics.{k}[{i}]") for i, m in enumerate(v)]
                   for k, v in metrics.items()}
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                  loss_weights=section["loss_weights"], weighted_metrics=section["weighted_metrics"],
                  run_eagerly=section["run_eagerly"], jit_compile=section["jit_compile"],
                  steps_per_execution=section["steps_per_execution"])


def _check_data_fits(model, data):
    """A clear error when the data's shape does not match the model's input."""
    from edgekeras.model_io import input_specs

    data.train.take(1).feeds(input_specs(model))


def train(source, data=None, recipe=None, out=None, force=False, export=True):
    """Trains from a recipe, or a Keras model with data, into a run folder.

    Args:
        source: a recipe path, a shipped recipe name, a recipe dict, or a `keras.Model`.
        data: with a model: a `DataBundle`, or (x, y) / {..., 'y': ...} to split.
        recipe: with a model: the recipe sections to apply (compile, fit, export, name, ...).
        out: the run folder (default `runs/NAME-TIMESTAMP`); an unfinished one resumes.

    Returns:
        A `Run`. Raises `ValidationFailed` if an exported artifact fails validation (the
        run folder, model and all artifacts are written first).
    """
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from edgekeras.atomic import atomic_path, write_text
    from edgekeras.data import DataBundle, load_data
    from edgekeras.data.coerce import as_split
    from edgekeras.models import build_model
    from edgekeras.plots import plot_training_curves, read_history
    from edgekeras.progress import notice
    from edgekeras.recipe import load_recipe
    from edgekeras.recipe.keras_objects import resolve
    from edgekeras.run_dir import prepare_run_dir

    live_model = source if isinstance(source, keras.Model) else None
    if live_model is not None:
        spec = dict(recipe or {})
        spec.setdefault("name", live_model.name or "model")
        spec.setdefault("model", {"type": "file", "path": "<in memory>"})
        spec.setdefault("compile", {"loss": "<compiled>"})
        recipe = load_recipe(spec)
    else:
        recipe = load_recipe(source)

    keras.utils.set_random_seed(recipe.seed)
    if data is None:
        bundle = load_data(recipe.data, seed=recipe.seed)
    elif isinstance(data, DataBundle):
        bundle = data
    else:
        split = as_split(data, "training data")
        if split.y is None:
            raise InputError("Expected labelled training data. Received: inputs without 'y'.")
        d = recipe.data
        bundle = DataBundle.from_arrays(split.x, split.y, d["validation_split"], d["test_split"],
                                        d["batch_size"], recipe.seed)

    if live_model is not None:
        model = live_model
        if recipe.compile["loss"] != "<compiled>":
            _compile(model, recipe.compile)
        elif not getattr(model, "compiled", False):
            raise InputError("Expected a compiled keras.Model or a recipe 'compile' section. Received: neither.")
    else:
        model = build_model(recipe.model)
        _compile(model, recipe.compile)
    _check_data_fits(model, bundle)

    fit = recipe.fit
    callbacks = [resolve(cb, "callbacks", f"fit.callbacks[{i}]") for i, cb in enumerate(fit["callbacks"])]

    # Only now, with the recipe, data, model and callbacks known to be good, touch the disk.
    run_dir, resumed = prepare_run_dir(recipe.name, out, force)
    if resumed:
        notice(f"Resuming the unfinished run in {run_dir.root} (delete it or pass --force to start over)")
    write_text(run_dir.recipe, recipe.to_yaml(), force=True)
    run_dir.write_state(status="training", name=recipe.name)
    from edgekeras.callbacks.backup import AtomicBackupAndRestore, restored_epoch
    from edgekeras.callbacks.epoch_progress import EpochProgress

    if resumed:
        _trim_history(run_dir.history, restored_epoch(run_dir.backup))
    callbacks += [
        AtomicBackupAndRestore(str(run_dir.backup)),  # before the logger: checkpoint, then log
        keras.callbacks.CSVLogger(str(run_dir.history), append=resumed),
        EpochProgress(fit["epochs"]),
    ]
    train_ds = bundle.tf_dataset(bundle.train, shuffle=fit["shuffle"])
    val_ds = bundle.tf_dataset(bundle.validation) if bundle.validation is not None else None
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=fit["epochs"], callbacks=callbacks,
                  class_weight=_class_weight(fit["class_weight"]), validation_freq=fit["validation_freq"],
                  shuffle=False, verbose=0)  # the tf.data pipeline shuffles
    except (ValueError, TypeError) as e:
        _discard_if_empty(run_dir, resumed)
        raise InputError(
            f"Training failed on the recipe's model and data: {str(e).strip().splitlines()[0]} "
            "Check that model.layers' output and compile.loss match the labels."
        ) from None

    with atomic_path(run_dir.model, force=True, suffix=".keras") as tmp:
        model.save(tmp)
    test_metrics = {}
    if bundle.test is not None:
        test_metrics = model.evaluate(bundle.tf_dataset(bundle.test), verbose=0, return_dict=True)
        test_metrics = {k: float(v) for k, v in test_metrics.items()}
    history = read_history(run_dir.history) if run_dir.history.exists() else {}
    plot_training_curves(run_dir.history, run_dir.curves) if history else None
    run_dir.write_state(status="done", epochs=len(history.get("epoch", [])), test_metrics=test_metrics)
    run = Run(run_dir, recipe, model, bundle, history, test_metrics, resumed=resumed)

    if export and recipe.export["formats"] and recipe.export["precisions"]:
        from edgekeras.conversion import ValidationFailed, convert
        from edgekeras.report import write_report

        try:
            run.artifacts = convert(
                run_dir.model, formats=recipe.export["formats"], precisions=recipe.export["precisions"],
                calibration=bundle.calibration(recipe.export["calibration_samples"]),
                data=bundle.test if bundle.test is not None else None,
                out=run_dir.artifacts, force=True, validate=recipe.export["validate"], name=recipe.name,
            )
        except ValidationFailed as e:
            run.artifacts = e.artifacts
            write_report(run_dir.root)
            raise
        write_report(run_dir.root)
    return run


def _trim_history(history, epochs_done):
    """Keeps the history rows of the epochs the checkpoint holds (a kill can land between the
    checkpoint and the log line, or in the middle of a line)."""
    import csv

    if not history.exists():
        return
    with open(history, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit()
                        and int(r[0]) < epochs_done]
    from edgekeras.atomic import write_text
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(kept)
    write_text(history, buf.getvalue(), force=True)


def _discard_if_empty(run_dir, resumed):
    """A new run that failed before finishing an epoch leaves no folder behind."""
    import shutil

    if not resumed and not (run_dir.history.exists() and len(run_dir.history.read_text().splitlines()) > 1):
        shutil.rmtree(run_dir.root, ignore_errors=True)


def _class_weight(value):
    return {int(k): float(v) for k, v in value.items()} if value else None
