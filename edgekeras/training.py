"""`train`: a recipe (or a Keras model plus data) to a trained model in a run folder.

The run folder gets the resolved recipe, `model.keras` (and the other forms `fit.save`
asks for), `history.csv`, training curves, `model.png`, TensorBoard logs in `tensorboard/`,
test metrics, precision and custom objects in `run.json`, the recipe's export artifacts
with manifests, and `report.md`. Training checkpoints every epoch (Keras'
BackupAndRestore), so the same command run again after a crash resumes from the last
completed epoch. Under `precision: mixed_float16`/`mixed_bfloat16` the model computes in 16
bits and keeps float32 inputs and outputs; the global dtype policy is restored afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekeras.data.labels import fit_split
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
    qat_model: object = None  # the quantization-aware copy (recipe `qat:`), if any

    @property
    def path(self):
        return self.run_dir.root


def _compile(model, section):
    """Compiles `model` with the recipe's `compile:` section, every object built from it."""
    from edgekeras.recipe.keras_objects import resolve

    optimizer = resolve(section["optimizer"], "optimizers", "compile.optimizer")
    loss = section["loss"]
    if isinstance(loss, dict) and not any(k[:1].isupper() or ":" in k for k in loss):
        loss = {k: resolve(v, "losses", f"compile.loss.{k}") for k, v in loss.items()}
    elif isinstance(loss, list):
        loss = [resolve(v, "losses", f"compile.loss[{i}]") for i, v in enumerate(loss)]
    else:
        loss = resolve(loss, "losses", "compile.loss")
    metrics, weighted = (_metrics(section[key], f"compile.{key}") for key in ("metrics", "weighted_metrics"))
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        loss_weights=section["loss_weights"],
        weighted_metrics=weighted,
        run_eagerly=section["run_eagerly"],
        jit_compile=section["jit_compile"],
        steps_per_execution=section["steps_per_execution"],
    )


def _metrics(specs, path):
    """A metrics list (or {output: list}) from the recipe, with stable names (resolve_metrics)."""
    from edgekeras.recipe.keras_objects import resolve_metrics

    if isinstance(specs, list):
        return resolve_metrics(specs, path)
    if isinstance(specs, dict) and not any(k[:1].isupper() or ":" in k or k == "class_name" for k in specs):
        return {k: resolve_metrics(v if isinstance(v, list) else [v], f"{path}.{k}") for k, v in specs.items()}
    return specs


def _check_data_fits(model, data):
    """A clear error when the data's shape does not match the model's input; a single-input
    model's data given as {'x': array} is bound to the input (as `Split.feeds` does)."""
    from edgekeras.data.bundle import DatasetSplit
    from edgekeras.model_io import input_specs

    specs = input_specs(model)
    data.train.take(1).feeds(specs)
    if len(specs) == 1:
        for split in (data.train, data.validation, data.test):
            if (
                split is not None
                and not isinstance(split, DatasetSplit)
                and isinstance(split.x, dict)
                and set(split.x) == {"x"}
                and specs[0].name != "x"
            ):
                split.x = split.x["x"]


