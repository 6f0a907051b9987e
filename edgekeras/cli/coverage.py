"""`edgekeras coverage`"""

import click

from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.coverage import coverage
from edgekeras.coverage.applications_run import run_applications
from edgekeras.coverage.families import FAMILIES
from edgekeras.coverage.table import STATUS_LABELS, counts, json_path
from edgekeras.errors import CheckFailed, InputError

COVERAGE_OUT = "docs/coverage.md"
APPLICATIONS_OUT = "docs/applications.md"


@click.command("coverage")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Markdown table to write; the raw results go beside it as .json. Default: {COVERAGE_OUT}, "
    f"or {APPLICATIONS_OUT} with --applications.",
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
@click.option(
    "--applications",
    is_flag=True,
    help="The keras.applications table instead: every architecture Keras ships at fp32/fp16/int8. "
    "Resumes from the JSON beside --out (rows already there are kept).",
)
@click.option(
    "--only",
    multiple=True,
    help="With --applications: run (or rerun) only this architecture (repeatable), e.g. ResNet50.",
)
@click.option(
    "--memory-limit",
    type=float,
    default=6.0,
    show_default=True,
    help="With --applications: GB one architecture's conversion processes may hold; above it the "
    "conversion is stopped and recorded as not converted.",
)
@force_option
@json_option
@verbosity_options
def command(
    out, families, formats, precisions, update, list_families, applications, only, memory_limit, force, as_json
):
    """Build the layer-family × format × precision coverage table.

    Builds a small model per Keras layer family, converts it to every format and precision
    edgekeras exports, validates each artifact, and writes OUT (markdown) and OUT's .json.
    Every cell is "pass (max err …)", "fail (…)" (converted but wrong: caught by validation),
    "n/a: reason" (refused) or "error: …". The full table takes several minutes on 2 cores.

    With --applications, the same for every keras.applications architecture (weights=None,
    real-looking inputs), one at a time in a child process at nice 19 under --memory-limit;
    the whole table takes hours on 2 cores, and --only NAME reruns one row.

    Exit code 1 when a cell that passed in the previous OUT no longer passes.
    """
    if applications:
        if families or update or list_families:
            raise InputError(
                "Expected --only NAME (architectures) with --applications. Received: --family, --update or "
                "--list, which are for the layer-family table."
            )
        return _applications(out or APPLICATIONS_OUT, only, formats, precisions, memory_limit, force, as_json)
    if only:
        raise InputError("Expected --only with --applications (it names architectures). Received: --only alone.")
    out = out or COVERAGE_OUT

    if list_families:
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

    if as_json:
        emit_json(document)
    else:
        found = counts(document)
        summary = ", ".join(f"{n} {STATUS_LABELS[s]}" for s, n in found.items())
        took = f" ({document['seconds']:.0f} s)" if document.get("seconds") else ""
        click.echo(f"Wrote {out} and {json_path(out)}: {summary}{took}.")
    if regressed:
        raise CheckFailed("Cells that passed before and no longer pass:\n" + "\n".join(f"  - {r}" for r in regressed))


def _applications(out, only, formats, precisions, memory_limit, force, as_json):
    document, ran, regressed = run_applications(
        out=out,
        only=list(only) or None,
        formats=list(formats) or None,
        precisions=list(precisions) or None,
        memory_limit_gb=memory_limit,
        force=force,
    )
    if as_json:
        emit_json(document)
    else:
        found = counts(document, rows="applications")
        summary = ", ".join(f"{n} {STATUS_LABELS.get(s, s)}" for s, n in found.items())
        done = len(document.get("applications", []))
        click.echo(
            f"Ran {len(ran)} architecture(s); wrote {out} and {json_path(out)}: {done} of "
            f"{len(document['discovered'])} architectures, cells: {summary}."
        )
    if regressed:
        raise CheckFailed("Cells that passed before and no longer pass:\n" + "\n".join(f"  - {r}" for r in regressed))
