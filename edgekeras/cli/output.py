"""How commands print: human text, or one JSON document on stdout with --json."""

from __future__ import annotations

import json

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing outputs.")


def emit_json(document):
    from edgekeras.manifest import jsonable

    click.echo(json.dumps(document, indent=2, default=jsonable))


def artifacts_table(artifacts):
    from edgekeras.reporting import artifact_rows, text_table

    return text_table(artifact_rows(artifacts))