def train(source, data=None, recipe=None, out=None, force=False, export=True):
    """Trains from a recipe, or a Keras model with data, into a run folder.

    Args:
        source: a recipe path, a shipped recipe name, a recipe dict, or a `keras.Model`.
        data: with a model: a `DataBundle`, or (x, y) / {..., 'y': ...} to split; per-sample
            loss weights as (x, y, sample_weight) or a 'sample_weight' array in the dict.
        recipe: with a model: the recipe sections to apply (compile, fit, export, name, ...).
        out: the run folder (default `runs/NAME-TIMESTAMP`); an unfinished one resumes.

    Returns:
        A `Run`. Raises `ValidationFailed` if an exported artifact fails validation (the
        run folder, model and all artifacts are written first).
    """
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from edgekeras.data import DataBundle, bundle_arrays, load_data
    from edgekeras.data.coerce import as_split
    from edgekeras.models.custom_objects import importable_from
    from edgekeras.models.precision import global_policy
    from edgekeras.recipe import load_recipe

    live_model = source if isinstance(source, keras.Model) else None
    if live_model is not None:
        spec = dict(recipe or {})
        spec.setdefault("name", live_model.name or "model")
        model_section = dict(spec.get("model") or {})  # e.g. {unsafe: true} for a lambda's code
        if "type" not in model_section:
            model_section = {"type": "file", "path": "<in memory>", **model_section}
        spec["model"] = model_section
        spec.setdefault("compile", {"loss": "<compiled>"})
        recipe = load_recipe(spec)
    else:
        recipe = load_recipe(source)

    keras.utils.set_random_seed(recipe.seed)
    if data is None:
        bundle = load_data(recipe.data, seed=recipe.seed, base_dir=recipe.path.parent if recipe.path else None)
    elif isinstance(data, DataBundle):
        bundle = data
    else:
        data, sample_weight = _pop_sample_weight(data)
        split = as_split(data, "training data") if live_model is None else fit_split(live_model, data)
        if split.y is None:
            raise InputError("Expected labelled training data. Received: inputs without 'y'.")
        if sample_weight is not None:  # split along with the labels, taken out again below
            split.y = {_LABELS: split.y, _WEIGHTS: _check_sample_weight(sample_weight, len(split))}
        bundle = bundle_arrays(split.x, split.y, recipe.data, recipe.seed)
    weights = _unpack_sample_weight(bundle)

    base_dir = recipe.path.parent if recipe.path else None
    export = bool(export and recipe.export["formats"] and recipe.export["precisions"])
    with importable_from(Path.cwd(), base_dir), global_policy(recipe.precision):
        run = _fit(recipe, bundle, live_model, weights, base_dir, out, force, export)
        if recipe.qat is not None:
            _quantize_aware(run)
    if export:
        _export(run)
    return run


