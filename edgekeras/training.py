"""`train`: a recipe (or a Keras model plus data) to a trained model in a run folder.

The run folder gets the resolved recipe, `model.keras` (and the other forms `fit.save`
asks for), `history.csv`, training curves, `model.png`, TensorBoard logs in `tensorboard/`,
test metrics, precision, custom objects and the layers adapted to the data in `run.json`,
the recipe's export artifacts with manifests, and `report.md`. Training checkpoints every
epoch (Keras' BackupAndRestore), so the same command run again after a crash resumes from
the last completed epoch. Under `precision: mixed_float16`/`mixed_bfloat16` the model
computes in 16 bits and keeps float32 inputs and outputs; the global dtype policy is
restored afterwards.

`train` first makes a `TrainingPlan` (what to build, compile and fit; nothing is built,
loaded or written), then executes it (`run_plan`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from edgekeras.adaptation import adapt_layers
from edgekeras.atomic import write_text
from edgekeras.callbacks import has_callback, place_in_run
from edgekeras.callbacks.learning_rate import check_settable_learning_rate
from edgekeras.data import DataBundle, DatasetSplit, bundle_arrays, load_data
from edgekeras.data.coerce import as_split
from edgekeras.data.labels import fit_split
from edgekeras.data.sample_weights import pop_sample_weight, unpack_sample_weight, weighted_dataset, with_sample_weight
from edgekeras.distribute import DistributionPlan, plan_distribution, start_distribution, worker_folder
from edgekeras.errors import InputError
from edgekeras.kfold.run import cross_validate
from edgekeras.loss_check import SAMPLE, check_loss_fits
from edgekeras.model_io import input_specs, layers_needing_unsafe, output_names, save_model
from edgekeras.models import build_model
from edgekeras.models.custom_objects import custom_classes_in, importable_from, refs_in
from edgekeras.models.diagram import write_model_png
from edgekeras.models.precision import apply_policy, global_policy
from edgekeras.models.safe_mode import safe_mode_scope
from edgekeras.models.sequential import output_layer_path
from edgekeras.plots import plot_training_curves, read_history
from edgekeras.progress import notice
from edgekeras.pruning import start_pruning
from edgekeras.quiet import quiet_tensorflow
from edgekeras.recipe import COMPILE_FIELDS, Recipe, load_recipe
from edgekeras.recipe.keras_objects import is_short_form, resolve, resolve_metrics
from edgekeras.run_folder import RunFolder
from edgekeras.run_folder import prepare_run_folder as prepare_run_dir
from edgekeras.training_steps import export_step, quantize_aware_step

if TYPE_CHECKING:
    import keras

    from edgekeras.artifact import Artifact
    from edgekeras.data.coerce import DataLike
    from edgekeras.distribute import Distribution
    from edgekeras.hints import PathLike
    from edgekeras.recipe import RecipeSource

# Training data for a model passed in memory (`train`): a `DataBundle` (splits), or data to
# split: (x, y), (x, y, sample_weight), {..., 'y': ..., 'sample_weight': ...}.
TrainingData: TypeAlias = "DataBundle | DataLike | tuple[Any, ...]"

# Forms `fit.save` may ask for -> file (or folder) name in the run folder.
SAVE_NAMES = {"keras": "model.keras", "h5": "model.h5", "saved_model": "saved_model", "weights": "model.weights.h5"}


@dataclass
class Run:
    """The outcome of `train`: the run folder, the trained model, its data and artifacts."""

    run_dir: RunFolder
    recipe: Recipe
    model: keras.Model  # the trained model
    data: DataBundle  # its splits
    history: dict[str, list[Any]] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    resumed: bool = False
    distribution: Distribution | None = None  # the tf.distribute strategy it trained under (recipe `strategy:`)
    qat_model: keras.Model | None = None  # the quantization-aware copy (recipe `qat:`), if any
    adapted: list[dict[str, Any]] = field(default_factory=list)  # [{layer, class, samples}] adapted before fitting

    @property
    def path(self) -> Path:
        return self.run_dir.root


@dataclass(frozen=True)
class TrainingPlan:
    """What `train` builds, compiles and fits, decided before anything is built, loaded or written.

    `recipe` is the validated recipe. A model passed in memory is `model` (trained in place)
    and its recipe's `model` section names the run folder's `model.keras`, the trained copy;
    with `own_compile` it keeps the compile() settings its caller gave it, which the recipe's
    `compile` section records. `data` is what was passed in memory (a `DataBundle`, arrays),
    or None to load `recipe.data`. `out` and `force` choose the run folder: an unfinished one
    there (or under runs/NAME-*) resumes from its checkpoint, `force` starts over.
    `distribution` is the recipe's `strategy:` in this process (TF_CONFIG read and checked):
    a multi-worker process that is not the chief trains into a temporary folder, resumes from
    the chief's checkpoint in `out`, and exports nothing.
    """

    recipe: Recipe
    model: keras.Model | None = None  # passed in memory; None: build `recipe.model`
    own_compile: bool = False
    data: TrainingData | None = None
    out: PathLike | None = None
    force: bool = False
    export: bool = False  # convert the trained model as `recipe.export` says
    distribution: DistributionPlan = field(default_factory=DistributionPlan)

    @property
    def epochs(self) -> int:
        return self.recipe.fit["epochs"]

    @property
    def callbacks(self) -> list[Any]:
        """The recipe's own callbacks (specs); edgekeras adds its own at execution."""
        return self.recipe.fit["callbacks"]

    @property
    def base_dir(self) -> Path | None:
        """The recipe's folder (relative paths and imports are also looked for there)."""
        return self.recipe.path.parent if self.recipe.path else None


