"""`edgekeras validate ARTIFACT --reference MODEL`"""

import click

from edgekeras.cli.options import json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.errors import ParityError
from edgekeras.reporting.heads import output_line
from edgekeras.sources import open_model
from edgekeras.validation import validate


@click.command("validate")
@click.argument("artifact", type=click.Path())
@click.option("--reference", required=True, type=click.Path(), help="The Keras model (.keras, .h5, run folder).")
@click.option(
    "--data",
    type=click.Path(),
    help=".npz of inputs named after the model's inputs, with labels in y (one output) or y_OUTPUT "
    "(per output, all or some); default: a run folder's test split, else inputs generated from the signature.",
)
@click.option("--runtime", help="Runtime to run the artifact in (default: the format's first).")
@model_options
@json_option
@verbosity_options
def command(artifact, reference, data, runtime, custom_objects, architecture, unsafe, as_json):
    """Check ARTIFACT against the Keras model on every output (and accuracy with --data)."""
    source = open_model(reference, safe_mode=not unsafe, custom_objects=list(custom_objects), architecture=architecture)
    result = validate(artifact, source, data=data, runtime=runtime, raise_on_failure=False)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{artifact}: {result.precision}, {result.samples} samples of {result.data}")
        for o in result.outputs:
            click.echo(f"  output '{o.output}' ({o.kind}, by {o.kind_basis}): {output_line(o)}")
        if result.unlabelled:
            click.echo(f"  unlabelled: {', '.join(result.unlabelled)} (judged on parity only)")
        click.echo("  PASS" if result.passed else "  FAIL")
    if not result.passed:
        raise ParityError(artifact, result.failures)
