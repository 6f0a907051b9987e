"""Trade-off plots for a report: latency vs accuracy and size vs accuracy, Pareto front marked;
for a pruned model also weight sparsity vs accuracy, with the unpruned model's artifacts beside.

A point is on the Pareto front when no other artifact is at least as good on both axes and
better on one (lower latency/size or higher sparsity, higher accuracy). Artifacts that failed parity are drawn
(a red cross) but never on the front: they are not a deployment choice. What cannot be drawn
(no accuracy, no benchmark) is returned as notes for the report to say, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.atomic import atomic_path
from edgekeras.formats import all_formats
from edgekeras.reporting.summary import LOCAL

if TYPE_CHECKING:
    from edgekeras.hints import PathLike
    from edgekeras.reporting.summary import ArtifactSummary

UNKNOWN_FORMAT_COLOR = "#6b7280"  # a manifest naming a format this edgekeras has no record of
FAILED_COLOR = "#dc2626"


@dataclass
class Point:
    label: str
    x: float
    y: float  # accuracy in percent
    format: str
    failed: bool


@dataclass
class Figure:
    """One trade-off plot (or why it could not be drawn)."""

    key: str  # also the PNG's stem in the run folder
    title: str
    caption: str
    path: Path | None = None
    notes: list[str] = field(default_factory=list)
    front: list[str] = field(default_factory=list)  # labels of the points on the Pareto front
    higher_x_is_better: bool = False  # sparsity: more is better; latency and size: less


# Weight sparsity below this is no pruned model: the sparsity plot is drawn only above it.
PRUNED_SPARSITY = 0.1


def _front(points: Sequence[Point], higher_x_is_better: bool) -> list[int]:
    sign = -1 if higher_x_is_better else 1
    return pareto_front([(sign * p.x, p.y) for p in points])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (x, y) no other point dominates: lower-or-equal x and
    higher-or-equal y, strictly better in one. Ties are all kept."""
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def _no_accuracy(summaries: Iterable[ArtifactSummary]) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for s in summaries:
        if s.accuracy is None:
            by_reason.setdefault(s.no_accuracy_reason or "", []).append(s.file)  # never None: no accuracy here
    return [
        f"No accuracy for {', '.join(files)} ({reason}): not plotted."
        + (" Validate with `--data` (labels under `y`) to place them." if "metric" not in reason else "")
        for reason, files in by_reason.items()
    ]


def size_figure(summaries: list[ArtifactSummary]) -> tuple[Figure, dict[str, list[Point]]]:
    """Size vs accuracy: one point per artifact with an accuracy."""
    fig = Figure(
        "size_vs_accuracy",
        "Size vs accuracy",
        "Artifact file size against accuracy on the labelled data. Ringed points and the dashed "
        "line form the Pareto front (nothing is both smaller and more accurate).",
        notes=_no_accuracy(summaries),
    )
    points = [
        Point(s.label, s.size_bytes / 1024, 100 * s.accuracy, s.format, s.parity_passed is False)
        for s in summaries
        if s.accuracy is not None
    ]
    return fig, {LOCAL: points}


def latency_figure(summaries: list[ArtifactSummary]) -> tuple[Figure, dict[str, list[Point]]]:
    """Latency (p50) vs accuracy: one point per artifact and benchmark group, a panel per device."""
    fig = Figure(
        "latency_vs_accuracy",
        "Latency vs accuracy",
        "Median (p50) latency at batch 1 against accuracy on the labelled data, one point per "
        "artifact and runtime setting. Ringed points and the dashed line form the Pareto front "
        "(nothing is both faster and more accurate).",
        notes=_no_accuracy(summaries),
    )
    unbenched = [s.file for s in summaries if not s.benchmarks]
    if unbenched:
        fig.notes.append(
            f"Not benchmarked: {', '.join(unbenched)}. Run `edgekeras bench` on the artifacts folder to measure them."
        )
    panels: dict[str, list[Point]] = {}
    for s in summaries:
        if s.accuracy is None:
            continue
        for group, lat in s.benchmarks.items():
            if not isinstance(lat.get("p50"), (int, float)):
                continue
            device = s.devices.get(group, LOCAL)
            # name the runtime setting only where this artifact has several on the device
            several = sum(1 for g in s.benchmarks if s.devices.get(g, LOCAL) == device) > 1
            label = f"{s.label} · {group.split(' @ ')[0]}" if several else s.label
            panels.setdefault(device, []).append(
                Point(label, float(lat["p50"]), 100 * s.accuracy, s.format, s.parity_passed is False)
            )
    return fig, panels


def sparsity_figure(summaries: list[ArtifactSummary]) -> tuple[Figure, dict[str, list[Point]]]:
    """Weight sparsity vs accuracy: one point per artifact with both (pruned and unpruned)."""
    fig = Figure(
        "sparsity_vs_accuracy",
        "Sparsity vs accuracy",
        "Fraction of exact-zero weights in each artifact against accuracy on the labelled data; the "
        "unpruned model's artifacts, where the run was pruned from one, are drawn beside. Ringed points "
        "and the dashed line form the Pareto front (nothing is both sparser and more accurate).",
        notes=_no_accuracy(summaries),
        higher_x_is_better=True,
    )
    points = [
        Point(s.label, 100 * s.sparsity, 100 * s.accuracy, s.format, s.parity_passed is False)
        for s in summaries
        if s.accuracy is not None and s.sparsity is not None
    ]
    return fig, {LOCAL: points}


def _is_pruned(summaries: list[ArtifactSummary]) -> bool:
    return any((s.sparsity or 0) >= PRUNED_SPARSITY for s in summaries)


