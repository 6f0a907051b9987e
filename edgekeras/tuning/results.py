"""A search's results: the trials table (CSV, JSON, terminal), its plots and its report page.

Read from the oracle's trial states and the trial records (`trials/ID/trial.json`) only, so
the chief of a distributed search writes them for trials its workers ran. No TensorFlow.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from html import escape
from typing import TYPE_CHECKING, Any

from edgekeras.atomic import atomic_path, write_text
from edgekeras.reporting.html import CSS
from edgekeras.reporting.plots import pareto_front
from edgekeras.reporting.table import markdown_table, text_table
from edgekeras.version import __version__

if TYPE_CHECKING:
    from edgekeras.tuning.folder import TuningFolder
    from edgekeras.tuning.settings import TuneSettings

# Artifact measures shown as columns, when an artifact objective measured them.
MEASURE_COLUMNS = ("accuracy", "size_kb", "p50_ms")


def collect(states: list[dict[str, Any]], folder: TuningFolder, settings: TuneSettings) -> list[dict[str, Any]]:
    """One row per trial: trial, values, score, status, measures, run folder; `best` marks the
    best completed trial, `pareto` the trials on the accuracy-vs-latency front."""
    rows = []
    for state in states:
        record = folder.read_record(state["trial"])
        status = record.get("status") or state["status"]
        if state["status"] in ("failed", "invalid") and status == "running":
            status = "failed"
        rows.append(
            {
                "trial": state["trial"],
                "values": record.get("values") or {},
                "epochs": record.get("epochs"),  # Hyperband's budget for the trial
                "score": record.get("score"),
                "status": status,
                "measures": {k: v for k, v in (record.get("measures") or {}).items() if k != "violations"},
                "violations": (record.get("measures") or {}).get("violations") or [],
                "message": record.get("message"),
                "run": record.get("run"),
                "best": False,
                "pareto": False,
            }
        )
    done = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    if done:
        settings.objective.better(done, key=lambda r: r["score"])["best"] = True
    measured = [r for r in rows if r["status"] in ("completed", "infeasible") and _point(r) is not None]
    for i in pareto_front([_point(r) for r in measured]):
        measured[i]["pareto"] = True
    return rows


def _point(row):
    """(p50 ms, accuracy) of a trial's artifact, or None."""
    m = row["measures"]
    return None if m.get("p50_ms") is None or m.get("accuracy") is None else (m["p50_ms"], m["accuracy"])


def table(rows: list[dict[str, Any]], settings: TuneSettings) -> tuple[list[str], list[list[str]]]:
    """(columns, cells) of the results table: trial, each search space, score, measures, status."""
    paths = list(dict.fromkeys(p for r in rows for p in r["values"]))
    measures = [m for m in MEASURE_COLUMNS if any(r["measures"].get(m) is not None for r in rows)]
    epochs = ["epochs"] if any(r.get("epochs") for r in rows) else []
    columns = ["trial", *paths, *epochs, settings.objective.name, *measures, "status"]
    cells = []
    for r in rows:
        status = r["status"] + (" (best)" if r["best"] else "") + (" (pareto)" if r["pareto"] else "")
        if r["violations"] or r["message"]:
            status += f": {'; '.join(r['violations']) or r['message']}"
        cells.append(
            [
                r["trial"],
                *(_text(r["values"].get(p)) for p in paths),
                *(_text(r.get("epochs")) for _ in epochs),
                _text(r["score"]),
                *(_text(r["measures"].get(m)) for m in measures),
                status,
            ]
        )
    return columns, cells