def _fit(recipe, bundle, live_model, weights, base_dir, out, force, export=False):
    """Builds, checks and trains the model into a new (or resumed) run folder; returns a Run.

    `export`: the run will be converted afterwards, so a model that could not be reloaded
    for it is refused before training."""
    import keras

    from edgekeras.atomic import write_text
    from edgekeras.callbacks import has_callback, place_in_run
    from edgekeras.models import build_model
    from edgekeras.models.precision import apply_policy
    from edgekeras.progress import notice
    from edgekeras.recipe.keras_objects import resolve
    from edgekeras.run_dir import prepare_run_dir

    if live_model is not None:
        model = live_model
        if recipe.compile["loss"] != "<compiled>":
            _compile(model, recipe.compile)
        elif not getattr(model, "compiled", False):
            raise InputError("Expected a compiled keras.Model or a recipe 'compile' section. Received: neither.")
    else:
        from edgekeras.model_io import safe_mode_scope

        with safe_mode_scope(not recipe.model.get("unsafe")):  # the policy rebuild deserializes again
            model = apply_policy(build_model(recipe.model, base_dir), recipe.precision)
        _compile(model, recipe.compile)
    _check_data_fits(model, bundle)
    _check_labels(model, recipe, bundle)
    if export:
        _check_reloadable(model, recipe)
    custom_objects = _custom_objects(recipe, model)

    fit = recipe.fit
    callbacks = [resolve(cb, "callbacks", f"fit.callbacks[{i}]") for i, cb in enumerate(fit["callbacks"])]
    from edgekeras.callbacks.learning_rate import check_settable_learning_rate

    check_settable_learning_rate(
        callbacks, [f"fit.callbacks[{i}]" for i in range(len(callbacks))], model.optimizer, _learning_rate_path(recipe)
    )

    # Only now, with the recipe, data, model and callbacks known to be good, touch the disk.
    run_dir, resumed = prepare_run_dir(recipe.name, out, force)
    if resumed:
        notice(f"Resuming the unfinished run in {run_dir.root} (delete it or pass --force to start over)")
    write_text(run_dir.recipe, recipe.to_yaml(), force=True)
    bundle.save_assets(run_dir.root)  # data.json (class names, ...) and e.g. vectorizer.json
    run_dir.write_state(
        status="training",
        name=recipe.name,
        precision=recipe.precision,
        unsafe=bool(recipe.model.get("unsafe")),
        custom_objects=custom_objects,
        import_paths=[str(Path(p).resolve()) for p in (Path.cwd(), base_dir) if p],
    )
    from edgekeras.callbacks.backup import AtomicBackupAndRestore, restored_epoch
    from edgekeras.callbacks.epoch_progress import EpochProgress

    callbacks, backup = place_in_run(callbacks, run_dir.root)
    backup_dir, delete_backup = backup or (run_dir.backup, True)
    if resumed:
        _trim_history(run_dir.history, restored_epoch(backup_dir))
    if not has_callback(callbacks, "TensorBoard"):
        from edgekeras.callbacks.tensorboard import EpochTensorBoard

        callbacks.append(EpochTensorBoard(str(run_dir.tensorboard)))
    callbacks += [
        AtomicBackupAndRestore(str(backup_dir), delete_checkpoint=delete_backup),  # checkpoint, then log
        keras.callbacks.CSVLogger(str(run_dir.history), append=resumed),
        EpochProgress(fit["epochs"]),
    ]
    train_ds = _dataset(bundle, bundle.train, weights, shuffle=fit["shuffle"])
    val_ds = _dataset(bundle, bundle.validation, weights) if bundle.validation is not None else None
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=fit["epochs"],
            callbacks=callbacks,
            class_weight=_class_weight(fit["class_weight"]),
            validation_freq=fit["validation_freq"],
            shuffle=False,
            verbose=0,
        )  # the tf.data pipeline shuffles
    except InputError:  # e.g. a checkpoint that does not fit the model (callbacks.backup)
        raise
    except (ValueError, TypeError) as e:
        _discard_if_empty(run_dir, resumed)
        raise InputError(
            f"Training failed on the recipe's model and data: {_keras_reason(e)} "
            "Check that model.layers' output and compile.loss match the labels."
        ) from None

    from concurrent.futures import ThreadPoolExecutor

    from edgekeras.models.diagram import write_model_png
    from edgekeras.plots import plot_training_curves, read_history

    history = read_history(run_dir.history) if run_dir.history.exists() else {}
    with ThreadPoolExecutor(1) as pool:  # the curves draw while TensorFlow saves and evaluates
        curves = pool.submit(plot_training_curves, run_dir.history, run_dir.curves) if history else None
        saved = _save(model, run_dir.root, fit["save"])
        test_metrics = {}
        if bundle.test is not None:
            test_metrics = model.evaluate(_dataset(bundle, bundle.test, weights), verbose=0, return_dict=True)
            test_metrics = {k: float(v) for k, v in test_metrics.items()}
        write_model_png(model, run_dir.root / "model.png")
        if curves is not None:
            curves.result()  # its error, if any, is raised here
    run_dir.write_state(status="done", epochs=len(history.get("epoch", [])), test_metrics=test_metrics, saved=saved)
    return Run(run_dir, recipe, model, bundle, history, test_metrics, resumed=resumed)


def _quantize_aware(run):
    """The recipe's `qat:` step: a quantization-aware copy of the trained model, fine-tuned on
    the training split, saved as model-qat.keras with its test metrics in run.json."""
    from edgekeras.model_io import input_specs, save_model
    from edgekeras.progress import notice
    from edgekeras.qat import quantize_aware

    recipe, bundle, run_dir = run.recipe, run.data, run.run_dir
    notice(f"Quantization-aware fine-tuning: {recipe.qat['epochs']} epochs")
    model = quantize_aware(
        run.model,
        bundle.train,
        epochs=recipe.qat["epochs"],
        learning_rate=recipe.qat["learning_rate"],
        batch_size=recipe.data["batch_size"],
        validation_data=bundle.validation,
    )
    save_model(model, run_dir.qat_model, force=True)
    metrics = {}
    if bundle.test is not None:
        x = bundle.test.feeds(input_specs(model), what="test data")
        result = model.evaluate(x if len(x) > 1 else next(iter(x.values())), bundle.test.y, verbose=0, return_dict=True)
        metrics = {k: float(v) for k, v in result.items()}
    run_dir.write_state(qat={**recipe.qat, "test_metrics": metrics})
    run.qat_model = model


