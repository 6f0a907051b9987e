"""The artifact comparison table (terminal and Markdown) and a run folder's `report.md`."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ["artifact", "format", "precision", "size", "accuracy", "Δ acc (pts)", "max abs err",
           "parity", "runtime", "p50 ms", "p90 ms", "p99 ms"]


def _size(n):
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MB"


def _num(value, fmt):
    return "—" if value is None else format(value, fmt)


def artifact_rows(artifacts):
    """One row per artifact (and per benchmark runtime) from the manifests."""
    from edgekeras.artifact import as_artifact

    rows = []
    for art in map(as_artifact, artifacts):
        m = art.manifest
        v = m.get("validation") or {}
        benches = m.get("benchmarks") or [{}]
        for b in benches:
            lat = b.get("latency_ms", {})
            rows.append([
                art.path.name, m.get("format", "?"), m.get("precision", "?"), _size(art.size_bytes),
                _num(v.get("accuracy"), ".4f"), _num(v.get("accuracy_delta"), "+.2f"),
                _num(v.get("max_abs_error"), ".2e"),
                "—" if not v else ("pass" if v.get("passed") else "FAIL"),
                b.get("runtime", m.get("runtime", "—")),
                _num(lat.get("p50"), ".3f"), _num(lat.get("p90"), ".3f"), _num(lat.get("p99"), ".3f"),
            ])
    return rows


def text_table(rows, columns=COLUMNS):
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(str(c).ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def markdown_table(rows, columns=COLUMNS):
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def find_artifacts(folder):
    """Every artifact file in `folder` that has a manifest beside it."""
    from edgekeras.export import EXPORTERS, _load_all

    _load_all()
    suffixes = {e.suffix for e in EXPORTERS.values()}
    return sorted(p for p in Path(folder).glob("*") if p.suffix in suffixes and p.with_suffix(".json").exists())


def write_report(run_root):
    """Writes `report.md` in a run folder: training summary, curves, artifact table."""
    from edgekeras.atomic import write_text
    from edgekeras.run_dir import RunDir

    run = RunDir(Path(run_root))
    state = run.state
    lines = [f"# Run report: {state.get('name', run.root.name)}", ""]
    lines.append(f"- Epochs trained: {state.get('epochs', '—')}")
    for key, value in (state.get("test_metrics") or {}).items():
        lines.append(f"- Test {key}: {value:.4f}")
    lines.append("")
    if run.curves.exists():
        lines += ["## Training curves", "", f"![training curves]({run.curves.name})", ""]
    artifacts = find_artifacts(run.artifacts) if run.artifacts.exists() else []
    if artifacts:
        lines += ["## Artifacts", "",
                  "Accuracy and parity on the held-out test split; latency at batch 1 in each "
                  "artifact's runtime.", "", markdown_table(artifact_rows(artifacts)), ""]
        failures = []
        for path in artifacts:
            v = json.loads(path.with_suffix(".json").read_text()).get("validation") or {}
            failures += [f"- {path.name}: {f}" for f in v.get("failures", [])]
        if failures:
            lines += ["## Validation failures", "", *failures, ""]
    write_text(run.report, "\n".join(lines), force=True)
    return run.report
