"""`edgekeras data RUN_DIR --split test --out test.npz`"""

import click

from edgekeras.cli.output import emit_json, force_option, json_option


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
@force_option
@json_option
def command(run, split, out, force, as_json):
    """Write a run folder's data split as .npz (arrays named after the model's inputs, labels in y or y_OUTPUT).

    The file is what --data and --calibration take: `edgekeras validate ARTIFACT --reference RUN --data test.npz`.
    """
    import numpy as np

    from edgekeras.split_export import export_split

    path = export_split(run, split, out, force=force)
    with np.load(path, allow_pickle=False) as f:
        shapes = {k: list(f[k].shape) for k in f.files}
    if as_json:
        emit_json({"path": str(path), "split": split, "arrays": shapes})
    else:
        arrays = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        click.echo(f"Wrote {path}: {arrays}")
