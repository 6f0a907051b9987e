"""`edgekeras data RUN_DIR --split test --out test.npz`"""

import click

from edgekeras.cli.options import custom_objects_option, force_option, json_option, unsafe_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.split_export import export_split


@click.command("data")
@click.argument("run", type=click.Path())
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "validation", "test"]),
    help="Which split of the run's data to write.",
)
@click.option("--out", type=click.Path(), help="The .npz to write (default: RUN/SPLIT.npz).")
@custom_objects_option
@unsafe_option
@force_option
@json_option
@verbosity_options
def command(run, split, out, custom_objects, unsafe, force, as_json):
    """Write a run folder's data split as .npz (arrays named after the model's inputs, labels in y or y_OUTPUT).

    The file is the labelled-data form every other command reads (validate, convert, evaluate).
    """
    import numpy as np

    path = export_split(run, split, out, force=force, safe_mode=not unsafe, custom_objects=list(custom_objects))
    with np.load(path, allow_pickle=False) as f:
        shapes = {k: list(f[k].shape) for k in f.files}
    if as_json:
        emit_json({"path": str(path), "split": split, "arrays": shapes})
    else:
        arrays = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        click.echo(f"Wrote {path}: {arrays}")
