"""`edgekeras bench ARTIFACT|DIR`"""

import click

from edgekeras.artifact import Artifact
from edgekeras.bench import benchmark
from edgekeras.cli.options import json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.constraints import ConstraintResult, raise_violations
from edgekeras.devices.edgekeras_runner import document
from edgekeras.errors import InputError
from edgekeras.remote import SSHDevice
from edgekeras.reporting import find_artifacts, text_table
from edgekeras.targets import get_target
from edgekeras.units import format_size


@click.command("bench")
@click.argument("path", metavar="ARTIFACT|DIR", type=click.Path())
@click.option(
    "--target",
    "target_name",
    help="Deployment target (see `edgekeras targets`): runtime, threads, options and constraints.",
)
@click.option("--runtime", help="litert or onnxruntime (default: the artifact format's runtime).")
@click.option("--threads", type=int, help="Runtime threads (default: the runtime's own).")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--inputs", type=click.Path(), help=".npz of inputs named after the artifact's inputs (or a .npy).")
@click.option("--provider", help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider.")
@click.option(
    "--delegate", type=click.Path(), help="LiteRT external delegate library path (on the device with --device)."
)
@click.option("--no-xnnpack", is_flag=True, help="LiteRT without its default XNNPACK delegate.")
@click.option(
    "--device",
    metavar="ssh://USER@HOST[:PORT]",
    help="Measure on a remote device over SSH (it needs python3, numpy and the runtime).",
)
@click.option("--identity", type=click.Path(), help="SSH private key for --device (default: ssh-agent, ~/.ssh keys).")
@click.option("--known-hosts", type=click.Path(), help="known_hosts file for --device (default: ~/.ssh/known_hosts).")
@click.option(
    "--accept-new-host-key", is_flag=True, help="Trust the device's host key on first connection (never a changed one)."
)
@click.option("--remote-python", default="python3", show_default=True, help="The device's Python for --device.")
@json_option
@verbosity_options
def command(
    path,
    target_name,
    runtime,
    threads,
    runs,
    warmup,
    inputs,
    provider,
    delegate,
    no_xnnpack,
    device,
    identity,
    known_hosts,
    accept_new_host_key,
    remote_python,
    as_json,
):
    """Measure latency (mean/std/p50/p90/p99), cold start, peak memory and delegation of artifacts.

    ARTIFACT|DIR is one artifact or a folder of them. Each is measured in a fresh process (or on
    --device); results go into each artifact's manifest. JSON output follows
    edgekeras/schemas/bench.schema.json, the same as devices/edgekeras_runner.py prints.
    """
    from pathlib import Path

    remote = None
    if device:
        remote = SSHDevice(
            device,
            identity=identity,
            known_hosts=known_hosts,
            accept_new_host_key=accept_new_host_key,
            python=remote_python,
        )
    elif identity or known_hosts or accept_new_host_key or remote_python != "python3":
        raise InputError(
            "Expected --device ssh://user@host[:port] with --identity, --known-hosts, "
            "--accept-new-host-key or --remote-python. Received: no --device."
        )
    path = Path(path)
    if not path.exists():
        raise InputError(f"Expected an artifact or a folder of artifacts. Received: '{path}', which does not exist.")
    paths = find_artifacts(path) if path.is_dir() else [path]
    if not paths:
        raise InputError(f"Expected artifacts with manifests in '{path}'. Received: a folder without any.")
    options = {"provider": provider, "delegate": delegate, "xnnpack": False if no_xnnpack else None}
    results = [
        benchmark(
            p,
            runtime=runtime,
            threads=threads,
            runs=runs,
            warmup=warmup,
            inputs=inputs,
            device=remote,
            target=target_name,
            **options,
        )
        for p in paths
    ]
    if as_json:
        emit_json(document(r.to_dict() for r in results))
        _raise_violations(target_name, paths)
        return

    rows = [
        [
            Path(r.artifact).name,
            r.runtime,
            r.threads or "default",
            format_size(r.size_bytes),
            f"{r.cold_start_ms:.1f}",
            *(f"{r.latency_ms[k]:.3f}" for k in ("mean", "std", "p50", "p90", "p99")),
            format_size(r.peak_rss_mb * 1024**2),
            _delegation(r.details),
        ]
        for r in results
    ]
    click.echo(
        text_table(
            rows,
            [
                "artifact",
                "runtime",
                "threads",
                "size",
                "cold start ms",
                "mean ms",
                "std ms",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "peak RSS",
                "ran on",
            ],
        )
    )
    for r in results:
        if r.details.get("xnnpack_sparse"):
            click.echo(_sparse_line(Path(r.artifact).name, r.details["xnnpack_sparse"]))
    if remote is not None:
        click.echo(f"measured on {remote.url}")
    _raise_violations(target_name, paths)


def _raise_violations(target_name, paths):
    """Exit 1 when a --target constraint failed (the manifests already record every result)."""
    if not target_name:
        return

    checked = []
    for p in paths:
        art = Artifact.load(p)
        results = [ConstraintResult(**c) for c in art.manifest.get("constraints") or []]
        checked.append((art, results))
        for r in results:
            click.echo(f"  {art.path.name}: {r}", err=True)
    raise_violations(get_target(target_name), checked)


def _sparse_line(name, sparse):
    """Whether XNNPACK takes its sparse path for an artifact, and the rule that stops it."""
    if sparse["path"] == "sparse":
        return f"{name}: XNNPACK sparse path: taken (every rule holds; derived from the artifact, not reported by the runtime)"
    return f"{name}: XNNPACK sparse path: declined, {sparse['rule']}: {sparse['reason']} (derived from the artifact)"


def _delegation(details):
    """'xnnpack 7/9 ops' (LiteRT) or 'CPU 12/12 nodes' (ONNX Runtime): who ran the graph."""
    total = details.get("ops_total")
    if total:
        by = [f"{k} {v}/{total} ops" for k, v in details.get("delegated_by", {}).items() if v]
        return ", ".join(by) or f"builtin kernels {total}/{total} ops"
    nodes = details.get("node_providers") or {}
    if nodes:
        return ", ".join(
            f"{k.removesuffix('ExecutionProvider')} {v}/{details.get('nodes_total')} nodes" for k, v in nodes.items()
        )
    return ", ".join(details.get("providers") or []) or "—"
