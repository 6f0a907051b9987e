"""Judging a site's rows: within the accuracy budget and the target's constraints, fastest first.

A candidate is eligible when it was measured, its accuracy dropped by at most the budget (in
points of the main metric, against the Keras model) and its lowest output cosine is at least
`min_cosine` (when given), and every constraint of the target holds (latency included). The
chosen one is the eligible candidate with the lowest p50; every row says why it was chosen or
rejected. The precision's own parity verdict is shown, but the budget is the user's word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekeras.deployment.measure import Row
from edgekeras.reporting.table import constraint_text


@dataclass(frozen=True)
class Budget:
    """What 'accurate enough' means for this deploy run."""

    accuracy: float | None = None  # max accuracy drop, points
    min_cosine: float | None = None

    def misses(self, row: Row) -> str | None:
        """Why `row` misses the budget (None: it meets it)."""
        if self.accuracy is not None:
            delta = row.accuracy_delta
            if delta is None:
                return "no accuracy measured (no labelled classifier output)"
            if -delta > self.accuracy + 1e-9:
                return f"accuracy {delta:+.2f} pts, over the {self.accuracy:g}-point budget"
        if self.min_cosine is not None:
            cosine = row.cosine
            if cosine is None or cosine < self.min_cosine:
                return f"cosine {cosine:.5f} below --min-cosine {self.min_cosine:g}"
        return None

    def shortfall(self, row: Row) -> float:
        """How far `row` is from the budget (0 within it); ranks the best of a failed site."""
        gap = 0.0
        if self.accuracy is not None:
            gap += max(0.0, -(row.accuracy_delta if row.accuracy_delta is not None else -1e9) - self.accuracy)
        if self.min_cosine is not None:
            gap += 100 * max(0.0, self.min_cosine - (row.cosine if row.cosine is not None else -1.0))
        return gap


def judge(rows: Sequence[Row], budget: Budget) -> Row | None:
    """Sets every row's status and reason; returns the chosen row (None when none is eligible)."""
    eligible = []
    for row in rows:
        if row.error is not None:
            row.status, row.reason = "rejected", row.error
            continue
        if not row.measured:
            row.status = "not measured"
            continue
        missed = budget.misses(row)
        broken = [c for c in row.constraints if not c.get("passed")]
        if missed or broken:
            reasons = ([missed] if missed else []) + [f"constraint {constraint_text(c)}" for c in broken]
            row.status, row.reason = "rejected", "; ".join(reasons)
            continue
        row.status = "eligible"
        eligible.append(row)
    eligible.sort(key=lambda r: r.p50 if r.p50 is not None else float("inf"))
    if not eligible:
        return None
    chosen, rest = eligible[0], eligible[1:]
    chosen.status = "chosen"
    within = _within(chosen, budget)
    chosen.reason = f"fastest within the budget and constraints: p50 {chosen.p50:.3f} ms{within}"
    if rest:
        chosen.reason += f"; next {rest[0].candidate.label} at {rest[0].p50:.3f} ms"
    for row in rest:
        ratio = (row.p50 or 0.0) / max(chosen.p50 or 0.0, 1e-9)
        row.reason = f"within the budget{_within(row, budget)}, but {ratio:.2f}x the chosen p50"
    return chosen


def best_effort(rows: Sequence[Row], budget: Budget) -> Row | None:
    """The measured row closest to the budget (then fastest): named when none meets it."""
    measured = [r for r in rows if r.measured]
    return min(measured, key=lambda r: (budget.shortfall(r), r.p50 or 0.0), default=None)


def _within(row: Row, budget: Budget) -> str:
    parts = []
    if budget.accuracy is not None and row.accuracy_delta is not None:
        parts.append(f"accuracy {row.accuracy_delta:+.2f} pts")
    if budget.min_cosine is not None and row.cosine is not None:
        parts.append(f"cosine {row.cosine:.5f}")
    return f" ({', '.join(parts)})" if parts else ""
