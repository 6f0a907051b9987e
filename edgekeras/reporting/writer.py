"""`write_report(RUN_DIR)`: gathers a run's manifests and plots, writes report.md and report.html.

Reads only files (manifests, run.json, history.csv): no TensorFlow, so a report can be made
anywhere the artifacts are. Every file is written atomically; the HTML embeds its images,
so it can be mailed or archived on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict, PathLike
    from edgekeras.reporting.plots import Figure
    from edgekeras.reporting.run_folder import ReportFolder
    from edgekeras.reporting.summary import ArtifactSummary
    from edgekeras.run_folder import RunFolder

from edgekeras.atomic import write_text
from edgekeras.plots import plot_training_curves
from edgekeras.reporting.html import render_html
from edgekeras.reporting.markdown import render_markdown
from edgekeras.reporting.plots import tradeoff_figures
from edgekeras.reporting.run_folder import ReportFolder, open_report_folder
from edgekeras.reporting.summary import benchmark_groups, summarize
from edgekeras.reporting.table import report_columns, report_row, text_table


@dataclass
class ReportData:
    """Everything the Markdown and HTML renderers show."""

    title: str
    root: Path
    generated: str
    facts: list[tuple[str, str]]  # [(label, text)] about the run
    summaries: list[ArtifactSummary]  # one per artifact
    groups: list[str]  # benchmark column groups
    figures: list[Figure]  # trade-off plots
    curves: Path | None  # training curves PNG
    notes: list[str] = field(default_factory=list)  # what the reader should know first
    artifacts_dir: Path | None = None

    @property
    def versions(self) -> dict[str, str]:
        """Tool versions recorded in the manifests (the first one that has them)."""
        return next((s.tool_versions for s in self.summaries if s.tool_versions), {})


@dataclass
class Report:
    """What `write_report` wrote: paths, and the table rows as raw values."""

    markdown: Path
    html: Path
    plots: dict[str, Path]  # name -> PNG path (only those drawn)
    rows: list[JSONDict]  # ArtifactSummary.to_dict() per artifact
    notes: list[str]
    groups: list[str] = field(default_factory=list)  # benchmark column groups
    cells: list[list[str]] = field(default_factory=list)  # the table's texts, for terminals

    def text_table(self) -> str:
        """The report table as aligned plain text, benchmark groups numbered and named below it
        (their names are long); '' when there are no artifacts."""
        if not self.cells:
            return ""
        number = {g: i for i, g in enumerate(self.groups, 1)}
        columns = [c if g is None else f"[{number[g]}] {c}" for g, c in report_columns(self.groups)]
        legend = "   ".join(f"[{i}] {g}" for g, i in number.items())
        return text_table(self.cells, columns) + (f"\n\n{legend}" if legend else "")

    def to_dict(self) -> JSONDict:
        return {
            "markdown": str(self.markdown),
            "html": str(self.html),
            "plots": {k: str(v) for k, v in self.plots.items()},
            "benchmark_groups": self.groups,
            "rows": self.rows,
            "notes": self.notes,
        }


def _facts(folder: ReportFolder) -> list[tuple[str, str]]:
    state = folder.state
    if not folder.is_run:
        return [("folder", "artifacts only (no run.json)")]
    facts = [("status", str(state.get("status", "—")))]
    if state.get("epochs") is not None:
        facts.append(("epochs trained", str(state["epochs"])))
    for key, value in (state.get("test_metrics") or {}).items():
        if isinstance(value, (int, float)):
            facts.append((f"test {key}", f"{value:.4f}"))
    kfold = state.get("kfold")
    if kfold:  # cross-validated: every metric's mean ± std over the folds
        facts.append(("k-fold", f"{len(kfold['folds'])} folds, final: {kfold['final']}"))
        facts += [(f"{k} (folds)", f"{m:.4f} ± {kfold['std'][k]:.4f}") for k, m in kfold["mean"].items()]
    return facts


def _notes(folder: ReportFolder, summaries: list[ArtifactSummary]) -> list[str]:
    notes = []
    if folder.is_run and folder.state.get("status") == "training":
        notes.append("Training has not finished: this report shows the run as it is now.")
    if not summaries:
        where = folder.root / "artifacts" if folder.is_run else folder.root
        notes.append(
            f"No artifacts with manifests in '{where}' yet. "
            f"Convert the model with `edgekeras convert {folder.root}` to compare artifacts."
        )
        return notes
    unvalidated = [s.file for s in summaries if not s.validated]
    if unvalidated:
        notes.append(f"Not validated: {', '.join(unvalidated)}. Run `edgekeras validate` to check parity.")
    if all(s.accuracy is None for s in summaries):
        reasons = sorted({r for s in summaries if (r := s.no_accuracy_reason)})
        notes.append(f"No accuracy was measured ({'; '.join(reasons)}): nothing can be plotted against accuracy.")
    weak = [s.file for s in summaries if s.weak]
    if weak:
        notes.append(
            f"Validated on generated inputs only: {', '.join(weak)}. Their verdicts are weak: quantized "
            "artifacts were calibrated for other values. Validate with labelled data (`edgekeras validate "
            "ARTIFACT --reference MODEL --data DATA.npz`)."
        )
    unlabelled = sorted({o for s in summaries for o in s.unlabelled})
    if unlabelled:
        notes.append(f"Outputs without labels (judged on parity only): {', '.join(unlabelled)}.")
    failed = [s.file for s in summaries if s.parity_passed is False]
    if failed:
        notes.append(
            f"Parity FAILED: {', '.join(failed)} — marked in the table and the plots, and kept off the Pareto front."
        )
    if not any(s.benchmarks for s in summaries):
        notes.append("No benchmark results: run `edgekeras bench` on the artifacts to add latency.")
    broken = [s.file for s in summaries if s.constraints_passed is False]
    if broken:
        notes.append(f"Target constraints NOT met: {', '.join(broken)}.")
    return notes


def _unpruned_note(source: RunFolder | None, unpruned: list[ArtifactSummary]) -> list[str]:
    if source is None or not unpruned:
        return []
    return [f'The plots also show the unpruned model\'s artifacts ("unpruned ..."), from {source.root}.']


def collect(run_root: PathLike) -> ReportData:
    """Reads a run folder (or a folder of artifacts) into `ReportData` and draws its plots."""
    folder = open_report_folder(run_root)
    summaries = [summarize(p) for p in folder.artifacts]
    curves = folder.curves if folder.is_run else None
    if curves is not None and not curves.exists() and folder.history.exists():
        plot_training_curves(folder.history, curves)
    source = folder.pruned_from
    # the plots set a pruned model beside the model it was pruned from; the table is this run's
    unpruned = [replace(summarize(p), origin="unpruned") for p in source.find_artifacts()] if source else []
    figures = tradeoff_figures(summaries + unpruned, folder.root) if summaries else []
    return ReportData(
        title=folder.name,
        root=folder.root,
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        facts=_facts(folder),
        summaries=summaries,
        groups=benchmark_groups(summaries),
        figures=figures,
        curves=curves if curves is not None and curves.exists() else None,
        notes=_notes(folder, summaries) + _unpruned_note(source, unpruned),
        artifacts_dir=folder.artifacts[0].parent if folder.artifacts else None,
    )


def write_report(run_root: PathLike) -> Report:
    """Writes `report.md` and a self-contained `report.html` in a run folder (or a folder of
    artifacts): the artifact table, trade-off plots with the Pareto front, training curves.

    Returns a `Report` with the paths written and the table rows. Raises `InputError` when
    `run_root` is neither a run folder nor a folder of artifacts with manifests.
    """
    data = collect(run_root)
    paths = ReportFolder(data.root)
    write_text(paths.markdown, render_markdown(data), force=True)
    write_text(paths.html, render_html(data), force=True)
    cells = [[cell.text for cell in report_row(s, data.groups)] for s in data.summaries]
    return Report(
        paths.markdown,
        paths.html,
        {f.key: f.path for f in data.figures if f.path is not None},
        [s.to_dict() for s in data.summaries],
        data.notes,
        data.groups,
        cells,
    )
