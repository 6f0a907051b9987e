"""How reports and the CLI show an auto artifact's mix: the layers kept in float and every step.

Reads only the manifest's `mixed_precision` section (see `edgekeras.mixed_precision`).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any

from edgekeras.artifact import as_artifact
from edgekeras.units import format_size

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.hints import PathLike
    from edgekeras.reporting.summary import ArtifactSummary

STEP_COLUMNS = ["step", "reverted to float", "size", "accuracy vs Keras", "cosine", "budget", "kept"]


def mix_summary(mix: dict[str, Any]) -> str:
    """One sentence: what the mix keeps in float, against what budget, and whether it met it."""
    final = mix.get("final") or {}
    layers = mix.get("layers") or {}
    floats = final.get("float_layers") or []
    budget = ", ".join(f"{k} {v}" for k, v in (mix.get("criterion") or {}).items())
    kept = f"{len(floats)} of {len(layers)} layers kept in {mix.get('reverted_to', 'float')}: {', '.join(floats)}"
    what = kept if floats else f"all {len(layers)} layers int8"
    verdict = "met" if final.get("met") else "NOT met (best mix found)"
    return f"{what}; budget ({budget}) {verdict} at step {final.get('step')} of {len(mix.get('steps') or [])}."


def step_rows(mix: dict[str, Any]) -> list[list[str]]:
    """One row per step tried (STEP_COLUMNS)."""
    rows = []
    for step in mix.get("steps") or []:
        delta = step.get("accuracy_delta")
        rows.append(
            [
                str(step.get("step")),
                ", ".join(step.get("layers") or []) or "— (int8)",
                format_size(int(step.get("size_bytes") or 0)),
                "—" if delta is None else f"{delta:+.2f} pts",
                f"{step.get('cosine', 0.0):.5f}",
                "within" if step.get("passed") else "over",
                "yes" if step.get("kept") else "stepped back",
            ]
        )
    return rows


def mix_lines(artifacts: Iterable[Artifact | PathLike]) -> list[str]:
    """The CLI's lines under the artifact table: one per auto artifact."""
    lines = []
    for art in map(as_artifact, artifacts):
        mix = art.manifest.get("mixed_precision")
        if isinstance(mix, dict):
            lines.append(f"{art.path.name}: {mix_summary(mix)}")
    return lines


def mix_markdown(summaries: Iterable[ArtifactSummary]) -> list[str]:
    """The report's "Mixed precision" section in Markdown ([] without auto artifacts)."""
    lines = []
    for s in summaries:
        if s.mixed_precision is None:
            continue
        lines += [f"### {s.file}", "", mix_summary(s.mixed_precision), ""]
        lines += ["| " + " | ".join(STEP_COLUMNS) + " |", "|" + "---|" * len(STEP_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in step_rows(s.mixed_precision)] + [""]
    return ["## Mixed precision", "", *lines] if lines else []


def mix_html(summaries: Iterable[ArtifactSummary]) -> str:
    """The same section as HTML cards ('' without auto artifacts)."""
    cards = []
    for s in summaries:
        if s.mixed_precision is None:
            continue
        head = "".join(f"<th>{escape(c)}</th>" for c in STEP_COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in step_rows(s.mixed_precision)
        )
        cards.append(
            f'<div class="card"><h3>{escape(s.file)}</h3><p class="explain">{escape(mix_summary(s.mixed_precision))}</p>'
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>'
        )
    return f"<h2>Mixed precision</h2>{''.join(cards)}" if cards else ""
