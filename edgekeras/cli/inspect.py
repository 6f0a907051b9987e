"""`edgekeras inspect ARTIFACT [--layers --reference MODEL]`"""

import re
import shutil
import textwrap

import click

from edgekeras.cli.options import json_option, model_options, verbosity_options
from edgekeras.cli.output import emit_json
from edgekeras.errors import InputError
from edgekeras.inspection import inspect
from edgekeras.reporting import text_table
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


def _unrolled_line(u):
    steps = ", ".join(f"{name} over {n} steps" if n else name for name, n in (u.get("steps") or {}).items())
    growth = f", {u['growth']:.1f}x the fp32 size ({u.get('fp32_size_source', '?')})" if u.get("growth") else ""
    return f"{steps or 'recurrent layers'} unrolled: {u.get('ops', '?')} ops{growth}"


def describe(info):
    """The human summary of an `Inspection`."""
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
        f"  size         {format_size(info.size_bytes)} ({info.size_bytes:,} bytes)"
        + (f", gzip -9 {format_size(info.gzip_size_bytes)}" if info.gzip_size_bytes is not None else ""),
    ]
    if info.format == "tflite":
        lines.append(f"  select ops   {select}")
    if s.custom_ops or info.format != "tflite":
        lines.append(f"  custom ops   {', '.join(s.custom_ops) or 'none (standard ONNX domains only)'}")
    lines += [f"  manifest     {manifest}", f"  validation   {_validation_line(info.validation)}"]
    if info.unrolled:
        lines.append(f"  recurrent    {_unrolled_line(info.unrolled)}")
    lines.append("")
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
    lines += _weights_lines(info)
    return "\n".join(lines)


def _weights_lines(info):
    """The per-layer weights table (sparsity, params, MACs) and XNNPACK's sparse-path verdict."""
    w = info.weights
    lines = []
    if w is not None and w.rows:
        rows = [
            [r.name, r.op, "x".join(map(str, r.weight_shape)), f"{r.params:,}", f"{r.sparsity:.1%}", _macs(r.macs)]
            for r in w.rows
        ]
        lines += [
            "",
            f"weights: {w.params:,} params in weighted ops, {w.sparsity:.1%} zeros, {_macs(w.macs)} MACs per sample",
            text_table(rows, ["layer", "op", "weight", "params", "zeros", "MACs"]),
        ]
    sparse = info.xnnpack_sparse
    if sparse is not None:
        state = "taken" if sparse["path"] == "sparse" else f"declined, {sparse['rule']}: {sparse['reason']}"
        lines += ["", f"XNNPACK sparse path: {state} (derived from the file with XNNPACK's rules)"]
    return lines


def _macs(n):
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


# The table's numeric columns, and the order they are left out in when the terminal is narrow.
_NUMBERS = ("dtype", "scale", "clipped", "quant err", "rel rmse", "rmse", "max abs err", "cosine")
_DROP_FIRST = ("max abs err", "rmse", "scale", "dtype", "clipped")
_MIN_LAYER, _MIN_TENSOR = 12, 18


def _width():
    """The terminal's width (COLUMNS, else the terminal, else 80)."""
    return shutil.get_terminal_size().columns


