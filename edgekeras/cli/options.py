"""Options more than one command takes, declared once so each means the same on every command.

@model_options      every command that loads a Keras model from a path
@verbosity_options  every command (and the group): -v/--verbose, -q/--quiet
@json_option, @force_option
"""

from __future__ import annotations

import click

from edgekeras.cli import messages

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing outputs.")

custom_objects_option = click.option(
    "--custom-objects",
    "custom_objects",
    multiple=True,
    metavar="MODULE[:NAME]",
    help="Python module or .py file (or module:name, file.py:name) defining the Keras model's custom "
    "layers, losses or metrics (repeatable). A run folder's own, recorded in its run.json, load without it.",
)
architecture_option = click.option(
    "--architecture",
    help="For a .weights.h5 model: model.json (model.to_json()), a .keras file or module:function.",
)
unsafe_option = click.option(
    "--unsafe", is_flag=True, help="Load Lambda layers' code (Keras safe_mode off). Only for trusted files."
)


def model_options(command):
    """--custom-objects, --architecture and --unsafe: how a Keras model file loads."""
    for option in reversed((custom_objects_option, architecture_option, unsafe_option)):
        command = option(command)
    return command


def _verbosity(name):
    def callback(ctx, param, value):
        if value:
            messages.set_verbosity(name)

    return callback


verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=_verbosity("verbose"),
    help="Show debug messages and TensorFlow's, the converters' and the runtimes' own output.",
)
quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=_verbosity("quiet"),
    help="Show only warnings and errors (no progress notes or bars).",
)


def verbosity_options(command):
    """-v/--verbose and -q/--quiet, the same before and after the command name (the last wins)."""
    return verbose_option(quiet_option(command))
