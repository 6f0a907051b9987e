"""`ek.prune`: a trained model pruned and fine-tuned into a run folder, the way `train` writes one.

Unstructured and N:M pruning fine-tune through `train` with a `prune:` recipe section (masks
on the schedule's steps, checkpointed with the masks, so `prune` run again after a crash
resumes); channel pruning (`structure="channels"`) first rebuilds a smaller model
(`pruning.channels.prune_channels`), then fine-tunes it. The data and the training settings
come from the model's run folder, a `recipe`, or what is passed; the result is a plain
(stripped) Keras model with its per-weight sparsity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekeras.data import load_data
from edgekeras.errors import InputError, ValidationFailed
from edgekeras.pruning import FIELDS, check_section
from edgekeras.pruning.channels import prune_channels
from edgekeras.pruning.masks import parse_structure
from edgekeras.pruning.pruner import check_prunable, model_sparsity
from edgekeras.pruning.schedules import check_sparsity
from edgekeras.recipe import Recipe, load_recipe
from edgekeras.recipe.keras_objects import resolve
from edgekeras.recipe.schema import check_section as check_fields
from edgekeras.reporting import write_report
from edgekeras.run_folder import RunFolder
from edgekeras.sources import open_model
from edgekeras.training import train

DEFAULT_EPOCHS = 10


@dataclass
class PruneResult:
    """What `prune` returns: the pruned plain model, its sparsity and the run that trained it."""

    model: Any  # the pruned, fine-tuned keras.Model (no pruning objects left)
    summary: dict  # {'weights': {path: {shape, sparsity}}, 'sparsity': overall}
    run: Any = None  # the training Run (run folder, history, test metrics, artifacts)
    channels: Any = None  # prune_channels' result (params and FLOPs before/after), structure='channels'
    settings: dict = field(default_factory=dict)  # the `prune:` section applied

    @property
    def path(self) -> Path | None:
        return self.run.path if self.run is not None else None


def prune(
    model: Any,
    data: Any = None,
    sparsity: float | None = None,
    structure: str = "unstructured",
    schedule: str = "polynomial",
    epochs: int | None = None,
    learning_rate: float | None = None,
    exclude: Any = (),
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int | None = None,
    recipe: Any = None,
    out: Any = None,
    force: bool = False,
    export: bool = True,
    safe_mode: bool = True,
    custom_objects: Any = (),
    architecture: Any = None,
    keep_residual: bool = False,
) -> PruneResult:
    """Prunes a trained model to `sparsity` and fine-tunes it into a run folder.

    Args:
        model: a `keras.Model` (pruned and fine-tuned in place, as `ek.train` trains one), a
            model file or a run folder (whose recipe gives the data, compile and export
            settings unless `recipe`/`data` are given).
        data: labelled training data (a `DataBundle`, (x, y), {input: array, 'y': labels}).
        sparsity: the final fraction of zero weights, in [0, 1) (N:M: fixed by the pattern,
            may be left out; channels: the fraction of channels removed).
        structure: 'unstructured', 'N:M' (e.g. '2:4', along input channels) or 'channels'.
        schedule: 'polynomial' (rising from 0 to `sparsity`) or 'constant'.
        epochs: fine-tuning epochs (default: as many as the recipe trained, else 10).
        learning_rate: the fine-tuning rate (default: the recipe's or the model's optimizer's).
        exclude: layers kept dense: names, paths ('backbone/conv1'), class names or regexes.
        begin_step, end_step, frequency: the schedule's window and mask-update interval in
            training steps (default: from step 0 to 2/3 of the steps, 10 updates).
        recipe: a training recipe (path, name or dict) for data, compile, fit and export.
        out: the run folder (default runs/NAME-pruned-TIMESTAMP, NAME-channels-* for channels);
            an unfinished one resumes.
        safe_mode, custom_objects, architecture: how a model file loads (see `ek.load_model`).
        keep_residual: structure='channels' only: keep every channel a residual Add sums and
            remove channels inside the blocks (`prune_channels(keep_residual=True)`; faster
            int8 on CPUs for inverted-residual networks such as MobileNetV2).

    Returns:
        A `PruneResult`. An exported artifact that fails validation raises `ValidationFailed`
        (the run folder is written first). Bad input (sparsity, N:M, exclude, a quantization-aware model) raises
        `InputError` before anything is written.
    """
    kind = parse_structure(structure).kind
    if sparsity is None and kind != "n:m":
        raise InputError(f"Expected a sparsity in [0, 1) for structure '{structure}'. Received: none.")
    if sparsity is not None:
        check_sparsity(sparsity)
    if keep_residual and kind != "channels":
        raise InputError(
            f"Expected keep_residual only with structure='channels' (it keeps whole channels). Received: "
            f"structure={structure!r}."
        )
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise InputError(f"Expected epochs as a positive integer. Received: {epochs!r}.")
    section = {
        "sparsity": None if sparsity is None else float(sparsity),
        "structure": structure,
        "schedule": schedule,
        "begin_step": begin_step,
        "end_step": end_step,
        "frequency": frequency,
        "exclude": list(exclude or []),
    }
    section = check_fields(section, FIELDS, "prune")
    source = open_model(model, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture)
    live = source.keras_model.model
    check_prunable(live)
    base = _base_recipe(recipe, source)
    bundle, from_recipe = _data(data, base if recipe is not None else None, source)
    spec = _sections(base, live, epochs or (base.fit["epochs"] if base else DEFAULT_EPOCHS), learning_rate)
    if not safe_mode:  # the user trusts the model's lambda code: its run folder reloads it for export
        spec["model"] = {"unsafe": True}
    channels = None
    if kind == "channels":
        channels, live = _prune_channels(live, section, keep_residual)
        # its own run name: `runs/NAME-pruned-*` resumes only unfinished masked-pruning runs
        spec["name"] = spec["name"].removesuffix("-pruned") + "-channels"
    else:
        spec["prune"] = check_section(section)
    facts = {} if from_recipe is None else {"data_from_recipe": True, **from_recipe}
    if source.run is not None:  # the report sets the pruned model beside this one's artifacts
        facts["pruned_from"] = str(source.run.root.resolve())
    if channels is not None:
        facts["prune"] = _channel_facts(channels, section, keep_residual)
    try:
        run = train(live, data=bundle, recipe=spec, out=out, force=force, export=export)
    except ValidationFailed as e:  # the run folder is complete: record the facts, then report
        if e.artifacts:
            _record(RunFolder(Path(e.artifacts[0].path).parent.parent), facts)
        raise
    _record(run.run_dir, facts)
    summary = model_sparsity(run.model, section["exclude"] if kind != "channels" else ())
    return PruneResult(run.model, summary, run, channels, section)


def _record(run: RunFolder, facts: dict) -> None:
    """Adds what `train` does not know to run.json (the data reloads from the run's recipe, as the
    source's did; where the model was pruned from), and reports again with the source beside."""
    run.write_state(**facts)
    if facts.get("pruned_from") and run.find_artifacts():
        write_report(run.root)


def _base_recipe(recipe: Any, source: Any) -> Recipe | None:
    if recipe is not None:
        return load_recipe(recipe)
    if source.run is not None and source.run.recipe_path.exists():
        return source.run.load_recipe()
    return None


def _data(data, recipe, source):
    """(training data, run.json facts that let the new run reload it from its recipe, or None).

    Data a recipe describes is loaded here (split and encoded as its run did) and passed to
    `train` in memory; the facts say the new run's recipe reloads it all the same."""
    if data is not None:
        return data, None
    if recipe is not None:
        base_dir = str(recipe.path.parent.resolve()) if recipe.path is not None else None
        return load_data(recipe.data, seed=recipe.seed, base_dir=base_dir), {"base_dir": base_dir}
    if source.run is not None and source.run.has_recipe_data:
        state = source.run.state
        return source.run.load_data(), {"base_dir": state.get("base_dir"), "import_paths": state.get("import_paths")}
    raise InputError(
        "Expected training data to fine-tune the pruned model: --data FILE.npz (data=... in Python), "
        "--recipe, or a run folder whose recipe describes its data. Received: none."
    )


def _sections(recipe: Any, model: Any, epochs: int | None, learning_rate: float | None = None) -> dict:
    """The recipe sections of the pruning run: the source's settings, fine-tuning for `epochs`
    (at `learning_rate`, when given)."""
    if recipe is None:
        if learning_rate is not None:
            _recompile(model, learning_rate)
        return {"name": f"{model.name or 'model'}-pruned", "fit": {"epochs": epochs}}
    spec = recipe.to_dict()
    spec.pop("model")
    spec.pop("qat", None)
    spec.pop("prune", None)
    # the model to prune is loaded here, outside any strategy scope: it fine-tunes in this process
    spec.pop("strategy", None)
    spec["name"] = f"{recipe.name}-pruned"
    # the recipe's own callbacks (early stopping, rate changes) would fight the schedule
    spec["fit"] = {**spec["fit"], "epochs": epochs, "callbacks": []}
    if learning_rate is not None:
        spec["compile"]["optimizer"] = _with_learning_rate(spec["compile"]["optimizer"], learning_rate)
    return spec


def _check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise InputError(f"Expected learning_rate as a positive number. Received: {rate!r}.")
    return float(rate)


def _with_learning_rate(spec: Any, rate: float) -> dict:
    """A recipe's `compile.optimizer` spec with a fixed learning rate, as {ClassName: config}."""
    import keras

    optimizer = resolve(spec, "optimizers", "compile.optimizer")
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    config["learning_rate"] = _check_rate(rate)
    return {type(optimizer).__name__: config}


def _recompile(model, rate):
    """`model` compiled again as it was, with a fresh optimizer of its kind at `rate`."""
    config = getattr(model, "_compile_config", None)
    if config is None or getattr(model, "optimizer", None) is None:
        raise InputError("Expected a compiled keras.Model to fine-tune. Received: a model without compile().")
    args = dict(config.config)
    args.pop("auto_scale_loss", None)
    optimizer = model.optimizer
    args["optimizer"] = type(optimizer).from_config({**optimizer.get_config(), "learning_rate": _check_rate(rate)})
    model.compile(**args)


CHANNEL_MULTIPLE = 8


def _prune_channels(model, section, keep_residual=False):
    """(prune_channels' result, the smaller model compiled like `model`)."""
    # Kept channels in multiples of 8: the runtimes' kernels work in channel blocks, and odd counts
    # made pruned models slower (benchmarks/channel_pruning.py, MobileNetV2 @64: ONNX Runtime fp32
    # 3.6x the unpruned latency at multiple 1, 0.37x at 8).
    result = prune_channels(
        model,
        fraction=section["sparsity"],
        exclude=tuple(section["exclude"]),
        channel_multiple=CHANNEL_MULTIPLE,
        keep_residual=keep_residual,
    )
    smaller = result.model
    config = getattr(model, "_compile_config", None)
    if config is not None and getattr(smaller, "optimizer", None) is None:
        args = dict(config.config)
        args.pop("auto_scale_loss", None)
        optimizer = model.optimizer
        args["optimizer"] = type(optimizer).from_config(optimizer.get_config()) if optimizer is not None else "adam"
        smaller.compile(**args)
    return result, smaller


def _channel_facts(result: Any, section: dict, keep_residual: bool = False) -> dict:
    """What run.json records of a channel pruning: the target and params/FLOPs before and after."""
    facts = {
        "structure": "channels",
        "fraction": section["sparsity"],
        "exclude": section["exclude"],
        "keep_residual": keep_residual,
    }
    for key in ("params_before", "params_after", "flops_before", "flops_after"):
        value = getattr(result, key, None)
        if value is not None:
            facts[key] = int(value)
    return facts


__all__ = ["PruneResult", "prune"]