def train(
    source: RecipeSource | keras.Model,
    data: TrainingData | None = None,
    recipe: dict[str, Any] | None = None,
    out: PathLike | None = None,
    force: bool = False,
    export: bool = True,
) -> Run:
    """Trains from a recipe, or a Keras model with data, into a run folder.

    Args:
        source: a recipe path, a shipped recipe name, a recipe dict, or a `keras.Model`.
        data: with a model: a `DataBundle`, or (x, y) / {..., 'y': ...} to split; per-sample
            loss weights as (x, y, sample_weight) or a 'sample_weight' array in the dict.
        recipe: with a model: the recipe sections to apply (compile, fit, export, name, ...);
            without `compile` the model keeps its own compile() settings.
        out: the run folder (default `runs/NAME-TIMESTAMP`); an unfinished one resumes.

    Returns:
        A `Run`. Raises `ValidationFailed` if an exported artifact fails validation (the
        run folder, model and all artifacts are written first).
    """
    quiet_tensorflow()
    return run_plan(plan_training(source, data, recipe, out, force, export))


def plan_training(
    source: RecipeSource | keras.Model,
    data: TrainingData | None = None,
    recipe: dict[str, Any] | None = None,
    out: PathLike | None = None,
    force: bool = False,
    export: bool = True,
) -> TrainingPlan:
    """The `TrainingPlan` for `train`'s arguments: the recipe loaded and checked; no model
    is built, no data loaded, nothing written."""
    model = _live_model(source)
    if model is None:
        loaded, own_compile = load_recipe(source), False
    else:
        loaded, own_compile = _recipe_for_model(model, recipe)
        if loaded.strategy != "default":
            raise InputError(
                f"Expected a recipe to build the model for 'strategy: {loaded.strategy}' (it must be built inside "
                "strategy.scope()). Received: a keras.Model passed in memory, built outside it. Describe the model "
                "in the recipe's 'model' section (type: file for a saved one), or leave 'strategy' out."
            )
    if loaded.kfold is not None and loaded.strategy == "multi_worker":
        raise InputError(
            "Expected 'kfold' without 'strategy: multi_worker' (every worker would write the folds' files). "
            "Received: both. Cross-validate with strategy default or mirrored."
        )
    export = bool(export and loaded.export["formats"] and loaded.export["precisions"])
    return TrainingPlan(loaded, model, own_compile, data, out, force, export, plan_distribution(loaded.strategy))


def _live_model(source: RecipeSource | keras.Model) -> keras.Model | None:
    """`source` if it is a `keras.Model`, else None (a recipe)."""
    if isinstance(source, (str, Path, dict, Recipe)):
        return None
    import keras

    return source if isinstance(source, keras.Model) else None


