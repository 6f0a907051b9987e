"""`edgekeras report RUN_DIR`"""

import click

from edgekeras.cli.options import json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.reporting import write_report


@click.command("report")
@click.argument("run_dir", type=click.Path())
@json_option
@verbosity_options
def command(run_dir, as_json):
    """Write report.md and a self-contained report.html in RUN_DIR.

    RUN_DIR is a run folder (from `edgekeras train`) or a folder of artifacts with manifests.
    The report compares every artifact: size, accuracy, parity, latency per runtime, target
    constraints, and plots latency and size against accuracy with the Pareto front marked.
    It reads the manifests and measures nothing (run `edgekeras bench` first for latency).
    With --json: the paths written and the table rows (raw values).
    """
    report = write_report(run_dir)
    if as_json:
        emit_json(report.to_dict())
        return
    if report.cells:
        click.echo(report.text_table())
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"Wrote {report.markdown} and {report.html}")