def _export(run):
    """Converts the run's model as the recipe's `export:` section says, and writes the report.

    With a `qat:` section the precisions a quantization-aware model converts to (int8) come
    from model-qat.keras, named `<name>-qat`, the others from the float model.
    The run folder's model reloads with safe_mode off when the recipe set `model.unsafe`
    (the user's own recipe, in this process: the trust `--unsafe` gives on the command line).
    """
    from edgekeras.conversion import ValidationFailed, convert
    from edgekeras.precisions import PRECISIONS
    from edgekeras.reporting import write_report

    recipe, bundle, run_dir = run.recipe, run.data, run.run_dir
    precisions = recipe.export["precisions"]
    simulated = [p for p in precisions if recipe.qat is not None and PRECISIONS[p].takes_quantization_aware]
    jobs = [
        (run_dir.root, [p for p in precisions if p not in simulated], recipe.name),
        (run_dir.qat_model, simulated, f"{recipe.name}-qat"),
    ]
    run.artifacts, errors = [], []
    for model, chosen, name in jobs:
        if not chosen:
            continue
        try:
            run.artifacts += convert(
                model,
                formats=recipe.export["formats"],
                precisions=chosen,
                calibration=bundle.calibration(recipe.export["calibration_samples"]),
                data=bundle.test if bundle.test is not None else None,
                out=run_dir.artifacts,
                force=True,
                validate=recipe.export["validate"],
                name=name,
                safe_mode=not recipe.model.get("unsafe", False),
            )
        except ValidationFailed as e:
            run.artifacts += e.artifacts
            errors += e.errors
    write_report(run_dir.root)
    if errors:
        raise ValidationFailed(run.artifacts, errors)


# Forms `fit.save` may ask for -> file (or folder) name in the run folder.
SAVE_NAMES = {"keras": "model.keras", "h5": "model.h5", "saved_model": "saved_model", "weights": "model.weights.h5"}


def _save(model, root, forms):
    """Saves the model in every form asked (model.keras always); returns their file names."""
    from edgekeras.atomic import write_text
    from edgekeras.model_io import save_model

    names = []
    for form in ["keras"] + [f for f in forms if f != "keras"]:
        save_model(model, root / SAVE_NAMES[form], force=True)
        names.append(SAVE_NAMES[form])
        if form == "weights":  # the architecture a weights file reloads into (--architecture)
            write_text(root / "model.json", model.to_json(indent=2) + "\n", force=True)
            names.append("model.json")
    return names


def _check_labels(model, recipe, bundle):
    """The loss of each output fits its labels (see loss_check); errors name the recipe key."""
    from edgekeras.loss_check import SAMPLE, check_loss_fits
    from edgekeras.models.sequential import output_layer_path

    loss = recipe.compile["loss"]
    if loss == "<compiled>":
        loss = getattr(model, "loss", None)
    if loss is None:
        return
    paths = None
    if recipe.model.get("type") == "sequential":
        from edgekeras.model_io import output_names

        paths = {output_names(model)[0]: output_layer_path(recipe.model)}
    from edgekeras.data import DatasetSplit

    train = bundle.train  # arrays: every label; a streamed split: the first SAMPLE samples
    labels = train.take(SAMPLE, seed=bundle.seed).y if isinstance(train, DatasetSplit) else train.y
    check_loss_fits(model, loss, labels, paths)


