"""`edgekeras demo`"""

import click

from edgekeras.cli.options import force_option, json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.demo_pipeline import demo


@click.command("demo")
@click.option("--out", type=click.Path(), help="Run folder (default runs/digits-cnn-TIMESTAMP).")
@click.option("--runs", type=int, default=200, show_default=True, help="Benchmark runs per artifact.")
@force_option
@json_option
@verbosity_options
def command(out, runs, force, as_json):
    """Train a CNN on the embedded digits data, convert it to TFLite and ONNX (fp32, int8),
    validate and benchmark every artifact, and print the comparison table."""
    import time

    start = time.perf_counter()
    run, table = demo(out=out, force=force, runs=runs)
    elapsed = time.perf_counter() - start
    if as_json:
        emit_json(
            {
                "run_dir": str(run.path),
                "seconds": elapsed,
                "test_metrics": run.test_metrics,
                "artifacts": [a.to_dict() for a in run.artifacts],
            }
        )
        return
    click.echo("")
    click.echo(table)
    click.echo("")
    click.echo(f"Run folder: {run.path}  (report: {run.run_dir.report})")
    click.echo(f"Demo took {elapsed:.1f} s.")