def tradeoff_figures(summaries: list[ArtifactSummary], out_dir: PathLike) -> list[Figure]:
    """Draws the plots into `out_dir` (PNG, written atomically); returns the `Figure`s. The
    sparsity plot is drawn only for a pruned model."""
    figures = []
    builds = [(latency_figure, "p50 latency (ms, batch 1)"), (size_figure, "size (KiB)")]
    if _is_pruned(summaries):
        builds.append((sparsity_figure, "weight sparsity (% exact zeros)"))
    for build, xlabel in builds:
        fig, panels = build(summaries)
        panels = {d: pts for d, pts in panels.items() if pts}
        path = Path(out_dir) / f"{fig.key}.png"
        if panels:
            for device, points in panels.items():
                front = _front([p for p in points if not p.failed], fig.higher_x_is_better)
                passing = [p for p in points if not p.failed]
                where = f" @ {device}" if len(panels) > 1 else ""
                fig.front += [passing[i].label + where for i in front]
            _draw(panels, xlabel, path, fig.higher_x_is_better)
            fig.path = path
        else:
            if path.exists():  # a stale plot from an earlier report would contradict this one
                path.unlink()
            fig.notes.append(f"{fig.title}: nothing to plot.")
        figures.append(fig)
    return figures


def _draw(panels, xlabel, path, higher_x_is_better=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(panels)
    figure, axes = plt.subplots(1, n, figsize=(6.8 * n, 4.4), squeeze=False)
    formats = []
    for ax, (device, points) in zip(axes[0], panels.items()):
        passing = [p for p in points if not p.failed]
        on_front = {id(passing[i]) for i in _front(passing, higher_x_is_better)}
        front = sorted((p for p in passing if id(p) in on_front), key=lambda p: (p.x, p.y))
        if len(front) > 1:
            ax.step(
                [p.x for p in front],
                [p.y for p in front],
                where="pre" if higher_x_is_better else "post",
                ls="--",
                lw=1.4,
                color="#16a34a",
                zorder=1,
            )
        for p in points:
            if p.format not in formats:
                formats.append(p.format)
            if p.failed:
                ax.scatter(p.x, p.y, marker="X", s=110, color=FAILED_COLOR, edgecolor="white", lw=0.8, zorder=3)
                continue
            ax.scatter(p.x, p.y, s=70, color=_color(p.format), edgecolor="white", lw=0.8, zorder=3)
            if id(p) in on_front:
                ax.scatter(p.x, p.y, s=260, facecolor="none", edgecolor="#16a34a", lw=2, zorder=2)
        xs = [p.x for p in points]
        if not higher_x_is_better and min(xs) > 0 and max(xs) / min(xs) > 20:  # sizes and latencies
            ax.set_xscale("log")
        ax.margins(x=0.18, y=0.22)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        if device != LOCAL:  # the report names the plot; a panel per device needs its device
            ax.set_title(device, fontsize=11)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    handles = [Line2D([], [], marker="o", ls="", color=_color(f), label=f) for f in formats]
    handles.append(Line2D([], [], marker="o", ls="--", color="#16a34a", mfc="none", mew=2, ms=11, label="Pareto front"))
    if any(p.failed for pts in panels.values() for p in pts):
        handles.append(Line2D([], [], marker="X", ls="", color=FAILED_COLOR, ms=9, label="parity failed"))
    legend = axes[0][-1].legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    figure.tight_layout()
    figure.canvas.draw()  # final layout first: label positions are checked in pixels
    for ax, points in zip(axes[0], panels.values()):
        _place_labels(figure, ax, points, legend if ax is axes[0][-1] else None)
    with atomic_path(path, force=True, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def _color(fmt):
    """The format record's colour (edgekeras.formats)."""
    record = all_formats().get(fmt)
    return record.colour if record is not None else UNKNOWN_FORMAT_COLOR


# label offsets (points) tried in turn until a label overlaps no other label or marker
_OFFSETS = [
    (8, 6, "left"),
    (8, -14, "left"),
    (-8, 6, "right"),
    (-8, -14, "right"),
    (8, 18, "left"),
    (8, -26, "left"),
    (-8, 18, "right"),
    (-8, -26, "right"),
    (0, 30, "center"),
    (0, -38, "center"),
]


def _place_labels(figure, ax, points, legend=None):
    renderer = figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = []
    if legend is not None:
        box = legend.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    for p in points:  # markers are obstacles too
        x, y = ax.transData.transform((p.x, p.y))
        taken.append((x - 7, y - 7, x + 7, y + 7))
    for p in sorted(points, key=lambda p: (-p.y, p.x)):
        text = f"{p.label} (parity FAIL)" if p.failed else p.label
        best = None
        for dx, dy, ha in _OFFSETS:
            ann = ax.annotate(
                text,
                (p.x, p.y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                fontsize=9,
                color=FAILED_COLOR if p.failed else "#1f2937",
                zorder=4,
            )
            box = ann.get_window_extent(renderer)
            rect = (box.x0 - 2, box.y0 - 1, box.x1 + 2, box.y1 + 1)
            inside = frame.x0 <= rect[0] and rect[2] <= frame.x1 and frame.y0 <= rect[1] and rect[3] <= frame.y1
            if inside and not any(_overlap(rect, t) for t in taken):
                best = (ann, rect)
                break
            ann.remove()
        if best is None:  # crowded: keep the first position rather than lose the label
            dx, dy, ha = _OFFSETS[0]
            ann = ax.annotate(
                text,
                (p.x, p.y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                fontsize=9,
                color=FAILED_COLOR if p.failed else "#1f2937",
                zorder=4,
            )
            box = ann.get_window_extent(renderer)
            best = (ann, (box.x0, box.y0, box.x1, box.y1))
        taken.append(best[1])


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