def _text(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def write_results(folder: TuningFolder, rows: list[dict[str, Any]], settings: TuneSettings) -> dict[str, Any]:
    """Writes trials.csv, trials.json, the plots and report.md/report.html; returns the paths."""
    columns, cells = table(rows, settings)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([columns, *cells])
    write_text(folder.table_csv, buf.getvalue(), force=True)
    write_text(folder.table_json, json.dumps(rows, indent=2, default=str) + "\n", force=True)
    plots = {"scores": _plot_scores(folder, rows, settings)}
    if any(_point(r) is not None for r in rows):
        plots["pareto"] = _plot_pareto(folder, rows, settings)
    _write_report(folder, rows, settings, columns, cells, plots)
    return {"csv": folder.table_csv, "json": folder.table_json, "plots": plots, "report": folder.report}


def terminal_table(rows: list[dict[str, Any]], settings: TuneSettings) -> str:
    return text_table(*reversed(table(rows, settings)))


def _plot_scores(folder, rows, settings):
    """Score per trial (in start order) and the best so far; infeasible trials marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    scored = [(i, r) for i, r in enumerate(rows, 1) if r["score"] is not None]
    ok = [(i, r["score"]) for i, r in scored if r["status"] == "completed"]
    bad = [(i, r["score"]) for i, r in scored if r["status"] != "completed"]
    if ok:
        ax.plot(*zip(*ok), "o", color="#2563eb", label="trial")
        best, steps = None, []
        for i, score in ok:
            best = score if best is None else settings.objective.better(best, score)
            steps.append((i, best))
        ax.step(*zip(*steps), where="post", color="#15803d", label="best so far")
    if bad:
        ax.plot(*zip(*bad), "x", color="#ea580c", label="infeasible")
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel(settings.objective.name)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if ok or bad:
        ax.legend(fontsize=8)
    return _save(fig, folder.plot("scores"))


def _plot_pareto(folder, rows, settings):
    """Artifact accuracy against p50 latency per trial, the Pareto front joined."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    points = [(r, _point(r)) for r in rows if _point(r) is not None]
    for r, (x, y) in points:
        ax.plot(x, y, "o" if r["status"] == "completed" else "x", color="#2563eb" if r["pareto"] else "#9ca3af")
        ax.annotate(r["trial"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = sorted(p for r, p in points if r["pareto"])
    if front:
        ax.plot(*zip(*front), "-", color="#2563eb", alpha=0.6, label="Pareto front")
        ax.legend(fontsize=8)
    limit = settings.objective.constraints.get("max_p50_ms")
    if limit:
        ax.axvline(limit, color="#b91c1c", linestyle="--", linewidth=1)
    ax.set_xlabel("p50 latency (ms, batch 1)")
    ax.set_ylabel("artifact accuracy (validation split)")
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, folder.plot("pareto"))


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path, force=True, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def _facts(rows, settings):
    best = next((r for r in rows if r["best"]), None)
    facts = [
        ("tuner", settings.tuner),
        ("objective", f"{settings.objective.name} ({settings.objective.direction})"),
        ("trials", f"{sum(r['status'] == 'completed' for r in rows)} completed of {len(rows)}"),
    ]
    if best is not None:
        facts.append(("best", f"trial {best['trial']}: {best['score']:.4f}"))
    return facts


def _write_report(folder, rows, settings, columns, cells, plots):
    title = f"Tuning report: {folder.root.name}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    best = next((r for r in rows if r["best"]), None)
    md = [f"# {title}", "", f"Generated {generated} by edgekeras {__version__} from `{folder.root}`.", ""]
    md += [f"- {k.capitalize()}: {v}" for k, v in _facts(rows, settings)]
    if best is not None:
        md += [f"- Best model: `{folder.best}` (a run folder: `edgekeras convert {folder.best}`)"]
    md += ["", "## Trials", "", markdown_table(cells, columns), ""]
    md += [f"![{name}]({path.name})" for name, path in plots.items()] + [""]
    write_text(folder.report, "\n".join(md), force=True)
    html = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{escape(title)}</h1><div class='meta'>Generated {generated} by edgekeras {__version__}</div>",
        '<div class="facts">',
        *(
            f'<div class="fact"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
            for k, v in _facts(rows, settings)
        ),
        "</div></header><h2>Trials</h2><div class='card table-wrap'><table><thead><tr>",
        *(f"<th>{escape(c)}</th>" for c in columns),
        "</tr></thead><tbody>",
        *("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in cells),
        "</tbody></table></div><h2>Plots</h2><div class='figures'>",
        *(
            f"<div class='card'><h3>{escape(name)}</h3><figure><img alt='{escape(name)}' src='data:image/png;base64,"
            f"{base64.b64encode(path.read_bytes()).decode('ascii')}'></figure></div>"
            for name, path in plots.items()
        ),
        "</div></main></body></html>",
    ]
    write_text(folder.report_html, "\n".join(html), force=True)


def read_rows(folder: TuningFolder) -> list[dict[str, Any]]:
    """The rows `write_results` wrote (trials.json), or [] before any."""
    return json.loads(folder.table_json.read_text()) if folder.table_json.exists() else []