def _check_reloadable(model, recipe):
    """A model whose lambda code reloads only with safe_mode off needs `model.unsafe: true`
    before it is exported; said before training rather than after it."""
    from edgekeras.model_io import layers_needing_unsafe

    if recipe.model.get("unsafe"):
        return
    names = layers_needing_unsafe(model)
    if names:
        raise InputError(
            f"Expected 'model.unsafe: true' for a model whose layer(s) {', '.join(map(repr, names))} hold an "
            "anonymous lambda: Keras saves its bytecode, and reloads it for export only with safe_mode off. "
            "Received: 'model.unsafe' unset. Set 'model.unsafe: true' if you trust the code, use a named "
            "function registered with @keras.saving.register_keras_serializable, or train with --no-export "
            "and convert with 'edgekeras convert RUN_DIR --unsafe'."
        )


def _learning_rate_path(recipe):
    """The recipe path of the optimizer's learning rate (for errors), or a description."""
    from edgekeras.recipe.keras_objects import is_short_form

    optimizer = recipe.compile["optimizer"]
    if recipe.compile["loss"] == "<compiled>":
        return "the compiled model's optimizer learning_rate"
    if is_short_form(optimizer):
        return f"compile.optimizer.{next(iter(optimizer))}.learning_rate"
    if isinstance(optimizer, dict) and "class_name" in optimizer:
        return "compile.optimizer.config.learning_rate"
    return "compile.optimizer"


def _custom_objects(recipe, model):
    """`module:name` of every custom object the recipe names or the model holds (for run.json)."""
    from edgekeras.models.custom_objects import custom_classes_in, refs_in

    sections = [recipe.model, recipe.compile, recipe.fit]
    named = refs_in(sections) + list(recipe.model.get("custom_objects") or [])
    return list(dict.fromkeys(named + custom_classes_in(model)))


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
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) < epochs_done]
    import io

    from edgekeras.atomic import write_text

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(kept)
    write_text(history, buf.getvalue(), force=True)


def _discard_if_empty(run_dir, resumed):
    """A new run that failed before finishing an epoch leaves no folder behind."""
    import shutil

    if not resumed and not (run_dir.history.exists() and len(run_dir.history.read_text().splitlines()) > 1):
        shutil.rmtree(run_dir.root, ignore_errors=True)


def _keras_reason(error):
    """The informative line of a Keras error (not 'Exception encountered when calling ...')."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    return lines[0] if lines else type(error).__name__


def _class_weight(value):
    return {int(k): float(v) for k, v in value.items()} if value else None


# Per-sample loss weights ride along with the labels while the data is split.
_LABELS, _WEIGHTS = "__labels__", "__sample_weight__"


def _pop_sample_weight(data):
    """(data without sample weights, sample weights or None) from what `train` was given."""
    if isinstance(data, tuple) and len(data) == 3:
        return data[:2], data[2]
    if isinstance(data, dict) and "sample_weight" in data:
        data = dict(data)
        return data, data.pop("sample_weight")
    return data, None


def _check_sample_weight(weights, n):
    import numpy as np

    weights = np.asarray(weights, dtype="float32")
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InputError(
            f"Expected sample_weight as {n} finite, non-negative numbers (one per sample). Received: an "
            f"array of shape {weights.shape}{'' if weights.shape != (n,) else ' with negative or NaN values'}."
        )
    return weights


def _unpack_sample_weight(bundle):
    """Takes the sample weights out of each split's labels: {split name: weights} or None."""
    first = bundle.train.y
    if not (isinstance(first, dict) and _WEIGHTS in first):
        return None
    weights = {}
    for name in ("train", "validation", "test"):
        split = getattr(bundle, name)
        if split is not None:
            weights[name] = split.y[_WEIGHTS]
            split.y = split.y[_LABELS]
    return weights


def _dataset(bundle, split, weights, shuffle=False):
    """The bundle's tf.data pipeline for `split`, yielding (x, y, sample_weight) with weights."""
    name = bundle.split_name(split)
    if weights is None or name not in weights:
        return bundle.tf_dataset(split, shuffle=shuffle)
    from edgekeras.data import Split

    weighted = Split(split.x, (split.y, weights[name]))
    ds = bundle.tf_dataset(weighted, shuffle=shuffle, training=name == "train")
    return ds.map(lambda x, yw: (x, yw[0], yw[1]))
