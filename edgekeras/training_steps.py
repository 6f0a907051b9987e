"""The steps of a training run after the fit: the recipe's `qat:` and `export:` sections.

`training` calls them with the `training.Run` it trained: `quantize_aware_step` inside the
strategy's scope (on every worker), `export_step` on the chief.
"""

from __future__ import annotations

from edgekeras.conversion import ValidationFailed, convert
from edgekeras.model_io import input_specs, save_model
from edgekeras.precisions import PRECISIONS
from edgekeras.progress import notice
from edgekeras.qat.aware import quantize_aware
from edgekeras.reporting import write_report


def quantize_aware_step(run) -> None:
    """The recipe's `qat:` step: a quantization-aware copy of the trained model, fine-tuned on
    the training split, saved as model-qat.keras with its test metrics in run.json."""
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


def export_step(run) -> None:
    """Converts the run's model as the recipe's `export:` section says, and writes the report.

    With a `qat:` section the precisions a quantization-aware model converts to (int8) come
    from model-qat.keras, named `<name>-qat`, the others from the float model.
    The run folder's model reloads with safe_mode off when the recipe set `model.unsafe`
    (the user's own recipe, in this process: the trust `--unsafe` gives on the command line).
    """
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
