"""The artifact tables: the compact one the CLI prints, and the wide one in reports.

The compact table has one row per (artifact, benchmark). The report table has one row per
artifact and one column group (p50, p99) per benchmark group found in the manifests; its
cells carry a kind ("num", "pass", "fail", "none") so the HTML can style them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekeras.artifact import as_artifact
from edgekeras.reporting.heads import data_label, heads_cells
from edgekeras.units import format_size

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.hints import PathLike

# "metric" is each output's quality metric (accuracy for classifiers, MAE/RMSE/... for
# regressors), "vs Keras" its change against the Keras model, "data" what it was validated on.
COLUMNS = [
    "artifact",
    "format",
    "precision",
    "size",
    "gzip",
    "metric",
    "vs Keras",
    "max abs err",
    "parity",
    "data",
    "runtime",
    "p50 ms",
    "p90 ms",
    "p99 ms",
]
NONE = "—"


def _num(value, fmt):
    return NONE if value is None else format(value, fmt)


def _size(n_bytes: int | None) -> str:
    return NONE if n_bytes is None else format_size(n_bytes)


def artifact_rows(artifacts: Iterable[Artifact | PathLike]) -> list[list[Any]]:
    """One row per artifact (and per benchmark runtime) from the manifests."""
    rows = []
    for art in map(as_artifact, artifacts):
        m = art.manifest
        v = m.get("validation") or {}
        metric, change = heads_cells(v.get("outputs"))
        benches = m.get("benchmarks") or [{}]
        for b in benches:
            lat = b.get("latency_ms", {})
            rows.append(
                [
                    art.path.name,
                    m.get("format", "?"),
                    m.get("precision", "?"),
                    format_size(art.size_bytes),
                    _size(m.get("gzip_size_bytes")),
                    metric,
                    change,
                    _num(v.get("max_abs_error"), ".2e"),
                    NONE if not v else ("pass" if v.get("passed") else "FAIL"),
                    data_label(v) if v.get("outputs") else NONE,
                    b.get("runtime", m.get("runtime", NONE)),
                    _num(lat.get("p50"), ".3f"),
                    _num(lat.get("p90"), ".3f"),
                    _num(lat.get("p99"), ".3f"),
                ]
            )
    return rows


def text_table(rows: Sequence[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Rows as aligned plain text for the terminal."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(str(c).ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _md_escape(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Rows as a GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(map(_md_escape, columns)) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(map(_md_escape, r)) + " |" for r in rows]
    return "\n".join(out)


@dataclass(frozen=True)
class Cell:
    """One report-table cell: its text, how to style it, and an optional tooltip."""

    text: str
    kind: str = "text"  # text | num | pass | fail | none | weak
    title: str = ""


BASE_COLUMNS = [
    "artifact",
    "format",
    "precision",
    "size",
    "gzip",
    "metric",
    "vs Keras",
    "parity",
    "data",
    "max abs err",
    "cosine",
]
LATENCY_COLUMNS = ["p50 ms", "p99 ms"]


def report_columns(groups):
    """[(group or None, column)] for the report table; a group spans its latency columns."""
    return (
        [(None, c) for c in BASE_COLUMNS] + [(g, c) for g in groups for c in LATENCY_COLUMNS] + [(None, "constraints")]
    )


def _value(value, fmt):
    return Cell(NONE, "none") if value is None else Cell(format(value, fmt), "num")


def _parity(s):
    if not s.validated:
        return Cell(NONE, "none", "not validated")
    if s.parity_passed:
        weak = " (generated inputs: a weak verdict for a quantized artifact)" if s.weak else ""
        return Cell("pass", "pass", f"validated on {s.validation_data or 'unknown data'}{weak}")
    return Cell("FAIL", "fail", "; ".join(s.failures) or "validation failed")


def _short(value, items=6):
    if isinstance(value, (list, tuple)):
        more = f", … ({len(value)} in all)" if len(value) > items else ""
        return "[" + ", ".join(map(str, value[:items])) + more + "]"
    return str(value)


def constraint_text(c):
    """One `{name, value, limit, passed[, detail]}` constraint as a sentence fragment."""
    detail = f" ({c['detail']})" if c.get("detail") else ""
    return (
        f"{c.get('name')} = {_short(c.get('value'))}, limit {_short(c.get('limit'))}: "
        f"{'met' if c.get('passed') else 'NOT met'}{detail}"
    )


def _constraints(s):
    if s.constraints is None:
        return Cell(NONE, "none", "no target constraints in the manifest")
    if not s.constraints:
        return Cell("none set", "none")
    detail = "; ".join(map(constraint_text, s.constraints))
    failed = [str(c.get("name")) for c in s.constraints if not c.get("passed")]
    if failed:
        return Cell(f"FAIL: {', '.join(failed)}", "fail", detail)
    return Cell(f"met ({len(s.constraints)}/{len(s.constraints)})", "pass", detail)


def _text(text, title=""):
    return Cell(NONE, "none", title) if text == NONE else Cell(text, "num", title)


def _data(s):
    if not s.validated:
        return Cell(NONE, "none", "not validated")
    title = s.validation_data or ""
    if s.unlabelled:
        title += f"; no labels for {', '.join(s.unlabelled)}"
    return Cell(s.data_label, "weak" if s.weak else "text", title)


def report_row(summary, groups):
    """The cells of one artifact's row, in `report_columns(groups)` order."""
    s = summary
    metric, change = heads_cells(s.heads)
    cells = [
        Cell(s.file),
        Cell(s.format),
        Cell(s.precision),
        Cell(format_size(s.size_bytes), "num"),
        _text(_size(s.gzip_size_bytes), "gzip -9 of the artifact"),
        _text(metric, "each output's quality metric on the labelled data"),
        _text(change, "vs the Keras model: accuracy points, or the error metric's ratio"),
        _parity(s),
        _data(s),
        _value(s.max_abs_error, ".2e"),
        _value(s.cosine, ".6f"),
    ]
    for g in groups:
        lat = s.benchmarks.get(g) or {}
        cells += [_value(lat.get("p50"), ".3f"), _value(lat.get("p99"), ".3f")]
    return cells + [_constraints(s)]


def flat_columns(groups):
    """The report columns as single names (a group prefixes its latency columns)."""
    return [c if g is None else f"{g} {c}" for g, c in report_columns(groups)]


def report_markdown_table(summaries, groups):
    """The wide report table as Markdown."""
    return markdown_table([[cell.text for cell in report_row(s, groups)] for s in summaries], flat_columns(groups))
