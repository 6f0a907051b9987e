"""`edgekeras targets`"""

import click

from edgekeras.cli.options import json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.targets import get_target, list_targets


@click.command("targets")
@click.argument("name", required=False)
@json_option
@verbosity_options
def command(name, as_json):
    """List the deployment targets (or show one): format, precision, runtime and constraints.

    Use one with `edgekeras convert --target NAME` or `edgekeras bench --target NAME`; a new
    target is a new YAML file in targets/.
    """
    targets = [get_target(name)] if name else list_targets()
    if as_json:
        emit_json({"targets": [t.to_dict() for t in targets]})
        return
    if name:
        t = targets[0]
        click.echo(f"{t.name}: {t.description}")
        for key in (
            "format",
            "precision",
            "io_dtype",
            "runtime",
            "provider",
            "delegate",
            "threads",
            "fixed_batch",
            "recipe",
        ):
            value = getattr(t, key)
            if value is not None:
                click.echo(f"  {key}: {value}")
        for key, value in t.constraints.items():
            if value not in (None, False):
                click.echo(f"  constraint {key}: {value}")
        return
    width = max(len(t.name) for t in targets)
    for t in targets:
        click.echo(f"{t.name.ljust(width)}  {t.format:6s} {t.precision:8s} {t.runtime:12s} {t.description}")
