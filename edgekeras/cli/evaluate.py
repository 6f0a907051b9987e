"""`edgekeras evaluate MODEL|RUN_DIR --data DATA.npz`"""

import click

from edgekeras.cli.options import json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.inference import evaluate


@click.command("evaluate")
@click.argument("model", type=click.Path())
@click.option(
    "--data",
    type=click.Path(),
    help=".npz of labelled data (arrays named after the inputs, labels in y or y_OUTPUT). "
    "Default for a run folder: its test split.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@model_options
@json_option
@verbosity_options
def command(model, data, batch_size, custom_objects, architecture, unsafe, as_json):
    """Compute MODEL's compiled loss and metrics on labelled data.

    MODEL is a .keras/.h5 file or a run folder (its test split is the default data).
    """
    metrics = evaluate(
        model,
        data=data,
        batch_size=batch_size,
        safe_mode=not unsafe,
        custom_objects=list(custom_objects),
        architecture=architecture,
    )
    if as_json:
        emit_json({"model": model, "data": data or "test split", "metrics": metrics})
        return
    click.echo(f"{model} on {data or 'the run folder test split'}:")
    for name, value in metrics.items():
        click.echo(f"  {name}: {value:.4f}")
