"""Each output's quality metric as text: `accuracy 0.9694`, `mae 26.24`, and how it compares
with the Keras model (`+0.28 pts`, `x1.49`).

Reads a manifest's `validation.outputs` entries (dicts) or `validation.OutputParity`
objects alike, so the CLI, the tables and the reports say it the same way.
"""

from __future__ import annotations

NONE = "—"

# The short names tables use for a data source (`validation.DATA_SOURCES` keys).
DATA_SOURCE_LABELS = {
    "labelled": "labelled",
    "inputs": "inputs",
    "calibration_holdout": "calib. held-out",
    "generated": "generated",
}


def _get(output, key):
    return output.get(key) if isinstance(output, dict) else getattr(output, key, None)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _format(value):
    """Accuracies and errors alike: 4 significant digits, no exponent for ordinary sizes."""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def metric_text(output):
    """`accuracy 0.9694` / `mae 26.24`, or None when the output has no measured metric."""
    metric, value = _get(output, "metric"), _number(_get(output, "metric_artifact"))
    return None if metric is None or value is None else f"{metric} {_format(value)}"


def change_text(output):
    """`+0.28 pts` (accuracy) / `x1.49` (error ratio), or None."""
    delta, ratio = _number(_get(output, "accuracy_delta")), _number(_get(output, "metric_ratio"))
    if delta is not None:
        return f"{delta:+.2f} pts"
    if ratio is not None:
        return f"x{ratio:.3f}"
    return None


def heads_cells(outputs):
    """(metric, change) texts for a table row: one output as it is, several prefixed with their
    names and joined by '; '. Outputs without a metric are left out; NONE when none has one."""
    outputs = [o for o in outputs or [] if isinstance(o, dict) or hasattr(o, "output")]
    measured = [o for o in outputs if metric_text(o) is not None]
    if not measured:
        return NONE, NONE
    named = len(outputs) > 1
    metrics = [(f"{_get(o, 'output')} " if named else "") + metric_text(o) for o in measured]
    changes = [(f"{_get(o, 'output')} " if named else "") + (change_text(o) or NONE) for o in measured]
    return "; ".join(metrics), "; ".join(changes)


def output_line(output):
    """One output's parity and quality in a line, for `edgekeras validate`."""
    parts = [
        f"max abs err {_get(output, 'max_abs_error'):.3e}",
        f"cosine {_get(output, 'cosine'):.6f}",
    ]
    if _number(_get(output, "top1_agreement")) is not None:
        parts.append(f"top1 agreement {_get(output, 'top1_agreement'):.4f}")
    if _number(_get(output, "relative_error")) is not None:
        parts.append(f"relative error {_get(output, 'relative_error'):.4f}")
    metric = metric_text(output)
    if metric is not None:
        reference = _number(_get(output, "metric_reference"))
        keras = f"Keras {_format(reference)}" if reference is not None else "Keras —"
        parts.append(f"{metric} ({keras}, {change_text(output) or NONE})")
    return "  ".join(parts)


def data_label(validation):
    """The table's short data-source text for a manifest's `validation`, `weak` marked."""
    source = validation.get("data_source")
    label = DATA_SOURCE_LABELS.get(source, validation.get("data") or NONE)
    return f"{label} (weak)" if validation.get("weak") else label
