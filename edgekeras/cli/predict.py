"""`edgekeras predict MODEL|ARTIFACT --inputs DATA.npz`"""

import click

from edgekeras.atomic import atomic_path, check_writable
from edgekeras.cli.options import force_option, json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.errors import InputError
from edgekeras.inference import predict

SHOWN = 10  # samples whose top-1 class the text output lists


@click.command("predict")
@click.argument("model", type=click.Path())
@click.option(
    "--inputs",
    required=True,
    type=click.Path(),
    help=".npz of inputs named after the model's inputs (a single-input model also takes x).",
)
@click.option("--out", type=click.Path(), help="Write the outputs, named by output, to this .npz.")
@click.option("--runtime", help="For an artifact: litert or onnxruntime (default: the format's runtime).")
@click.option("--threads", type=click.IntRange(min=1), help="For an artifact: runtime threads.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per call (default 256; artifacts 64).")
@model_options
@force_option
@json_option
@verbosity_options
def command(model, inputs, out, runtime, threads, batch_size, custom_objects, architecture, unsafe, force, as_json):
    """Run MODEL on inputs and print or save its outputs.

    MODEL is a Keras model (.keras, .h5, SavedModel folder, run folder) or a .tflite/.onnx
    artifact; an artifact runs in its runtime without TensorFlow.
    """
    from pathlib import Path

    import numpy as np

    if out is not None:
        if not out.endswith(".npz"):
            raise InputError(f"Expected --out to be a .npz file. Received: '{out}'.")
        check_writable(out, force)
    outputs = predict(
        model,
        inputs,
        batch_size=batch_size,
        runtime=runtime,
        threads=threads,
        safe_mode=not unsafe,
        custom_objects=list(custom_objects),
        architecture=architecture,
    )
    if out is not None:
        with atomic_path(Path(out), force=force, suffix=".npz") as tmp:
            np.savez(tmp, **outputs)
    if as_json:
        emit_json(
            {
                "model": model,
                "inputs": inputs,
                "out": out,
                "outputs": {
                    k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": v.tolist()} for k, v in outputs.items()
                },
            }
        )
        return
    for name, value in outputs.items():
        line = f"output '{name}': shape {tuple(value.shape)} {value.dtype}"
        if value.ndim == 2 and value.shape[1] > 1:
            line += f"; top-1 class of the first {min(SHOWN, len(value))}: {value[:SHOWN].argmax(1).tolist()}"
        click.echo(line)
    if out is not None:
        click.echo(f"Wrote {out}")
