"""Training curves as a PNG: one panel per metric, train and validation together."""

from __future__ import annotations

import csv

from edgekeras.atomic import atomic_path

# the report's palette (report/plots.py colours TFLite and ONNX the same way)
TRAIN_COLOR, VALIDATION_COLOR = "#2563eb", "#ea580c"


def read_history(path):
    """history.csv (Keras' CSVLogger) as {column: [floats]}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                continue
    return columns


def plot_training_curves(history_csv, out_png):
    """Draws `history_csv` as `out_png` (atomically); returns the path, or None if nothing to draw.

    Matplotlib's object API without pyplot's global state: training draws this in a thread
    while it evaluates the model."""
    from matplotlib.figure import Figure

    history = read_history(history_csv)
    epochs = [int(e) + 1 for e in history.get("epoch", [])]
    metrics = [k for k in history if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    if not epochs or not metrics:
        return None
    fig = Figure(figsize=(4.6 * len(metrics), 3.4))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, history[metric], marker="o", ms=3, color=TRAIN_COLOR, label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", ms=3, color=VALIDATION_COLOR, label="validation")
        ax.set_title(metric, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png, force=True, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return out_png
