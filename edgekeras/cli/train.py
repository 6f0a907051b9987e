"""`edgekeras train RECIPE.yaml`"""

import click

from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import artifacts_table, emit_json
from edgekeras.conversion import ValidationFailed
from edgekeras.kfold.run import summary_lines
from edgekeras.run_folder import RunFolder
from edgekeras.training import train


@click.command("train")
@click.argument("recipe")
@click.option("--out", type=click.Path(), help="Run folder (default runs/NAME-TIMESTAMP). An unfinished one resumes.")
@click.option("--no-export", is_flag=True, help="Train only; skip the recipe's export section.")
@force_option
@json_option
@verbosity_options
def command(recipe, out, no_export, force, as_json):
    """Train from RECIPE (a YAML file or a shipped recipe name) into a run folder.

    Run the same command again after a crash to resume from the last completed epoch.
    """
    failed = None
    try:
        run = train(recipe, out=out, force=force, export=not no_export)
        if run.distribution is not None and not run.distribution.is_chief:
            click.echo(f"The {run.distribution.plan.role} finished; the chief writes the run folder.")
            return
        artifacts = run.artifacts
        state = run.run_dir.state
        root = run.path
    except ValidationFailed as e:
        failed, artifacts = e, e.artifacts
        from pathlib import Path

        root = Path(artifacts[0].path).parent.parent

        state = RunFolder(root).state
    if as_json:
        emit_json(
            {
                "run_dir": str(root),
                "state": state,
                "artifacts": [a.to_dict() for a in artifacts],
                "passed": failed is None,
            }
        )
    else:
        click.echo(f"Run folder: {root}")
        if state.get("kfold"):
            kfold = state["kfold"]
            click.echo(
                f"K-fold ({kfold['k']} folds, mean ± std; final model: {kfold['final']}, best fold {kfold['best_fold']}):"
            )
            for line in summary_lines(kfold):
                click.echo(f"  {line}")
        for key, value in (state.get("test_metrics") or {}).items():
            click.echo(f"Test {key}: {value:.4f}")
        if artifacts:
            click.echo(artifacts_table(artifacts))
    if failed:
        raise failed