def _recipe_for_model(model: keras.Model, sections: dict[str, Any] | None) -> tuple[Recipe, bool]:
    """(recipe, own_compile) for a model passed in memory with the recipe `sections` given."""
    spec = dict(sections or {})
    spec.setdefault("name", model.name or "model")
    section = dict(spec.get("model") or {})  # e.g. {unsafe: true} for a lambda's code
    if "type" not in section:
        section = {"type": "file", "path": SAVE_NAMES["keras"], **section}
    spec["model"] = section
    own_compile = spec.get("compile") is None
    if own_compile:
        if not getattr(model, "compiled", False):
            raise InputError("Expected a compiled keras.Model or a recipe 'compile' section. Received: neither.")
        spec["compile"] = _compile_section(model)
    return load_recipe(spec), own_compile


def _compile_section(model):
    """The model's own compile() settings as a recipe `compile` section (Keras' serialized form)."""
    config = {k: v for k, v in model.get_compile_config().items() if k in COMPILE_FIELDS and v is not None}
    # numpy values become lists; anything else Keras could not serialize is written as its repr
    return json.loads(json.dumps(config, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v)))


def run_plan(plan: TrainingPlan) -> Run:
    """Executes a `TrainingPlan`: loads the data, builds (or takes), adapts and trains the
    model in its run folder (or, with `kfold:`, one per fold and the final one), then the
    recipe's `qat:` step (in the strategy's scope) and `export:` step (on the chief only,
    under a multi-worker strategy).
    Returns a `Run`."""
    distribution = start_distribution(plan.distribution, plan.out)  # once, before TensorFlow runs anything
    train_once = partial(_train_once, distribution=distribution)
    run = _cross_validate(plan, train_once) if plan.recipe.kfold is not None else train_once(plan)
    if plan.export and distribution.is_chief:
        export_step(run)
    return run


def _train_once(plan, distribution):
    """One model trained as the plan says (the recipe's `qat:` step included), not exported."""
    import keras

    keras.utils.set_random_seed(plan.recipe.seed)
    bundle, weights = _load_bundle(plan)
    distribution.check_batch_size(bundle.batch_size)
    with (
        worker_folder(plan.distribution) as scratch,
        importable_from(Path.cwd(), plan.base_dir),
        global_policy(plan.recipe.precision),
    ):
        if scratch is not None:  # not the chief: its copy of the run folder is temporary
            plan = replace(plan, out=scratch / "run", force=False)
        run = _fit(plan, bundle, weights, distribution)
    return run


def _cross_validate(plan, train_once):
    """K-fold cross-validation (`edgekeras.kfold`): each fold and the final model trained by
    `_train_once`; the Run is the run folder's final model with the recipe's data."""
    if plan.model is not None:
        raise InputError(
            "Expected a recipe with a 'model' section for 'kfold' (each fold builds a fresh model). Received: "
            "a keras.Model passed in memory. Train it with a recipe file, or without kfold."
        )
    bundle, weights = _load_bundle(plan)
    if weights is not None:
        raise InputError("Expected no sample_weight with 'kfold'. Received: per-sample weights.")
    root = cross_validate(plan, bundle, train_once)
    with importable_from(Path.cwd(), plan.base_dir):
        model = root.load_model(safe_mode=not plan.recipe.model.get("unsafe"), float32=False).model
    history = read_history(root.history) if root.history.exists() else {}
    return Run(root, plan.recipe, model, bundle, history=history, test_metrics=root.state.get("test_metrics") or {})


def _load_bundle(plan):
    """(DataBundle, {split name: sample weights} or None) for the plan's data."""
    recipe, data = plan.recipe, plan.data
    if data is None:
        bundle = load_data(recipe.data, seed=recipe.seed, base_dir=plan.base_dir)
    elif isinstance(data, DataBundle):
        bundle = data
    else:
        data, sample_weight = pop_sample_weight(data)
        split = as_split(data, "training data") if plan.model is None else fit_split(plan.model, data)
        if split.y is None:
            raise InputError("Expected labelled training data. Received: inputs without 'y'.")
        if sample_weight is not None:  # split along with the labels, taken out again below
            split.y = with_sample_weight(split.y, sample_weight, len(split))
        bundle = bundle_arrays(split.x, split.y, recipe.data, recipe.seed)
    return bundle, unpack_sample_weight(bundle)


