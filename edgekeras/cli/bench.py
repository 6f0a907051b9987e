"""`edgekeras bench ARTIFACT|DIR`"""

import click

from edgekeras.cli.output import emit_json, json_option


@click.command("bench")
@click.argument("target", type=click.Path())
@click.option("--runtime", help="litert or onnxruntime (default: the artifact format's runtime).")
@click.option("--threads", type=int, help="Runtime threads (default: the runtime's own).")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--inputs", type=click.Path(), help=".npz of inputs named after the artifact's inputs.")
@click.option("--provider", help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider.")
@click.option("--delegate", type=click.Path(), help="LiteRT external delegate library path.")
@click.option("--no-xnnpack", is_flag=True, help="LiteRT without its default XNNPACK delegate.")
@json_option
def command(target, runtime, threads, runs, warmup, inputs, provider, delegate, no_xnnpack, as_json):
    """Measure latency (mean/std/p50/p90/p99), cold start and memory of artifacts.

    TARGET is one artifact or a folder of them. Results go into each artifact's manifest.
    """
    from pathlib import Path

    from edgekeras.bench import benchmark
    from edgekeras.errors import InputError
    from edgekeras.report import find_artifacts

    path = Path(target)
    if not path.exists():
        raise InputError(f"Expected an artifact or a folder of artifacts. Received: '{path}', which does not exist.")
    paths = find_artifacts(path) if path.is_dir() else [path]
    if not paths:
        raise InputError(f"Expected artifacts with manifests in '{path}'. Received: a folder without any.")
    feeds = None
    if inputs:
        from edgekeras.data.files import read_npz

        feeds = read_npz(inputs)
    options = {k: v for k, v in {"provider": provider, "delegate": delegate,
                                 "xnnpack": False if no_xnnpack else None}.items() if v is not None}
    results = [benchmark(p, runtime=runtime, threads=threads, runs=runs, warmup=warmup, inputs=feeds, **options)
               for p in paths]
    if as_json:
        emit_json({"results": [r.to_dict() for r in results]})
        return
    from edgekeras.report import text_table

    rows = [[Path(r.artifact).name, r.runtime, r.threads or "default", f"{r.size_bytes / 1024:.1f} KB",
             f"{r.load_ms:.1f}", f"{r.first_inference_ms:.3f}", *(f"{r.latency_ms[k]:.3f}" for k in
             ("mean", "std", "p50", "p90", "p99")), f"{r.peak_rss_mb:.0f}"] for r in results]
    click.echo(text_table(rows, ["artifact", "runtime", "threads", "size", "load ms", "first ms", "mean ms",
                                 "std ms", "p50 ms", "p90 ms", "p99 ms", "peak RSS MB"]))
