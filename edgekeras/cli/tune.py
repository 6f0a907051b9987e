"""`edgekeras tune RECIPE.yaml [--workers N]`"""

import click

from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.tuning.search import tune


@click.command("tune")
@click.argument("recipe")
@click.option(
    "--out", type=click.Path(), help="Tuning folder (default runs/NAME-tune-TIMESTAMP). An unfinished one resumes."
)
@click.option(
    "--workers",
    type=int,
    help="Search with a Keras Tuner chief and this many worker processes on this machine (127.0.0.1).",
)
@click.option("--port", type=int, help="The chief's port with --workers (default: a free one).")
@force_option
@json_option
@verbosity_options
def command(recipe, out, workers, port, force, as_json):
    """Search the hyperparameters of RECIPE: values written as search spaces
    ({choice: [..]}, {int: {min, max, step}}, {float: {min, max, sampling}}, {boolean: {}}),
    searched as its `tune:` section says. Each trial is a run folder; the best is copied to
    FOLDER/best, which `convert`, `deploy` and `report` take like any run.

    Run the same command again after an interruption to resume the search.
    """
    result = tune(recipe, out=out, force=force, workers=workers, port=port)
    if result.role == "worker":
        return
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"Tuning folder: {result.folder}")
    if result.table:
        click.echo(result.table)
    if result.best is not None:
        values = ", ".join(f"{k}={v}" for k, v in result.best["values"].items())
        click.echo(f"Best trial {result.best['trial']}: {result.best['score']:.4f} ({values})")
        click.echo(f"Best run folder: {result.best_run}")