def _fit(plan, bundle, weights, distribution):
    """Builds, checks, adapts and trains the model into a new (or resumed) run folder, all in
    the distribution's scope.

    With `plan.export` a model that could not be reloaded for export is refused before
    training. Preprocessing layers are adapted before the checkpoint of a resumed run is
    restored (at the start of `fit`), so restored statistics win over the new ones.

    The recipe's `qat:` step runs in the same scope, on every worker (its fine-tuning is a
    collective under a multi-worker strategy; a worker that is not the chief writes into its
    temporary folder), so its FakeQuant ranges and masks are distributed variables too."""
    with distribution.scope():
        run = _fit_in_scope(plan, bundle, weights, distribution)
        if plan.recipe.qat is not None:
            quantize_aware_step(run)
    return run


def _fit_in_scope(plan, bundle, weights, distribution):
    model = _compiled_model(plan)
    _check_data_fits(model, bundle)
    _check_labels(model, plan, bundle)
    if plan.export:
        _check_reloadable(model, plan.recipe)
    callbacks = _recipe_callbacks(plan, model)
    steps = -(-len(bundle.train) // bundle.batch_size) * plan.epochs
    pruning = start_pruning(model, plan.recipe.prune, steps) if plan.recipe.prune is not None else None
    adapted = adapt_layers(model, bundle.train, bundle.batch_size)
    # Only now, with the recipe, data, model and callbacks known to be good, touch the disk.
    run_dir, resumed = _open_run_dir(plan, model, bundle, adapted, distribution)
    run = Run(run_dir, plan.recipe, model, bundle, resumed=resumed, adapted=adapted, distribution=distribution)
    _fit_model(run, weights, _run_callbacks(plan, callbacks, run_dir, resumed, pruning, distribution))
    if pruning is not None:  # the saved model is plain: masks applied, no pruning constraint left
        pruner = pruning[0].strip()
        # steps: the schedule's step at the end, global steps (one per batch of the global batch size)
        run_dir.write_state(prune={**plan.recipe.prune, **pruner.summary(), "steps": int(pruner.step.numpy())})
    _finish(run, weights)
    return run


def _compiled_model(plan):
    """The model the plan trains: the one passed in memory or built from the recipe, compiled."""
    recipe = plan.recipe
    if plan.model is not None:
        if not plan.own_compile:
            _compile(plan.model, recipe.compile)
        return plan.model
    with safe_mode_scope(not recipe.model.get("unsafe")):  # the policy rebuild deserializes again
        model = apply_policy(build_model(recipe.model, plan.base_dir), recipe.precision)
    _compile(model, recipe.compile)
    return model


def _compile(model, section):
    """Compiles `model` with the recipe's `compile:` section, every object built from it."""
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
    if isinstance(specs, list):
        return resolve_metrics(specs, path)
    if isinstance(specs, dict) and not any(k[:1].isupper() or ":" in k or k == "class_name" for k in specs):
        return {k: resolve_metrics(v if isinstance(v, list) else [v], f"{path}.{k}") for k, v in specs.items()}
    return specs


def _check_data_fits(model, data):
    """A clear error when the data's shape does not match the model's input; a single-input
    model's data given as {'x': array} is bound to the input (as `Split.feeds` does)."""
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


def _recipe_callbacks(plan, model):
    """The recipe's callbacks as Keras objects, refused before training if one sets a
    learning rate the optimizer's schedule owns."""
    paths = [f"fit.callbacks[{i}]" for i in range(len(plan.callbacks))]
    callbacks = [resolve(spec, "callbacks", path) for spec, path in zip(plan.callbacks, paths)]
    check_settable_learning_rate(callbacks, paths, model.optimizer, _learning_rate_path(plan))
    return callbacks


def _open_run_dir(plan, model, bundle, adapted, distribution):
    """Chooses (or resumes) the run folder and writes the recipe, data assets and run.json."""
    recipe = plan.recipe
    custom_objects = _custom_objects(recipe, model)
    run_dir, resumed = prepare_run_dir(recipe.name, plan.out, plan.force)
    if resumed:
        _check_same_pruning(run_dir, recipe)
        notice(f"Resuming the unfinished run in {run_dir.root} (delete it or pass --force to start over)")
    write_text(run_dir.recipe, _recipe_text(plan), force=True)
    bundle.save_assets(run_dir.root)  # data.json (class names, ...) and e.g. vectorizer.json
    run_dir.write_state(
        status="training",
        name=recipe.name,
        precision=recipe.precision,
        unsafe=bool(recipe.model.get("unsafe")),
        custom_objects=custom_objects,
        import_paths=[str(Path(p).resolve()) for p in (Path.cwd(), plan.base_dir) if p],
        base_dir=str(Path(plan.base_dir).resolve()) if plan.base_dir else None,
        data_from_recipe=plan.data is None,  # data passed in memory cannot be reloaded from the recipe
        adapted=adapted,
        distribution=distribution.record(bundle.batch_size),
    )
    return run_dir, resumed


def _check_same_pruning(run_dir, recipe):
    """InputError when a resumed run's `prune:` section differs from the one it started with: the
    masks and the schedule's step in its checkpoint belong to the old settings."""
    before = (yaml.safe_load(run_dir.recipe.read_text()) or {}).get("prune") if run_dir.recipe.exists() else None
    now = (yaml.safe_load(recipe.to_yaml()) or {}).get("prune")
    if before != now:
        raise InputError(
            f"Expected the prune settings of the unfinished run in {run_dir.root} to resume it: {before}. "
            f"Received: {now}. Its checkpoint holds masks and a schedule step for the old settings: "
            "restore them to resume, or pass --force (or another --out) to start over."
        )


def _recipe_text(plan):
    """The run folder's recipe.yaml; a header says what was passed in memory."""
    lines = []
    if plan.model is not None:
        lines.append("# The model was passed to edgekeras.train in memory: 'model' is the trained copy in this folder.")
        if plan.own_compile:
            lines.append("# It was compiled by its caller: 'compile' is its own compile config.")
    if plan.data is not None:
        lines.append("# The data was passed in memory: 'data' gave only its split and pipeline settings.")
    return "".join(f"{line}\n" for line in lines) + plan.recipe.to_yaml()


def _run_callbacks(plan, callbacks, run_dir, resumed, pruning, distribution):
    """The recipe's callbacks pointed at the run folder, plus edgekeras' own: TensorBoard
    (unless the recipe has one), pruning's mask updates, the crash-safe checkpoint (with the
    masks; a worker that is not the chief restores the chief's), the history CSV and progress."""
    import keras

    # These modules subclass Keras callbacks, so they import Keras when loaded: after
    # quiet_tensorflow(), which `train` calls first.
    from edgekeras.callbacks.backup import AtomicBackupAndRestore, restored_epoch
    from edgekeras.callbacks.epoch_progress import EpochProgress
    from edgekeras.callbacks.tensorboard import EpochTensorBoard

    callbacks, backup = place_in_run(callbacks, run_dir.root)
    backup_dir, delete_backup = backup or (run_dir.backup, True)
    if resumed:
        _trim_history(run_dir.history, restored_epoch(backup_dir))
    if not has_callback(callbacks, "TensorBoard"):
        callbacks.append(EpochTensorBoard(str(run_dir.tensorboard)))
    if pruning is not None:
        callbacks.append(pruning[1])  # masks updated before the checkpoint saves them
    extra = pruning[0].variables if pruning is not None else ()
    backup_dir, restore_dir = distribution.checkpoint_dirs(backup_dir, run_dir.root)
    return callbacks + [
        AtomicBackupAndRestore(str(backup_dir), delete_backup, extra, restore_dir=restore_dir),
        keras.callbacks.CSVLogger(str(run_dir.history), append=resumed),
        EpochProgress(plan.epochs),
    ]


def _fit_model(run, weights, callbacks):
    """`model.fit` on the run's data; Keras' errors about the model and data become InputError
    (and a new run folder without a finished epoch is removed)."""
    fit, bundle = run.recipe.fit, run.data
    shard = run.distribution.shard
    train_ds = shard(weighted_dataset(bundle, bundle.train, weights, shuffle=fit["shuffle"]))
    val_ds = shard(weighted_dataset(bundle, bundle.validation, weights)) if bundle.validation is not None else None
    try:
        run.model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=fit["epochs"],
            callbacks=callbacks,
            class_weight=_class_weight(fit["class_weight"]),
            validation_freq=fit["validation_freq"],
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=0,
        )
    except InputError:  # e.g. a checkpoint that does not fit the model (callbacks.backup)
        raise
    except (ValueError, TypeError) as e:
        _discard_if_empty(run.run_dir, run.resumed)
        raise InputError(
            f"Training failed on the recipe's model and data: {_keras_reason(e)} "
            "Check that model.layers' output and compile.loss match the labels."
        ) from None


