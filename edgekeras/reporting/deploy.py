"""The deploy tables: one per site (target on a device) and a summary, as text, report.md and report.html.

Rendered from the deploy document (`Deployment.to_dict()`, also written as deploy.json), so a
report can be redrawn from the file alone; no TensorFlow. The HTML is self-contained like the
run report (`reporting.html`'s style sheet, no scripts, nothing fetched).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.atomic import write_text
from edgekeras.reporting.html import CSS
from edgekeras.reporting.table import NONE, markdown_table, text_table
from edgekeras.units import format_size
from edgekeras.version import __version__

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict, PathLike

COLUMNS = [
    "candidate",
    "size",
    "accuracy",
    "vs Keras",
    "cosine",
    "parity",
    "validated on",
    "p50 ms",
    "p99 ms",
    "status",
    "why",
]
SUMMARY_COLUMNS = ["target", "device", "chosen", "size", "vs Keras", "cosine", "p50 ms", "p99 ms", "artifact"]
NOTE = (
    "vs Keras is the change of the main metric (accuracy points) against the Keras model on the labelled "
    "data; cosine is the lowest over outputs; parity is the precision's own tolerance (informative: the "
    "budget and the target's constraints decide); validated on says where the artifact computed its "
    "outputs (a device's outputs are compared on this host); latency at batch 1 with the target's "
    "runtime, threads and delegate/provider."
)


def _num(value: float | None, fmt: str) -> str:
    return NONE if value is None else format(value, fmt)


def _size(value: int | None) -> str:
    return NONE if value is None else format_size(value)


def _parity(value: bool | None) -> str:
    return NONE if value is None else "pass" if value else "FAIL"


def row_cells(row: JSONDict) -> list[str]:
    """One candidate's cells, in `COLUMNS` order."""
    status = row["status"] + (" (cached)" if row.get("cached") else "")
    return [
        row["candidate"],
        _size(row.get("size_bytes")),
        _num(row.get("accuracy"), ".4f"),
        _num(row.get("accuracy_delta"), "+.2f") + (" pts" if row.get("accuracy_delta") is not None else ""),
        _num(row.get("cosine"), ".5f"),
        _parity(row.get("parity")),
        row.get("validated_on") or NONE,
        _num(row.get("p50_ms"), ".3f"),
        _num(row.get("p99_ms"), ".3f"),
        status,
        row.get("reason") or NONE,
    ]


def _chosen_row(site: JSONDict) -> JSONDict | None:
    return next((r for r in site["rows"] if r["status"] == "chosen"), None)


def summary_cells(site: JSONDict) -> list[str]:
    """The summary line of one site: its chosen candidate, or the closest one, marked."""
    row = _chosen_row(site)
    if row is None:
        best = next((r for r in site["rows"] if r["candidate"] == site.get("best")), None)
        label = f"NONE within budget (closest: {best['candidate']})" if best else "NONE measured"
        return [site["target"], site["device"] or "local", label, *[NONE] * 6]
    return [
        site["target"],
        site["device"] or "local",
        row["candidate"],
        _size(row.get("size_bytes")),
        _num(row.get("accuracy_delta"), "+.2f"),
        _num(row.get("cosine"), ".5f"),
        _num(row.get("p50_ms"), ".3f"),
        _num(row.get("p99_ms"), ".3f"),
        site.get("chosen_artifact") or NONE,
    ]


def _heading(site: JSONDict) -> str:
    threads = site.get("threads") or "default"
    return f"{site['site']} ({site['runtime']}, {threads} threads, measured on {site['device'] or 'this machine'})"


def _budget(document: JSONDict) -> str:
    parts = []
    if document.get("accuracy_budget") is not None:
        parts.append(f"accuracy drop <= {document['accuracy_budget']:g} pts")
    if document.get("min_cosine") is not None:
        parts.append(f"cosine >= {document['min_cosine']:g}")
    return " and ".join(parts)


def cache_line(document: JSONDict) -> str:
    """What the cache saved: 'cache: 12 of 14 candidates measured by an earlier run, 2 measured now'."""
    c = document["cache"]
    return (
        f"cache: {c['measured_before']} of {c['candidates']} candidates measured by an earlier run, "
        f"{c['measured_now']} measured now ({c['converted_before']} artifacts reused)"
    )


