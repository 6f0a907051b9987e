"""The `edgekeras` command line. Each command is one module here and calls the Python API.

Exit codes: 0 ok, 1 a check failed (parity, accuracy, constraint) or the toolchain cannot
convert the model, 2 bad input.
Nothing here imports TensorFlow at import time, so `--help` answers at once.
"""

from __future__ import annotations

import importlib

import click

from edgekeras import quiet
from edgekeras.cli import messages
from edgekeras.cli.options import verbosity_options
from edgekeras.errors import EdgekerasError, suggest

# command name -> module under edgekeras.cli defining `command`
COMMANDS = {
    "train": "edgekeras.cli.train",
    "convert": "edgekeras.cli.convert",
    "validate": "edgekeras.cli.validate",
    "bench": "edgekeras.cli.bench",
    "demo": "edgekeras.cli.demo",
    "evaluate": "edgekeras.cli.evaluate",
    "predict": "edgekeras.cli.predict",
    "inspect": "edgekeras.cli.inspect",
    "report": "edgekeras.cli.report",
    "targets": "edgekeras.cli.targets",
    "coverage": "edgekeras.cli.coverage",
    "data": "edgekeras.cli.data",
    "prune": "edgekeras.cli.prune",
    "launch": "edgekeras.cli.launch",
    "doctor": "edgekeras.cli.doctor",
    "tune": "edgekeras.cli.tune",
    "deploy": "edgekeras.cli.deploy",
}


class EdgekerasGroup(click.Group):
    """Loads commands from `COMMANDS` and maps edgekeras errors to exit codes."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).command

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            if args and args[0] not in COMMANDS:
                raise click.UsageError(f"No such command '{args[0]}'.{suggest(args[0], COMMANDS)}", ctx) from None
            raise e

    def main(self, *args, **kwargs):
        with messages.terminal():  # the library's log records on stderr, for this run only
            return super().main(*args, **kwargs)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekerasError as e:
            click.secho(f"Error: {e}", err=True, fg="red" if e.exit_code == 2 else "yellow")
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=EdgekerasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@verbosity_options
@click.version_option(package_name="edgekeras")
def cli():
    """edgekeras: Keras models to validated, benchmarked TFLite and ONNX artifacts.

    Exit codes: 0 ok, 1 a check failed (parity, accuracy, constraint) or the toolchain cannot
    convert the model, 2 bad input.
    -v/--verbose and -q/--quiet work before or after the command name.
    """
    quiet.quiet_tensorflow()  # before anything imports TensorFlow


def main():
    cli(prog_name="edgekeras")