def _finish(run, weights):
    """Saves the trained model, its curves, diagram and test metrics; marks the run done."""
    run_dir, bundle, model = run.run_dir, run.data, run.model
    run.history = read_history(run_dir.history) if run_dir.history.exists() else {}
    with ThreadPoolExecutor(1) as pool:  # the curves draw while TensorFlow saves and evaluates
        curves = pool.submit(plot_training_curves, run_dir.history, run_dir.curves) if run.history else None
        saved = _save(model, run_dir.root, run.recipe.fit["save"])
        if bundle.test is not None:
            test_ds = run.distribution.shard(weighted_dataset(bundle, bundle.test, weights))
            metrics = model.evaluate(test_ds, verbose=0, return_dict=True)
            run.test_metrics = {k: float(v) for k, v in metrics.items()}
        write_model_png(model, run_dir.root / "model.png")
        if curves is not None:
            curves.result()  # its error, if any, is raised here
    epochs = len(run.history.get("epoch", []))
    run_dir.write_state(status="done", epochs=epochs, test_metrics=run.test_metrics, saved=saved)


def _save(model, root, forms):
    """Saves the model in every form asked (model.keras always); returns their file names."""
    names = []
    for form in ["keras"] + [f for f in forms if f != "keras"]:
        save_model(model, root / SAVE_NAMES[form], force=True)
        names.append(SAVE_NAMES[form])
        if form == "weights":  # the architecture a weights file reloads into (--architecture)
            write_text(root / "model.json", model.to_json(indent=2) + "\n", force=True)
            names.append("model.json")
    return names


