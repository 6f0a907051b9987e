"""`edgekeras launch --workers N RECIPE`"""

import click

from edgekeras.artifact import Artifact
from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import artifacts_table, emit_json
from edgekeras.launch import launch


@click.command("launch")
@click.argument("recipe")
@click.option("--workers", "-n", type=int, default=2, show_default=True, help="Worker processes on this machine.")
@click.option("--out", type=click.Path(), help="Run folder (default runs/NAME-TIMESTAMP). An unfinished one resumes.")
@click.option(
    "--port", type=int, help="The chief's port on 127.0.0.1; the others take the next ones (default: free ports)."
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Restarts of the whole group after a worker is killed by a signal (training resumes from its last epoch).",
)
@click.option("--no-export", is_flag=True, help="Train only; skip the recipe's export section.")
@force_option
@json_option
@verbosity_options
def command(recipe, workers, out, port, max_restarts, no_export, force, as_json):
    """Train RECIPE (with 'strategy: multi_worker') on N worker processes of this machine.

    Each worker runs `edgekeras train RECIPE` with its own TF_CONFIG on 127.0.0.1; the chief
    (worker 0) writes the one run folder and its progress is shown. When a worker fails, all
    are stopped; when one is killed (SIGKILL, out of memory), the group restarts and resumes
    from the last completed epoch. On a cluster, run `edgekeras train RECIPE` on each machine
    with its own TF_CONFIG instead (see the README).
    """
    run = launch(recipe, workers, out=out, force=force, export=not no_export, port=port, max_restarts=max_restarts)
    state = run.state
    artifacts = [Artifact.load(p) for p in run.find_artifacts()]
    if as_json:
        emit_json({"run_dir": str(run.root), "state": state, "artifacts": [a.to_dict() for a in artifacts]})
        return
    click.echo(f"Run folder: {run.root}")
    for key, value in (state.get("test_metrics") or {}).items():
        click.echo(f"Test {key}: {value:.4f}")
    if artifacts:
        click.echo(artifacts_table(artifacts))
