"""`edgekeras validate ARTIFACT --reference MODEL`"""

import click

from edgekeras.cli.options import json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json


@click.command("validate")
@click.argument("artifact", type=click.Path())
@click.option("--reference", required=True, type=click.Path(), help="The Keras model (.keras, .h5, run folder).")
@click.option("--data", type=click.Path(), help=".npz of labelled data; default: inputs generated from the signature.")
@click.option("--runtime", help="Runtime to run the artifact in (default: the format's first).")
@model_options
@json_option
@verbosity_options
def command(artifact, reference, data, runtime, custom_objects, architecture, unsafe, as_json):
    """Check ARTIFACT against the Keras model on every output (and accuracy with --data)."""
    from edgekeras.errors import ParityError
    from edgekeras.sources import as_keras_model
    from edgekeras.validation import validate

    keras_model = as_keras_model(
        reference, safe_mode=not unsafe, custom_objects=list(custom_objects), architecture=architecture
    )
    result = validate(artifact, keras_model, data=data, runtime=runtime, raise_on_failure=False)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{artifact}: {result.precision}, {result.samples} samples of {result.data}")
        for o in result.outputs:
            top1 = "" if o.top1_agreement is None else f"  top1 agreement {o.top1_agreement:.4f}"
            click.echo(
                f"  output '{o.output}': max abs err {o.max_abs_error:.3e}  mean abs err "
                f"{o.mean_abs_error:.3e}  cosine {o.cosine:.6f}{top1}"
            )
        if result.accuracy_delta is not None:
            click.echo(f"  accuracy {result.accuracy:.4f} (delta {result.accuracy_delta:+.2f} points)")
        click.echo("  PASS" if result.passed else "  FAIL")
    if not result.passed:
        raise ParityError(artifact, result.failures)
