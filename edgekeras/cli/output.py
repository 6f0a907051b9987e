"""How commands print: human text, or one JSON document on stdout with --json."""

from __future__ import annotations

import json

import click

from edgekeras.cli.options import force_option, json_option  # noqa: F401  (their home before cli/options.py)
from edgekeras.manifest import jsonable
from edgekeras.reporting import artifact_rows, text_table


def emit_json(document):
    click.echo(json.dumps(document, indent=2, default=jsonable))


def artifacts_table(artifacts):
    return text_table(artifact_rows(artifacts))
