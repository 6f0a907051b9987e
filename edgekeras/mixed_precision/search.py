"""The accuracy-aware search, independent of the artifact format.

Like NNCF's `quantize_with_accuracy_control`: quantize everything; if the artifact misses the
budget, take the ranking subset (the validation samples whose int8 outputs stray furthest from
the Keras model's), rank every layer group by how much reverting it alone to float brings those
outputs back, then revert groups in that order, re-validating on the whole set after each and
stepping back from a revert that did not make the artifact better; groups stepped back are tried
again in a next pass (their neighbours may be float by then), until the budget is met or a pass
keeps nothing. The best mix found is what is returned, met or not.

A format supplies two functions: `build(float_layers, path)` writes the artifact with those
Keras layers kept in float, `open(path)` opens it in its runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.mixed_precision.groups import Group
from edgekeras.progress import Progress, note

if TYPE_CHECKING:
    from edgekeras.mixed_precision.judge import Judge, Measure
    from edgekeras.runtimes.session import Session

log = logging.getLogger(__name__)

# How many samples the ranking subset holds at most (NNCF's default is 300; ranking runs each
# group's candidate on it, so it is kept smaller here for 2-core machines).
RANKING_SAMPLES = 100


@dataclass
class Step:
    """One candidate validated on the whole set: the int8 start or one group reverted."""

    number: int
    action: str  # "int8" (the start) or "revert"
    group: tuple[str, ...]  # the layers this step reverted (none for the start)
    float_layers: tuple[str, ...]  # every layer kept in float in the candidate
    size_bytes: int
    measure: Measure
    kept: bool = True  # False: the revert did not make the artifact better, and was stepped back
    pass_number: int = 0  # the pass over the ranking that tried it (0: the start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "action": self.action,
            "layers": list(self.group),
            "float_layers": list(self.float_layers),
            "size_bytes": self.size_bytes,
            **self.measure.to_dict(),
            "kept": self.kept,
            "pass": self.pass_number,
        }


@dataclass
class MixResult:
    """The search's outcome: the best mix, where its artifact is, and how it was found."""

    path: Path  # the best candidate's artifact file
    float_layers: tuple[str, ...]
    groups: list[Group]
    steps: list[Step] = field(default_factory=list)
    ranking: list[tuple[Group, float]] = field(default_factory=list)  # (group, recovery), best first
    ranking_samples: int = 0

    @property
    def best(self) -> Step:
        return next(s for s in reversed(self.steps) if s.kept)

    @property
    def met(self) -> bool:
        return self.best.measure.passed


def search(
    groups: Sequence[Group],
    build: Callable[[list[str], Path], None],
    open_session: Callable[[Path], Session],
    judge: Judge,
    workdir: Path,
    label: str,
    suffix: str,
    base_float: Sequence[str] = (),
    ranking_samples: int = RANKING_SAMPLES,
) -> MixResult:
    """Finds the smallest-effort mix of int8 and float layers within `judge`'s tolerance.

    `base_float` layers (the recipe's keep_float) stay float throughout. Returns the best mix
    found; `MixResult.met` says whether it is within the tolerance.
    """
    counter = iter(range(1, 1_000_000))

    def candidate(float_layers):
        path = workdir / f"mix-{next(counter)}{suffix}"
        build(sorted(float_layers), path)
        return path

    current = set(base_float)
    start = candidate(current)
    start_out = judge.outputs(open_session(start))
    start_measure = judge.measure(start_out)
    judge.check_budget(start_measure)
    steps = [Step(0, "int8", (), tuple(sorted(current)), start.stat().st_size, start_measure)]
    note(f"{label}: start, all int8{_kept(current)}: {_numbers(start_measure)}")
    result = MixResult(start, tuple(sorted(current)), list(groups), steps)
    if start_measure.passed:
        return result
    candidates = [g for g in groups if not set(g.layers) <= current]
    # The ranking subset: the samples whose int8 outputs stray furthest from the Keras model's.
    errors = judge.sample_errors(start_out)
    index = np.sort(np.argsort(-errors, kind="stable")[: min(ranking_samples, len(errors))])
    result.ranking_samples = len(index)
    base = float(errors[index].mean())
    result.ranking = _rank(candidates, current, candidate, open_session, judge, index, base, label)
    best_path, best = start, start_measure
    # Passes over the ranking: a group stepped back is tried again in the next pass, once other
    # reverts have made its neighbours float (an int8 tensor between two layers stays int8 until
    # both are float). Passes end when one keeps nothing, or the budget is met.
    remaining = [group for group, _ in result.ranking]
    for number in range(1, len(remaining) + 1):
        progressed = False
        with Progress(f"Reverting layer groups ({label}, pass {number})", len(remaining)) as bar:
            for group in list(remaining):
                trial = current | set(group.layers)
                path = candidate(trial)
                measure = judge.measure(judge.outputs(open_session(path)))
                kept = measure.better_than(best)
                size = path.stat().st_size
                steps.append(
                    Step(len(steps), "revert", group.layers, tuple(sorted(trial)), size, measure, kept, number)
                )
                verdict = "kept" if kept else "stepped back: not better"
                note(f"{label}: step {len(steps) - 1}, {group.name} to float: {_numbers(measure)} ({verdict})")
                bar.update(status=group.name)
                if not kept:
                    path.unlink(missing_ok=True)
                    continue
                best_path.unlink(missing_ok=True)
                current, best_path, best, progressed = trial, path, measure, True
                remaining.remove(group)
                if measure.passed:
                    break
        if best.passed or not progressed or not remaining:
            break
    result.path, result.float_layers = best_path, tuple(sorted(current))
    return result


def _rank(candidates, current, candidate, open_session, judge, index, base, label) -> list[tuple[Group, float]]:
    """(group, recovery) best first: how much reverting each group alone lowers the ranking
    subset's mean output error below `base`, the start's."""
    ranked = []
    with Progress(f"Ranking layer groups ({label})", len(candidates)) as bar:
        for group in candidates:
            path = candidate(current | set(group.layers))
            error = float(judge.sample_errors(judge.outputs(open_session(path), index), index).mean())
            path.unlink(missing_ok=True)
            ranked.append((group, base - error))
            bar.update()
    order = sorted(range(len(ranked)), key=lambda i: (-ranked[i][1], i))
    return [ranked[i] for i in order]


def _kept(layers) -> str:
    return f" but {', '.join(sorted(layers))} (keep_float)" if layers else ""


def _numbers(measure: Measure) -> str:
    accuracy = "" if measure.accuracy_delta is None else f"accuracy {measure.accuracy_delta:+.2f} points, "
    return f"{accuracy}cosine {measure.cosine:.5f}, {'within' if measure.passed else 'over'} budget"
