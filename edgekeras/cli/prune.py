"""`edgekeras prune MODEL|RUN_DIR --sparsity 0.8`"""

import click

from edgekeras.cli.options import force_option, json_option, model_options, verbosity_options
from edgekeras.cli.output import artifacts_table, emit_json
from edgekeras.pruning.prune import prune


@click.command("prune")
@click.argument("model", type=click.Path())
@click.option(
    "--sparsity",
    type=float,
    default=None,
    help="Final fraction of zero weights, in [0, 1) (N:M: fixed by the pattern).",
)
@click.option(
    "--structure",
    default="unstructured",
    show_default=True,
    help="unstructured, N:M (e.g. 2:4, along input channels) or channels (removes filters).",
)
@click.option("--schedule", default="polynomial", show_default=True, help="polynomial or constant.")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Fine-tuning epochs (default: the recipe's fit.epochs)."
)
@click.option("--learning-rate", type=float, default=None, help="Fine-tuning rate (default: the recipe's optimizer's).")
@click.option("--exclude", multiple=True, help="Layer kept dense: name, path, class or regex (repeatable).")
@click.option(
    "--keep-residual",
    is_flag=True,
    help="--structure channels: keep the channels residual Adds sum; remove channels inside the blocks.",
)
@click.option("--recipe", help="Training recipe for the data, compile and export settings (default: the run's).")
@click.option(
    "--data",
    type=click.Path(),
    help="Labelled training data for a model file without a recipe: .npz with arrays named after the "
    "inputs (or x) and labels in y (y_<output> per output).",
)
@click.option(
    "--out", type=click.Path(), help="Run folder (default runs/NAME-pruned-TIMESTAMP). An unfinished one resumes."
)
@click.option("--no-export", is_flag=True, help="Fine-tune only; skip the recipe's export section.")
@model_options
@force_option
@json_option
@verbosity_options
def command(
    model,
    sparsity,
    structure,
    schedule,
    epochs,
    learning_rate,
    exclude,
    keep_residual,
    recipe,
    data,
    out,
    no_export,
    unsafe,
    custom_objects,
    architecture,
    force,
    as_json,
):
    """Prune MODEL (.keras, .h5 or a run folder) and fine-tune it into a run folder.

    The data, compile and export settings come from the run folder's recipe, or --recipe;
    a model file without one fine-tunes on --data (its own compile settings).
    Run the same command again after a crash to resume.
    """
    result = prune(
        model,
        sparsity=sparsity,
        structure=structure,
        schedule=schedule,
        epochs=epochs,
        learning_rate=learning_rate,
        exclude=list(exclude),
        recipe=recipe,
        data=data,
        out=out,
        force=force,
        export=not no_export,
        safe_mode=not unsafe,
        custom_objects=list(custom_objects),
        architecture=architecture,
        keep_residual=keep_residual,
    )
    run = result.run
    state = run.run_dir.state
    if as_json:
        emit_json(
            {
                "run_dir": str(run.path),
                "sparsity": result.summary["sparsity"],
                "weights": result.summary["weights"],
                "channels": state.get("prune") if result.channels is not None else None,
                "state": state,
                "artifacts": [a.to_dict() for a in run.artifacts],
            }
        )
        return
    click.echo(f"Run folder: {run.path}")
    if result.channels is not None:
        click.echo(result.channels.summary())
    else:
        for path, facts in result.summary["weights"].items():
            click.echo(f"  {path:<48} {facts['sparsity']:6.1%} zeros")
        click.echo(f"Sparsity: {result.summary['sparsity']:.1%} of the prunable weights")
    for key, value in (state.get("test_metrics") or {}).items():
        click.echo(f"Test {key}: {value:.4f}")
    if run.artifacts:
        click.echo(artifacts_table(run.artifacts))
