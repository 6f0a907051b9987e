"""`edgekeras convert MODEL`"""

import click

from edgekeras.cli.options import force_option, json_option, model_options, verbosity_options
from edgekeras.cli.output import artifacts_table, emit_json
from edgekeras.conversion import convert
from edgekeras.errors import ConstraintViolation, InputError, ValidationFailed
from edgekeras.reporting.mixed_precision import mix_lines


@click.command("convert")
@click.argument("model", type=click.Path())
@click.option("--format", "formats", multiple=True, help="tflite or onnx (repeatable). Default: both.")
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    help="fp32, fp16, dynamic, int8, int16x8, or auto (int8 with the layers --accuracy-budget or "
    "--min-cosine needs kept in float) (repeatable). Default: fp32, or the --recipe's.",
)
@click.option(
    "--accuracy-budget",
    type=float,
    default=None,
    metavar="POINTS",
    help="--precision auto: the accuracy points the artifact may lose against MODEL (e.g. 0.5), "
    "measured on labelled --data or a run's test split.",
)
@click.option(
    "--min-cosine",
    type=float,
    default=None,
    metavar="C",
    help="--precision auto: the cosine to MODEL every output must keep (e.g. 0.99); no labels needed.",
)
@click.option(
    "--calibration", type=click.Path(), help=".npz or image folder of representative inputs (needed for int8, int16x8)."
)
@click.option("--data", type=click.Path(), help=".npz of labelled data (arrays named after inputs, y = labels).")
@click.option("--out", type=click.Path(), help="Output folder (default: RUN/artifacts or ./artifacts).")
@click.option("--name", help="Artifact name stem (default: the model's name).")
@click.option("--opset", type=int, default=None, help="ONNX opset (13-18). Default: 18.")
@click.option("--no-validate", is_flag=True, help="Skip parity/accuracy validation.")
@click.option(
    "--target",
    help="Deployment target (see `edgekeras targets`): implies format, precision, recipe "
    "and I/O, and checks its constraints.",
)
@click.option("--recipe", help="Quantize recipe: a name from quantize/ (e.g. int8-percentile) or a .yaml file.")
@click.option(
    "--allow-select-ops",
    is_flag=True,
    help="Let TFLite use TensorFlow (Flex) ops; ai-edge-litert cannot run those artifacts.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Fix the batch dimension (default: dynamic; recurrent TFLite models use 1).",
)
@click.option("--int8-io", is_flag=True, help="TFLite int8: int8 inputs/outputs instead of float32.")
@click.option(
    "--input-length",
    "input_lengths",
    multiple=True,
    metavar="NAME=LEN",
    help="Fix the sequence length of input NAME where a conversion needs one (recurrent TFLite int8, "
    "unrolled; default: the calibration data's length). Repeatable.",
)
@model_options
@force_option
@json_option
@verbosity_options
def command(
    model,
    formats,
    precisions,
    calibration,
    data,
    out,
    name,
    opset,
    no_validate,
    unsafe,
    custom_objects,
    architecture,
    force,
    as_json,
    target,
    recipe,
    allow_select_ops,
    batch_size,
    int8_io,
    input_lengths,
    accuracy_budget,
    min_cosine,
):
    """Convert MODEL (.keras, .h5, or a run folder) to TFLite and ONNX artifacts.

    Every artifact is validated against MODEL unless --no-validate. From a run folder the
    recipe's training data calibrates and its test split validates, unless given.
    --precision auto starts from int8 and keeps in float, one group at a time, the layers that
    cost the most, until --accuracy-budget and/or --min-cosine is met (exit 1 with the best mix
    written when none is).
    """
    failed = None
    try:
        artifacts = convert(
            model,
            formats=list(formats) or None,
            precisions=list(precisions) or None,
            recipe=recipe,
            allow_select_ops=allow_select_ops,
            fixed_batch=batch_size,
            int8_io=int8_io,
            calibration=calibration,
            data=data,
            out=out,
            force=force,
            validate=not no_validate,
            opset=opset,
            name=name,
            target=target,
            safe_mode=not unsafe,
            custom_objects=list(custom_objects),
            architecture=architecture,
            input_lengths=_lengths(input_lengths) or None,
            accuracy_budget=accuracy_budget,
            min_cosine=min_cosine,
        )
    except (ValidationFailed, ConstraintViolation) as e:
        failed, artifacts = e, e.artifacts
    if as_json:
        emit_json({"artifacts": [a.to_dict() for a in artifacts], "passed": failed is None})
    else:
        click.echo(artifacts_table(artifacts))
        for line in mix_lines(artifacts):
            click.echo(line)
    if failed:
        raise failed


def _lengths(options):
    """{name: length} from repeated --input-length NAME=LEN (names are checked against the model later)."""
    lengths = {}
    for option in options:
        name, sep, length = option.partition("=")
        if not sep or not name or not length.strip().isdigit():
            raise InputError(
                f"Expected --input-length NAME=LEN with a positive integer length (e.g. tokens=20). Received: '{option}'."
            )
        lengths[name] = int(length)
    return lengths
