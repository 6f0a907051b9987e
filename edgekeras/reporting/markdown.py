"""report.md: the report as Markdown, with the PNGs beside it referenced by relative path."""

from __future__ import annotations

from edgekeras.reporting.mixed_precision import mix_markdown
from edgekeras.reporting.table import constraint_text, report_markdown_table
from edgekeras.version import __version__

NO_FRONT = "none (every plotted artifact failed parity)"
TABLE_NOTE = (
    "Metric is each output's own quality metric on the labelled data (accuracy for classifiers, "
    "MAE/RMSE/... for regressors; several outputs are named), vs Keras its change against the Keras "
    "model (accuracy in percentage points, or the error metric's ratio x); parity is every output's "
    "checks against the tolerance, on the data shown (generated inputs are a weak verdict for "
    "quantized artifacts); cosine is the lowest over outputs; latency is p50/p99 in ms at batch 1, "
    "one column group per runtime setting; constraints come from the deployment target."
)


def render_markdown(data):
    """The Markdown text of a report (`ReportData`)."""
    lines = [
        f"# Run report: {data.title}",
        "",
        f"Generated {data.generated} by edgekeras {__version__} from `{data.root}`.",
        "",
    ]
    lines += [f"- {label.capitalize()}: {text}" for label, text in data.facts] + [""]
    if data.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in data.notes), ""]
    if data.summaries:
        reference = next((s.reference_accuracy for s in data.summaries if s.reference_accuracy is not None), None)
        lines += ["## Artifacts", "", TABLE_NOTE]
        if reference is not None:
            lines[-1] += f" Keras model accuracy: {reference:.4f}."
        lines += ["", report_markdown_table(data.summaries, data.groups), ""]
        failures = [f"- {s.file}: {f}" for s in data.summaries for f in s.failures]
        if failures:
            lines += ["## Validation failures", "", *failures, ""]
        constraints = [f"- {s.file}: {constraint_text(c)}" for s in data.summaries for c in s.constraints or []]
        if constraints:
            lines += ["## Target constraints", "", *constraints, ""]
        lines += mix_markdown(data.summaries)
    if data.figures:
        lines += ["## Trade-offs", ""]
        for fig in data.figures:
            lines += [f"### {fig.title}", ""]
            if fig.path is not None:
                lines += [f"![{fig.title.lower()}]({fig.path.name})", "", fig.caption, ""]
                lines += [f"Pareto front: {', '.join(fig.front) or NO_FRONT}.", ""]
            for note in fig.notes:
                lines += [f"> **Note:** {note}", ""]
    if data.curves is not None:
        lines += ["## Training curves", "", f"![training curves]({data.curves.name})", ""]
    return "\n".join(lines)
