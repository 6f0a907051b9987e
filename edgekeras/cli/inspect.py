"""`edgekeras inspect ARTIFACT [--layers --reference MODEL]`"""

import click

from edgekeras.cli.options import json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.units import format_size

NONE = "—"
_LAYER_ONLY = ("reference", "data", "samples", "top", "sort", "custom_objects", "architecture", "unsafe")


@click.command("inspect")
@click.argument("artifact", type=click.Path())
@click.option(
    "--layers", is_flag=True, help="Per-tensor error against the float conversion of --reference, worst first."
)
@click.option(
    "--reference", type=click.Path(), help="The Keras model the artifact came from (.keras, .h5, run folder)."
)
@click.option(
    "--data",
    type=click.Path(),
    help=".npz of inputs named after the model's inputs (or x); default: generated from the signature.",
)
@click.option("--samples", type=int, default=32, show_default=True, help="Samples to run with --layers.")
@click.option("--top", type=int, help="Show only the N worst tensors (and weights).")
@click.option(
    "--sort",
    default="auto",
    show_default=True,
    help="Sort key: auto, quant_error, relative_rmse, rmse, max_abs_error, cosine, clipped.",
)
@model_options
@json_option
@verbosity_options
@click.pass_context
def command(ctx, artifact, layers, reference, data, samples, top, sort, custom_objects, architecture, unsafe, as_json):
    """Show what ARTIFACT is: format, precision, size, inputs and outputs (with
    quantization), ops with counts, TensorFlow select ops, and the manifest's validation.

    With --layers --reference MODEL: every tensor of ARTIFACT compared with the same tensor
    of MODEL converted to fp32 in the same format (run on --data or generated inputs):
    rmse, max abs error, relative rmse (rmse / std of the float tensor), cosine, and for
    quantized tensors their scale, the error of their own int grid (quant_error) and the
    fraction of float values outside it (clipped). Unmatched tensors are listed.
    """
    from edgekeras.errors import InputError
    from edgekeras.inspection import inspect

    given = [
        f"--{name.replace('_', '-')}"
        for name in _LAYER_ONLY
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if layers and reference is None:
        raise InputError(
            "Expected --reference MODEL with --layers: tensors are compared with the Keras model's "
            "fp32 conversion. Received: --layers without --reference. Add --reference model.keras."
        )
    if not layers and given:
        raise InputError(
            f"Expected --layers with {', '.join(given)}. Received: {', '.join(given)} without "
            "--layers. Add --layers to compare the artifact's tensors with the reference."
        )
    if top is not None and top < 1:
        raise InputError(f"Expected --top to be a positive integer. Received: {top}.")
    info = inspect(
        artifact,
        reference=reference if layers else None,
        data=data,
        samples=samples,
        sort=sort,
        safe_mode=not unsafe,
        custom_objects=list(custom_objects),
        architecture=architecture,
    )
    if as_json:
        emit_json(info.to_dict(top=top))
        return
    click.echo(describe(info))
    if info.layers is not None:
        click.echo("")
        click.echo(describe_layers(info.layers, top))


def _shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _num(value, fmt):
    return NONE if value is None else format(value, fmt)


def _io_rows(tensors):
    rows = []
    for t in tensors:
        q = t.quantization
        quant = f"scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else NONE
        rows.append([t.name, t.tensor if t.tensor != t.name else NONE, _shape(t.shape), t.dtype, quant])
    return rows


def _validation_line(v):
    if not v:
        return "not recorded (no manifest, or never validated)"
    parts = [
        f"{v.get('samples', '?')} samples of {v.get('data', '?')}",
        f"max abs err {_num(v.get('max_abs_error'), '.2e')}",
        f"min cosine {_num(v.get('min_cosine'), '.5f')}",
    ]
    if v.get("min_top1_agreement") is not None:
        parts.append(f"top-1 agreement {v['min_top1_agreement']:.4f}")
    if v.get("accuracy") is not None:
        parts.append(f"accuracy {v['accuracy']:.4f} ({_num(v.get('accuracy_delta'), '+.2f')} pts)")
    verdict = "pass" if v.get("passed") else "FAIL"
    failures = "".join(f"\n               - {f}" for f in v.get("failures") or [])
    return f"{verdict}: " + ", ".join(parts) + failures


def describe(info):
    """The human summary of an `Inspection`."""
    from edgekeras.reporting import text_table

    s = info.summary
    facts = [s.producer]
    if s.opset_imports:
        facts.append("opsets " + ", ".join(f"{d} {v}" for d, v in s.opset_imports.items()))
    if s.details.get("min_runtime_version"):
        facts.append(f"min runtime {s.details['min_runtime_version']}")
    if info.precision_source == "manifest":
        seen = (
            "the file looks the same"
            if info.detected_precision == info.precision
            else f"but the file looks {info.detected_precision}!"
        )
        precision = f"{info.precision} (from the manifest; {seen})"
    else:
        precision = f"{info.precision} (detected from the file; no manifest precision)"
    select = (
        f"needs TensorFlow select ops: {', '.join(s.select_ops)} (ai-edge-litert cannot run them)"
        if s.select_ops
        else "none (builtin ops only)"
    )
    if info.manifest is None:
        manifest = "none beside the file"
    else:
        state = {
            True: "sha256 matches the file",
            False: "sha256 DOES NOT match the file (stale manifest)",
            None: "no sha256 recorded",
        }[info.manifest_matches]
        manifest = f"{info.manifest} ({state})"
    lines = [
        info.path,
        f"  format       {info.format} ({'; '.join(facts)})",
        f"  precision    {precision}",
        f"  size         {format_size(info.size_bytes)} ({info.size_bytes:,} bytes)",
    ]
    if info.format == "tflite":
        lines.append(f"  select ops   {select}")
    if s.custom_ops or info.format != "tflite":
        lines.append(f"  custom ops   {', '.join(s.custom_ops) or 'none (standard ONNX domains only)'}")
    lines += [f"  manifest     {manifest}", f"  validation   {_validation_line(info.validation)}", ""]
    columns = ["name", "tensor", "shape", "dtype", "quantization"]
    lines += [
        "inputs",
        text_table(_io_rows(s.inputs), columns),
        "",
        "outputs",
        text_table(_io_rows(s.outputs), columns),
    ]
    graphs = f"{s.subgraphs} subgraphs" if s.subgraphs != 1 else "1 graph"
    lines += [
        "",
        f"ops: {sum(s.ops.values())} in {graphs}",
        text_table([[op, n] for op, n in s.ops.items()], ["op", "count"]),
    ]
    return "\n".join(lines)


def _short(name, width=56):
    """A fused TFLite name 'a;b;c' as 'a (+2 fused)', cut to `width` characters."""
    parts = name.split(";")
    text = parts[0] + (f" (+{len(parts) - 1} fused)" if len(parts) > 1 else "")
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _error_rows(rows):
    return [
        [
            r.layer or NONE,
            _short(r.tensor),
            r.dtype,
            _num(r.scale, ".4g") if r.channels is None else f"{r.channels} channels",
            NONE if r.clipped is None else f"{100 * r.clipped:.1f}%",
            _num(r.quant_error, ".4f"),
            _num(r.relative_rmse, ".4f"),
            f"{r.rmse:.3e}",
            f"{r.max_abs_error:.3e}",
            f"{r.cosine:.5f}",
        ]
        for r in rows
    ]


def describe_layers(report, top=None):
    """The human table of a `LayerReport`."""
    from edgekeras.reporting import text_table

    columns = ["layer", "tensor", "dtype", "scale", "clipped", "quant err", "rel rmse", "rmse", "max abs err", "cosine"]
    shown = report.activations[:top] if top else report.activations
    lines = [
        f"Per-tensor error against the float baseline: {report.baseline}.",
        f"{report.samples} samples of {report.data}; sorted by {report.sorted_by}, worst first "
        f"(showing {len(shown)} of {len(report.activations)} tensors).",
        "rel rmse = rmse / std of the float tensor (includes everything upstream); quant err = the same "
        "for the float tensor on this tensor's own int grid; clipped = float values outside that grid.",
        "",
        text_table(_error_rows(shown), columns),
    ]
    if report.weights:
        weights = report.weights[:top] if top else report.weights
        lines += ["", f"weights ({len(weights)} of {len(report.weights)})", text_table(_error_rows(weights), columns)]
    for title, items in (
        ("artifact tensors without a float partner", report.unmatched_artifact),
        ("float tensors without an artifact partner", report.unmatched_reference),
    ):
        if items:
            lines += ["", f"{title} ({len(items)}):"] + [f"  {u['tensor']}: {u['reason']}" for u in items]
    if report.skipped:
        lines += [
            "",
            f"not compared, integer tensors without quantization ({len(report.skipped)}): " + ", ".join(report.skipped),
        ]
    if report.keras_layers_unmatched:
        lines += [
            "",
            "Keras layers with no compared tensor (fused into a neighbour, or named differently): "
            + ", ".join(report.keras_layers_unmatched),
        ]
    return "\n".join(lines)