def _check_labels(model, plan, bundle):
    """The loss of each output fits its labels (see loss_check); errors name the recipe key."""
    recipe = plan.recipe
    loss = getattr(model, "loss", None) if plan.own_compile else recipe.compile["loss"]
    if loss is None:
        return
    paths = None
    if recipe.model.get("type") == "sequential":
        paths = {output_names(model)[0]: output_layer_path(recipe.model)}
    train = bundle.train  # arrays: every label; a streamed split: the first SAMPLE samples
    labels = train.take(SAMPLE, seed=bundle.seed).y if isinstance(train, DatasetSplit) else train.y
    check_loss_fits(model, loss, labels, paths)


def _check_reloadable(model, recipe):
    """A model whose lambda code reloads only with safe_mode off needs `model.unsafe: true`
    before it is exported; said before training rather than after it."""
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


def _learning_rate_path(plan):
    """The recipe path of the optimizer's learning rate (for errors), or a description."""
    if plan.own_compile:
        return "the compiled model's optimizer learning_rate"
    optimizer = plan.recipe.compile["optimizer"]
    if is_short_form(optimizer):
        return f"compile.optimizer.{next(iter(optimizer))}.learning_rate"
    if isinstance(optimizer, dict) and "class_name" in optimizer:
        return "compile.optimizer.config.learning_rate"
    return "compile.optimizer"


def _custom_objects(recipe, model):
    """`module:name` of every custom object the recipe names or the model holds (for run.json)."""
    sections = [recipe.model, recipe.compile, recipe.fit]
    named = refs_in(sections) + list(recipe.model.get("custom_objects") or [])
    return list(dict.fromkeys(named + custom_classes_in(model)))


def _trim_history(history, epochs_done):
    """Keeps the history rows of the epochs the checkpoint holds (a kill can land between the
    checkpoint and the log line, or in the middle of a line)."""
    if not history.exists():
        return
    with open(history, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) < epochs_done]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(kept)
    write_text(history, buf.getvalue(), force=True)


def _discard_if_empty(run_dir, resumed):
    """A new run that failed before finishing an epoch leaves no folder behind."""
    if not resumed and not (run_dir.history.exists() and len(run_dir.history.read_text().splitlines()) > 1):
        shutil.rmtree(run_dir.root, ignore_errors=True)


def _keras_reason(error):
    """The informative line of a Keras error (not 'Exception encountered when calling ...')."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    return lines[0] if lines else type(error).__name__


def _class_weight(value):
    return {int(k): float(v) for k, v in value.items()} if value else None
