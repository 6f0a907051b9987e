"""`edgekeras deploy MODEL|RUN_DIR --target NAME --accuracy-budget 0.5`"""

import click

from edgekeras.cli.options import force_option, json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.deployment import deploy
from edgekeras.errors import BudgetNotMet, InputError
from edgekeras.remote import SSHDevice


@click.command("deploy")
@click.argument("model", metavar="MODEL|RUN_DIR", type=click.Path())
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="Deployment target (see `edgekeras targets`), repeatable: each gets its own table and choice.",
)
@click.option(
    "--accuracy-budget",
    metavar="POINTS",
    help="Largest accuracy drop accepted against the Keras model, in points (e.g. 0.5). Needs labels.",
)
@click.option("--min-cosine", metavar="X", help="Lowest output cosine accepted (no labels needed), e.g. 0.99.")
@click.option("--data", type=click.Path(), help=".npz of labelled data (default: a run folder's test split).")
@click.option(
    "--calibration", type=click.Path(), help=".npz or image folder for quantized candidates (default: a run's data)."
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="ssh://USER@HOST[:PORT]",
    help="Validate and benchmark on this device (repeatable: one per --target in order, or several for one target).",
)
@click.option("--identity", type=click.Path(), help="SSH private key for --device (default: ssh-agent, ~/.ssh keys).")
@click.option("--known-hosts", type=click.Path(), help="known_hosts file for --device (default: ~/.ssh/known_hosts).")
@click.option(
    "--accept-new-host-key", is_flag=True, help="Trust a device's host key on first connection (never a changed one)."
)
@click.option("--remote-python", default="python3", show_default=True, help="The devices' Python for --device.")
@click.option("--out", type=click.Path(), default="deploy", show_default=True, help="The deploy folder.")
@click.option("--max-candidates", type=int, help="Measure at most N candidates per target (highest priority first).")
@click.option("--time-budget", type=float, metavar="SECONDS", help="Start no new candidate after this long.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs per benchmark.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@model_options
@force_option
@json_option
@verbosity_options
def command(
    model,
    targets,
    accuracy_budget,
    min_cosine,
    data,
    calibration,
    devices,
    identity,
    known_hosts,
    accept_new_host_key,
    remote_python,
    out,
    max_candidates,
    time_budget,
    runs,
    warmup,
    unsafe,
    custom_objects,
    architecture,
    force,
    as_json,
):
    """The fastest artifact within an accuracy budget on each target, measured on the target.

    Builds every candidate a target allows (formats x precisions x quantize recipes, and the
    run's quantization-aware model), validates each on the labelled data and benchmarks it in
    the target's runtime -- on --device when given -- then keeps the fastest within the budget
    and the target's constraints. Writes every candidate, its manifest, report.md/.html and
    the chosen artifact (chosen: true) to --out; a second run into it re-measures only what
    changed. Exit 1 when no candidate meets the budget (the closest is named).
    """
    if not devices and (identity or known_hosts or accept_new_host_key or remote_python != "python3"):
        raise InputError(
            "Expected --device ssh://user@host[:port] with --identity, --known-hosts, "
            "--accept-new-host-key or --remote-python. Received: no --device."
        )
    remote = [
        SSHDevice(
            url,
            identity=identity,
            known_hosts=known_hosts,
            accept_new_host_key=accept_new_host_key,
            python=remote_python,
        )
        for url in devices
    ]
    failed = None
    try:
        deployment = deploy(
            model,
            targets=list(targets),
            accuracy_budget=accuracy_budget,
            min_cosine=min_cosine,
            data=data,
            calibration=calibration,
            devices=remote,
            out=out,
            max_candidates=max_candidates,
            time_budget=time_budget,
            runs=runs,
            warmup=warmup,
            force=force,
            safe_mode=not unsafe,
            custom_objects=list(custom_objects),
            architecture=architecture,
        )
    except BudgetNotMet as e:
        failed, deployment = e, e.deployment
    if as_json:
        emit_json(deployment.to_dict())
    else:
        click.echo(deployment.table())
        click.echo(f"\nreport: {deployment.markdown}, {deployment.html}")
    if failed:
        raise failed
