"""`edgekeras doctor`"""

import click

from edgekeras.cli.options import json_option, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.doctor import doctor
from edgekeras.errors import CheckFailed


@click.command("doctor")
@click.option("--require-gpu", is_flag=True, help="Exit 1 unless TensorFlow and ONNX Runtime can both use a GPU.")
@json_option
@verbosity_options
def command(require_gpu, as_json):
    """Report the GPUs, ONNX Runtime providers and LiteRT accelerators this machine actually has.

    Each runtime is probed with a tiny model on every accelerator it offers: listed as usable
    only if that ran.
    """
    report = doctor()
    if as_json:
        emit_json(report)
    else:
        nvidia, tf, ort, litert = (report[k] for k in ("nvidia", "tensorflow", "onnxruntime", "litert"))
        gpus = ", ".join(
            f"{g['index']}: {g['name']} ({g['memory_mib']} MiB, driver {g['driver']})" for g in nvidia["gpus"]
        )
        click.echo(f"NVIDIA GPUs:  {gpus or 'none (' + nvidia.get('note', '') + ')'}")
        if tf.get("installed", True):
            build = f"CUDA {tf['cuda_version']} build" if tf["cuda_build"] else "CPU build"
            click.echo(
                f"TensorFlow:   {tf['version']} ({tf['package']}, {build}); GPUs: {', '.join(tf['gpus']) or 'none'}"
            )
        else:
            click.echo(f"TensorFlow:   {tf['note']}")
        for label, runtime, what in (("ONNX Runtime", ort, "providers"), ("LiteRT", litert, "accelerators")):
            if not runtime.get("installed", True):
                click.echo(f"{label + ':':<13} {runtime['note']}")
                continue
            click.echo(
                f"{label + ':':<13} {runtime['version']}; {what} usable: {', '.join(runtime['usable']) or 'none'}"
            )
            for name, why in runtime["failed"].items():
                click.echo(f"{'':14}{name}: not usable ({why})")
        for problem in report["problems"]:
            click.echo(f"Problem: {problem}")
    if require_gpu:
        missing = [name for name, ok in gpu_ready(report).items() if not ok]
        if missing:
            raise CheckFailed(
                f"Expected TensorFlow and ONNX Runtime to use a GPU (--require-gpu). Received: none for "
                f"{' and '.join(missing)}. See the problems listed above."
            )


def gpu_ready(report):
    """{component: whether it can use a GPU} for --require-gpu."""
    return {
        "TensorFlow": bool(report["tensorflow"].get("gpus")),
        "ONNX Runtime": "CUDAExecutionProvider" in report["onnxruntime"]["usable"],
    }