def ellipsize(text, width):
    """`text` cut to `width` characters with '…' in the middle, keeping both ends: a tensor's
    layer scope at the start and its op at the end say the most."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) * 2 // 5
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _compact(name, layer=None):
    """A tensor name for the table: a fused 'a;b;c' as 'a (+2 fused)', without the model's
    own scope and without the scope of `layer` (the layer column names it):
    'model_1/conv_1/Relu' in layer 'conv' -> 'Relu'."""
    parts = name.split(";")
    scopes = parts[0].split("/")
    if len(scopes) >= 3:
        scopes = scopes[1:]
        if layer and len(scopes) >= 2 and re.fullmatch(re.escape(layer) + r"(_\d+)*", scopes[0]):
            scopes = scopes[1:]
    return "/".join(scopes) + (f" (+{len(parts) - 1} fused)" if len(parts) > 1 else "")


def _layer_label(row):
    layer = row.layer or NONE
    return layer + (f" +{len(row.fused_layers)}" if row.fused_layers else "")


def _cells(row):
    return {
        "layer": _layer_label(row),
        "tensor": _compact(row.tensor, row.layer),
        "dtype": row.dtype,
        "scale": _num(row.scale, ".4g") if row.channels is None else f"{row.channels} channels",
        "clipped": NONE if row.clipped is None else f"{100 * row.clipped:.1f}%",
        "quant err": _num(row.quant_error, ".4f"),
        "rel rmse": _num(row.relative_rmse, ".4f"),
        "rmse": f"{row.rmse:.3e}",
        "max abs err": f"{row.max_abs_error:.3e}",
        "cosine": f"{row.cosine:.5f}",
    }


def error_table(rows, width):
    """The per-tensor table, no line wider than `width`: numeric columns are left out (least
    telling first) until the names get a readable width, and long names are shortened in
    the middle. Returns (table, columns left out)."""
    cells = [_cells(r) for r in rows]

    def natural(column):
        return max([len(column)] + [len(c[column]) for c in cells])

    numbers = list(_NUMBERS)
    dropped = []

    def room():  # what is left for the layer and tensor columns (two spaces between columns)
        return width - sum(natural(c) for c in numbers) - 2 * (len(numbers) + 1)

    names = natural("layer") + natural("tensor")
    wanted = min(names, max(_MIN_LAYER + _MIN_TENSOR, width // 2))
    for column in _DROP_FIRST:
        if room() >= wanted:
            break
        numbers.remove(column)
        dropped.append(column)
    space = max(room(), 2)
    if names <= space:
        layer_width, tensor_width = natural("layer"), natural("tensor")
    else:  # shared in proportion to what each needs
        layer_width = min(max(_MIN_LAYER, space * natural("layer") // names), space - 1)
        tensor_width = max(space - layer_width, 1)
    columns = ["layer", "tensor", *numbers]
    table_rows = [
        [ellipsize(c["layer"], layer_width), ellipsize(c["tensor"], tensor_width), *(c[n] for n in numbers)]
        for c in cells
    ]
    return text_table(table_rows, columns), dropped


def _wrapped(text, width, indent=""):
    return textwrap.fill(text, width, subsequent_indent=indent, break_on_hyphens=False, break_long_words=True)


def _grouped(items, width):
    """Unpaired tensors, one line per reason: how many, in which layers."""
    by_reason = {}
    for item in items:
        by_reason.setdefault(item["reason"], []).append(item)
    lines = []
    for reason, group in by_reason.items():
        layers = list(dict.fromkeys(i.get("layer") or NONE for i in group))
        text = f"  {reason}: {len(group)} in {len(layers)} layer{'s' if len(layers) > 1 else ''} ({', '.join(layers)})"
        lines.append(text if len(text) <= width else text[: width - 2] + " …")
    return lines


def describe_layers(report, top=None, width=None):
    """The human view of a `LayerReport`, no line wider than `width` (default: the terminal's)."""
    width = width or _width()
    shown = report.activations[:top] if top else report.activations
    table, dropped = error_table(shown, width)
    lines = [
        _wrapped(f"Per-tensor error against the float baseline: {report.baseline}.", width),
        _wrapped(
            f"{report.samples} samples of {report.data}; sorted by {report.sorted_by}, worst first "
            f"(showing {len(shown)} of {len(report.activations)} tensors).",
            width,
        ),
        _wrapped(
            "rel rmse = rmse / std of the float tensor (includes everything upstream); quant err = the same "
            "for the float tensor on this tensor's own int grid; clipped = float values outside that grid. "
            "Layer +N: the tensor's op also computes N layers fused into it. Tensor names are shown "
            "inside their layer's scope; full names with --json"
            + (f"; left out for the terminal's width: {', '.join(dropped)}." if dropped else "."),
            width,
        ),
        "",
        table,
    ]
    if report.weights:
        weights = report.weights[:top] if top else report.weights
        lines += ["", f"weights ({len(weights)} of {len(report.weights)})", error_table(weights, width)[0]]
    for title, items in (
        ("artifact tensors without a float partner", report.unmatched_artifact),
        ("float tensors without an artifact partner", report.unmatched_reference),
    ):
        if items:
            lines += ["", _wrapped(f"{title} ({len(items)}):", width)] + _grouped(items, width)
    if report.skipped:
        text = f"not compared, integer tensors without quantization ({len(report.skipped)}): " + ", ".join(
            _compact(name) for name in report.skipped
        )
        lines += ["", ellipsize(text, width)]
    counts = (
        f"Keras layers: {len(report.keras_layers_matched)} compared, {len(report.keras_layers_fused)} fused "
        f"into a compared tensor, {len(report.keras_layers_unmatched)} not compared"
    )
    lines += ["", _wrapped(counts + (":" if report.keras_layer_notes else "."), width)]
    for layer, note in report.keras_layer_notes.items():
        lines.append(_wrapped(f"  {layer}: {note}", width, indent="    "))
    return "\n".join(lines)