def deploy_tables(document: JSONDict) -> str:
    """Every site's table, then the summary (best per site), as aligned plain text."""
    out = []
    for site in document["sites"]:
        out += [_heading(site), text_table([row_cells(r) for r in site["rows"]], COLUMNS), ""]
    out += [
        f"Summary ({_budget(document)}):",
        text_table([summary_cells(s) for s in document["sites"]], SUMMARY_COLUMNS),
    ]
    out += ["", cache_line(document) + f"; {document['wall_s']:.1f} s"]
    return "\n".join(out)


def render_markdown(document: JSONDict, generated: str) -> str:
    lines = [
        f"# Deploy report: {document['name']}",
        "",
        f"Generated {generated} by edgekeras {__version__} from `{document['source']}`.",
        "",
        f"- Budget: {_budget(document)}",
        f"- {cache_line(document).capitalize()}",
        f"- Wall time: {document['wall_s']:.1f} s",
        "",
        "## Summary",
        "",
        markdown_table([summary_cells(s) for s in document["sites"]], SUMMARY_COLUMNS),
        "",
        NOTE,
        "",
    ]
    for site in document["sites"]:
        lines += [f"## {_heading(site)}", "", markdown_table([row_cells(r) for r in site["rows"]], COLUMNS), ""]
        if site["refused"]:
            lines += ["Not candidates on this target:", ""]
            lines += [f"- {r['candidate']}: {r['reason']}" for r in site["refused"]] + [""]
    return "\n".join(lines)


def _html_table(rows: Sequence[Sequence[str]], columns: Sequence[str], statuses: Sequence[str] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"
    body = []
    for i, cells in enumerate(rows):
        status = statuses[i] if i < len(statuses) else ""
        cls = ' class="failed"' if status == "rejected" else ""
        tds = []
        for column, cell in zip(columns, cells):
            text = escape(str(cell))
            if column == "status" and status in ("chosen", "rejected"):
                text = f'<span class="badge {"pass" if status == "chosen" else "fail"}">{text}</span>'
            kind = "num" if column.endswith("ms") or column in ("size", "cosine", "vs Keras", "accuracy") else ""
            tds.append(f'<td class="{kind}">{text}</td>')
        body.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
    return f'<div class="table-wrap"><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


def render_html(document: JSONDict, generated: str) -> str:
    title = f"Deploy report: {document['name']}"
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{escape(title)}</h1>",
        f'<div class="meta">Generated {escape(generated)} by edgekeras {__version__} from '
        f"<code>{escape(document['source'])}</code>; budget: {escape(_budget(document))}; "
        f"{escape(cache_line(document))}; {document['wall_s']:.1f} s</div></header>",
        "<h2>Summary</h2>",
        '<div class="card"><p class="explain">' + escape(NOTE) + "</p>",
        _html_table([summary_cells(s) for s in document["sites"]], SUMMARY_COLUMNS),
        "</div>",
    ]
    for site in document["sites"]:
        rows = [row_cells(r) for r in site["rows"]]
        out += [f"<h2>{escape(_heading(site))}</h2>", '<div class="card">']
        out.append(_html_table(rows, COLUMNS, [r["status"] for r in site["rows"]]))
        if site["refused"]:
            items = "".join(f"<li>{escape(r['candidate'])}: {escape(r['reason'])}</li>" for r in site["refused"])
            out.append(f'<p class="explain">Not candidates on this target:</p><ul>{items}</ul>')
        out.append("</div>")
    out.append("</main></body></html>\n")
    return "\n".join(out)


def write_deploy_report(document: JSONDict, out: PathLike) -> tuple[Path, Path]:
    """Writes report.md and a self-contained report.html for a deploy document into `out`."""
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    markdown, html = Path(out) / "report.md", Path(out) / "report.html"
    write_text(markdown, render_markdown(document, generated), force=True)
    write_text(html, render_html(document, generated), force=True)
    return markdown, html


__all__ = ["deploy_tables", "render_html", "render_markdown", "write_deploy_report"]
