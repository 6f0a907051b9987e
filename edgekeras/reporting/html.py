"""report.html: one self-contained page (inline CSS, images as data: URIs, no scripts, no fonts
or anything else fetched), so it renders the same offline, attached to a mail, or archived."""

from __future__ import annotations

import base64
from html import escape

from edgekeras.reporting.markdown import NO_FRONT, TABLE_NOTE
from edgekeras.reporting.mixed_precision import mix_html
from edgekeras.reporting.table import constraint_text, report_columns, report_row
from edgekeras.version import __version__

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --card:#ffffff; --bg:#f4f5f7;
  --pass:#15803d; --pass-bg:#dcfce7; --fail:#b91c1c; --fail-bg:#fee2e2; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1440px; margin:0 auto; padding:28px 28px 48px; }
header h1 { margin:0; font-size:24px; letter-spacing:-0.01em; }
header .meta { color:var(--muted); margin-top:4px; font-size:13px; }
header .meta code { font-size:12px; }
h2 { font-size:17px; margin:30px 0 10px; }
h3 { font-size:15px; margin:0 0 8px; }
.facts { display:flex; flex-wrap:wrap; gap:12px; margin-top:18px; }
.fact { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 16px; min-width:130px; }
.fact .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:0.04em; }
.fact .v { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
.notes { margin:18px 0 0; padding:0; list-style:none; }
.notes li { background:#fffbeb; border:1px solid #fcd34d; border-left:4px solid #f59e0b; border-radius:8px;
  padding:8px 12px; margin-bottom:8px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:16px 18px;
  box-shadow:0 1px 2px rgba(0,0,0,0.04); }
.explain { color:var(--muted); font-size:13px; margin:0 0 12px; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:7px 9px; border-bottom:1px solid var(--line); white-space:nowrap; text-align:left; }
thead th { vertical-align:bottom; }
thead th.group { white-space:normal; }
thead th { background:#f9fafb; color:#374151; font-weight:600; font-size:12px; }
thead tr.groups th.group { text-align:center; border-left:1px solid var(--line); color:var(--accent); }
th.sub, td.first-of-group { border-left:1px solid var(--line); }
tbody tr:nth-child(even) { background:#fafafa; }
tbody tr.failed { background:#fff5f5; }
tbody tr:hover { background:#f0f6ff; }
td.num { text-align:right; font-variant-numeric:tabular-nums; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
td.none { color:#9ca3af; text-align:center; }
td.weak { color:#92400e; font-weight:600; }
td.name { font-weight:600; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600; }
.badge.pass { color:var(--pass); background:var(--pass-bg); }
.badge.fail { color:var(--fail); background:var(--fail-bg); }
.failures { margin:12px 0 0; padding-left:18px; color:var(--fail); font-size:13px; }
.figures { display:grid; grid-template-columns:repeat(auto-fit,minmax(560px,1fr)); gap:16px; }
.curves img { max-width:980px; margin:0 auto; }
figure { margin:0; }
figure img { width:100%; height:auto; display:block; border-radius:6px; }
figcaption { color:var(--muted); font-size:13px; margin-top:8px; }
.chips { margin-top:8px; }
.chip { display:inline-block; background:#ecfdf5; color:#047857; border:1px solid #a7f3d0; border-radius:999px;
  padding:0 9px; font-size:12px; margin:2px 4px 2px 0; }
.figure-note { color:#92400e; font-size:13px; margin-top:8px; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; margin-top:32px; }
"""


def _data_uri(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(data):
    columns = report_columns(data.groups)
    head = ["<thead>"]
    if data.groups:
        head.append('<tr class="groups">')
        head += [f'<th rowspan="2">{escape(c)}</th>' for g, c in columns if g is None and c != "constraints"]
        head += [f'<th class="group" colspan="2">{escape(g)}</th>' for g in data.groups]
        head.append('<th rowspan="2">constraints</th></tr><tr>')
        head += [
            f'<th class="sub">{escape(c)}</th>' if i % 2 == 0 else f"<th>{escape(c)}</th>"
            for i, (g, c) in enumerate((g, c) for g, c in columns if g is not None)
        ]
        head.append("</tr>")
    else:
        head.append("<tr>" + "".join(f"<th>{escape(c)}</th>" for _, c in columns) + "</tr>")
    head.append("</thead>")
    body = ["<tbody>"]
    for s in data.summaries:
        cls = ' class="failed"' if s.parity_passed is False or s.constraints_passed is False else ""
        body.append(f'<tr data-artifact="{escape(s.file)}"{cls}>')
        for i, ((group, _), cell) in enumerate(zip(columns, report_row(s, data.groups))):
            classes = [cell.kind if cell.kind in ("num", "none", "weak") else ""]
            if i == 0:
                classes.append("name")
            if group is not None and columns[i - 1][0] != group:
                classes.append("first-of-group")
            title = f' title="{escape(cell.title)}"' if cell.title else ""
            text = escape(cell.text)
            if cell.kind in ("pass", "fail"):
                text = f'<span class="badge {cell.kind}">{text}</span>'
            body.append(f'<td class="{" ".join(c for c in classes if c)}"{title}>{text}</td>')
        body.append("</tr>")
    body.append("</tbody>")
    return '<div class="table-wrap"><table id="artifacts">' + "".join(head + body) + "</table></div>"


def _figure(fig):
    parts = [f'<div class="card"><h3>{escape(fig.title)}</h3>']
    if fig.path is not None:
        parts.append(
            f'<figure><img src="{_data_uri(fig.path)}" alt="{escape(fig.title)} plot">'
            f"<figcaption>{escape(fig.caption)}</figcaption></figure>"
        )
        chips = "".join(f'<span class="chip">{escape(label)}</span>' for label in fig.front) or escape(NO_FRONT)
        parts.append(f'<div class="chips">Pareto front: {chips}</div>')
    parts += [f'<p class="figure-note">{escape(n)}</p>' for n in fig.notes]
    return "".join(parts) + "</div>"


def render_html(data):
    """The report (`ReportData`) as one standalone HTML document."""
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>edgekeras report: {escape(data.title)}</title>",
        # nothing may be fetched: no network, no scripts, images only as data: URIs
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>Run report: {escape(data.title)}</h1>",
        f'<div class="meta">Generated {escape(data.generated)} by edgekeras {__version__} from '
        f"<code>{escape(str(data.root))}</code></div></header>",
    ]
    facts = list(data.facts) + [("artifacts", str(len(data.summaries)))]
    validated = [s for s in data.summaries if s.validated]
    if validated:
        facts.append(("parity passed", f"{sum(1 for s in validated if s.parity_passed)}/{len(validated)}"))
    out.append(
        '<div class="facts">'
        + "".join(
            f'<div class="fact"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
            for k, v in facts
        )
        + "</div>"
    )
    if data.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul>")
    out.append("<h2>Artifacts</h2>")
    if data.summaries:
        reference = next((s.reference_accuracy for s in data.summaries if s.reference_accuracy is not None), None)
        note = TABLE_NOTE + (f" Keras model accuracy: {reference:.4f}." if reference is not None else "")
        out.append(f'<div class="card"><p class="explain">{escape(note)}</p>{_table(data)}')
        failures = [f"{s.file}: {f}" for s in data.summaries for f in s.failures]
        failures += [
            f"{s.file}: target constraint {constraint_text(c)}"
            for s in data.summaries
            for c in s.constraints or []
            if not c.get("passed")
        ]
        if failures:
            out.append('<ul class="failures">' + "".join(f"<li>{escape(f)}</li>" for f in failures) + "</ul>")
        out.append("</div>")
    else:
        out.append('<div class="card empty">No artifacts yet.</div>')
    out.append(mix_html(data.summaries))
    if data.figures:
        out.append('<h2>Trade-offs</h2><div class="figures">' + "".join(map(_figure, data.figures)) + "</div>")
    if data.curves is not None:
        out.append(
            f'<h2>Training curves</h2><div class="card curves"><figure><img src="{_data_uri(data.curves)}" '
            'alt="training curves"></figure></div>'
        )
    versions = ", ".join(f"{k} {v}" for k, v in data.versions.items())
    out.append(f"<footer>{escape(versions)}</footer>" if versions else "")
    out.append("</main></body></html>\n")
    return "\n".join(out)
