"""`edgekeras coverage`"""

import click

from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import emit_json


@click.command("coverage")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="docs/coverage.md",
    show_default=True,
    help="Markdown table to write; the raw results go beside it as .json.",
)
@click.option(
    "--family",
    "families",
    multiple=True,
    help="Only this layer family (repeatable), e.g. LSTM, or module:NAME for a Family of your own. Default: all.",
)
@click.option("--format", "formats", multiple=True, help="Only this format (repeatable): tflite or onnx.")
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    help="Only this precision (repeatable): fp32, fp16, dynamic, int8, int16x8.",
)
@click.option("--update", is_flag=True, help="Merge the cells run into the existing table instead of replacing it.")
@click.option("--list", "list_families", is_flag=True, help="List the layer families and exit.")
@force_option
@json_option
@verbosity_options
def command(out, families, formats, precisions, update, list_families, force, as_json):
    """Build the layer-family × format × precision coverage table.

    Builds a small model per Keras layer family, converts it to every format and precision
    edgekeras exports, validates each artifact, and writes OUT (markdown) and OUT's .json.
    Every cell is "pass (max err …)", "fail (…)" (converted but wrong: caught by validation),
    "n/a: reason" (refused) or "error: …". The full table takes several minutes on 2 cores.
    Exit code 1 when a cell that passed in the previous OUT no longer passes.
    """
    from edgekeras.coverage import coverage
    from edgekeras.errors import CheckFailed

    if list_families:
        from edgekeras.coverage.families import FAMILIES

        if as_json:
            emit_json(
                {
                    "families": [
                        {"name": f.name, "group": f.group, "description": f.description, "seed": f.seed}
                        for f in FAMILIES.values()
                    ]
                }
            )
        else:
            width = max(len(n) for n in FAMILIES)
            for f in FAMILIES.values():
                click.echo(f"{f.name.ljust(width)}  {f.description}")
        return
    document, regressed = coverage(
        out=out,
        families=list(families) or None,
        formats=list(formats) or None,
        precisions=list(precisions) or None,
        update=update,
        force=force,
    )
    from edgekeras.coverage.table import STATUS_LABELS, counts, json_path

    if as_json:
        emit_json(document)
    else:
        found = counts(document)
        summary = ", ".join(f"{n} {STATUS_LABELS[s]}" for s, n in found.items())
        took = f" ({document['seconds']:.0f} s)" if document.get("seconds") else ""
        click.echo(f"Wrote {out} and {json_path(out)}: {summary}{took}.")
    if regressed:
        raise CheckFailed("Cells that passed before and no longer pass:\n" + "\n".join(f"  - {r}" for r in regressed))
