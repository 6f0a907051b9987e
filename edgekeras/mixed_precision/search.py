"""The accuracy-aware search, independent of the artifact format.

Like NNCF's `quantize_with_accuracy_control`: quantize everything; if the artifact misses the
budget, rank every layer group by how much reverting it alone to a higher precision (float32 or
int16x8) brings the outputs of the ranking subset back (RANKING_SAMPLES evenly spaced validation
samples), then revert the ranking's best groups together, then put back in int8 every group the
budget does not need:

- ranking subset: evenly spaced, not the samples where int8 strays furthest (NNCF's choice): the
  int8 error of those is partly chance, so any revert that merely rounds differently lowers it
  (regression to the mean) and looks like a recovery; on random-weight MobileNetV3Small, 58 of 64
  groups "recovered" on the worst 100 samples, and the top-ranked one made the whole set worse;
- prefix search: the shortest prefix of the ranking that meets the budget, found by doubling its
  length (1, 2, 4, ...) and then bisecting between the longest prefix that misses and the
  shortest that meets: O(log n) candidates instead of one or more passes of one revert at a time,
  which kept every revert that nudged the cosine up however little it brought and however many
  bytes it cost (MobileNetV3Small: 98 of 157 layers, 0.96x the fp32 size). Int8 error spread
  thinly over many layers, which only several reverts together recover, is handled the same way:
  the prefix grows until they are all in it. All float32 meets any budget fp32 meets;
- trimming: every reverted group, costliest first (the bytes its revert alone added, measured while
  ranking), is put back in int8 and stays there where the mix still meets the budget; so each
  such group left reverted is one the budget needs (putting it back alone misses it), and the
  bytes go first. Groups that add almost no bytes (TRIM_SHARE: activations, adds, pools) go back
  together in one candidate. A mix already measured is not tried again.

The best mix found is what is returned, met or not (the best-measured prefix when even all
groups miss).

A format supplies two functions: `build(reverted_layers, path)` writes the artifact with those
Keras layers raised to the revert precision (float32 or int16x8: `reverted_to`, the words the
steps are told in), `open(path)` opens it in its runtime.
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
# Trimming tries groups one at a time only where their revert added at least this share of the
# bytes the mix adds over all-int8; the rest (activations, adds, pools: no weights) go back to
# int8 in one block. One candidate per weightless group would double the search on large networks
# and save no bytes.
TRIM_SHARE = 0.005


@dataclass
class Step:
    """One candidate validated on the whole set: the int8 start, a ranking prefix, or a group back to int8."""

    number: int
    action: str  # "int8" (the start), "revert" (a ranking prefix) or "requantize" (a group back to int8)
    group: tuple[str, ...]  # the layers this step reverted (over the longest prefix known to miss) or requantized
    reverted_layers: tuple[str, ...]  # every layer raised in the candidate
    size_bytes: int
    measure: Measure
    kept: bool = True  # whether the search moved on to this mix (False: stepped back)
    pass_number: int = 0  # 1: the prefix search; 0: the start and trimming

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "action": self.action,
            "layers": list(self.group),
            "reverted_layers": list(self.reverted_layers),
            "size_bytes": self.size_bytes,
            **self.measure.to_dict(),
            "kept": self.kept,
            "pass": self.pass_number,
        }


@dataclass(frozen=True)
class Rank:
    """One group's place in the ranking: what reverting it alone recovers, and what it costs."""

    group: Group
    recovery: float  # the ranking subset's mean output error, the start's minus this candidate's
    bytes: int  # the candidate's size minus the start's


@dataclass
class MixResult:
    """The search's outcome: the best mix, where its artifact is, and how it was found."""

    path: Path  # the best candidate's artifact file
    reverted_layers: tuple[str, ...]
    groups: list[Group]
    steps: list[Step] = field(default_factory=list)
    ranking: list[Rank] = field(default_factory=list)  # best first
    ranking_samples: int = 0

    @property
    def best(self) -> Step:
        return next(s for s in reversed(self.steps) if s.kept)

    @property
    def met(self) -> bool:
        return self.best.measure.passed


class _Candidates:
    """Builds, measures and records candidate mixes; a mix measured once is not built again.
    Only the artifact of the mix the search stands on (`current`) is kept on disk."""

    def __init__(self, build, open_session, judge, workdir, suffix, label, reverted_to):
        self.build, self.open_session, self.judge = build, open_session, judge
        self.workdir, self.suffix, self.label, self.reverted_to = workdir, suffix, label, reverted_to
        self.counter = iter(range(1, 1_000_000))
        self.seen: dict[frozenset[str], tuple[Path, int, Measure]] = {}
        self.current: frozenset[str] = frozenset()

    def path(self, reverted) -> Path:
        """Writes the artifact of `reverted` (sorted layer names) to a fresh path."""
        path = self.workdir / f"mix-{next(self.counter)}{self.suffix}"
        self.build(sorted(reverted), path)
        return path

    def measure(self, reverted: frozenset[str]) -> tuple[int, Measure, bool]:
        """(size, measure, new) of `reverted`: built and validated unless already seen."""
        if reverted in self.seen:
            return (*self.seen[reverted][1:], False)
        path = self.path(reverted)
        measure = self.judge.measure(self.judge.outputs(self.open_session(path)))
        self.seen[reverted] = (path, path.stat().st_size, measure)
        return path.stat().st_size, measure, True

    def move_to(self, reverted: frozenset[str]) -> None:
        """Stands the search on `reverted`: every other candidate's file is removed."""
        self.current = reverted
        path = self.seen[reverted][0]
        if not path.exists():  # measured earlier, its file since removed
            self.build(sorted(reverted), path)
        for mix, (other, _, _) in self.seen.items():
            if mix != reverted:
                other.unlink(missing_ok=True)

    def drop(self, reverted: frozenset[str]) -> None:
        """Removes the file of a mix the search stepped back from (its measure stays known)."""
        if reverted != self.current:
            self.seen[reverted][0].unlink(missing_ok=True)


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
    reverted_to: str = "float32",
) -> MixResult:
    """Finds a small mix of int8 and reverted layers within `judge`'s tolerance (module docstring).

    `base_float` layers (the recipe's keep_float, which `build` keeps in float itself) are
    never reverted. Returns the best mix found; `MixResult.met` says whether it is within the
    tolerance.
    """
    made = _Candidates(build, open_session, judge, workdir, suffix, label, reverted_to)
    start = made.path(set())
    start_out = judge.outputs(open_session(start))
    start_measure = judge.measure(start_out)
    made.seen[frozenset()] = (start, start.stat().st_size, start_measure)
    judge.check_budget(start_measure)
    steps = [Step(0, "int8", (), (), start.stat().st_size, start_measure)]
    note(f"{label}: start, all int8{_kept(base_float)}: {_numbers(start_measure)}")
    result = MixResult(start, (), list(groups), steps)
    if start_measure.passed:
        return result
    candidates = [g for g in groups if not set(g.layers) <= set(base_float)]
    errors = judge.sample_errors(start_out)
    index = np.unique(np.linspace(0, len(errors) - 1, min(ranking_samples, len(errors))).round().astype(int))
    result.ranking_samples = len(index)
    base = float(errors[index].mean())
    result.ranking = _rank(candidates, made, start.stat().st_size, index, base, label)
    _prefix_search([r.group for r in result.ranking], made, steps, label)
    if made.seen[made.current][2].passed:
        _trim(result.ranking, made, steps, label)
    result.path, result.reverted_layers = made.seen[made.current][0], tuple(sorted(made.current))
    return result


def _prefix_search(ranked: list[Group], made: _Candidates, steps: list[Step], label: str) -> None:
    """Stands `made` on the shortest prefix of `ranked` that meets the budget (doubling, then
    bisecting), or on the best-measured prefix when none does."""

    def layers(k):
        return frozenset(layer for group in ranked[:k] for layer in group.layers)

    def stand(mix: frozenset[str], measure: Measure) -> bool:
        best = made.seen[made.current][2]
        if best.passed:
            return measure.passed and len(mix) < len(made.current)
        return measure.passed or measure.better_than(best)

    if not ranked:
        return
    missed, met = 0, None  # the longest prefix known to miss, the shortest known to meet
    with Progress(f"Reverting ranked layer groups ({label})", None) as bar:
        while met is None or met - missed > 1:
            k = min(2 * max(missed, 1) if missed else 1, len(ranked)) if met is None else (missed + met) // 2
            mix = layers(k)
            size, measure, _ = made.measure(mix)
            kept = stand(mix, measure)
            added = tuple(layer for group in ranked[missed:k] for layer in group.layers)
            steps.append(Step(len(steps), "revert", added, tuple(sorted(mix)), size, measure, kept, 1))
            note(
                f"{label}: step {len(steps) - 1}, the ranking's first {k} of {len(ranked)} groups to "
                f"{made.reverted_to}: {_numbers(measure)} ({'kept' if kept else 'stepped back'})"
            )
            bar.update(status=f"{k} groups")
            made.move_to(mix) if kept else made.drop(mix)
            if measure.passed:
                met = k
            else:
                missed = k
                if k == len(ranked):
                    break  # even every group reverted misses: the best-measured prefix stays


def _trim(ranking: list[Rank], made: _Candidates, steps: list[Step], label: str) -> None:
    """Puts back in int8 each reverted group, costliest first, wherever the mix still meets the
    budget; groups whose revert added less than TRIM_SHARE of the bytes the mix adds go back in
    one block (kept in int8 only if the mix meets the budget without any of them)."""
    reverted = [r for r in ranking if set(r.group.layers) <= made.current]
    added = made.seen[made.current][1] - made.seen[frozenset()][1]
    order = sorted(reverted, key=lambda r: (-r.bytes, r.recovery))
    costly = [r.group for r in order if r.bytes >= TRIM_SHARE * added]
    cheap = [r.group for r in order if r.bytes < TRIM_SHARE * added]
    blocks = [[g] for g in costly] + ([cheap] if cheap else [])
    with Progress(f"Trimming the mix ({label})", len(blocks)) as bar:
        for block in blocks:
            layers = tuple(layer for group in block for layer in group.layers)
            trial = made.current - set(layers)
            if trial in made.seen:  # measured already (a shorter prefix, known to miss the budget)
                bar.update()
                continue
            size, measure, _ = made.measure(trial)
            kept = measure.passed
            steps.append(Step(len(steps), "requantize", layers, tuple(sorted(trial)), size, measure, kept))
            name = (
                block[0].name if len(block) == 1 else f"{len(block)} groups adding < {TRIM_SHARE:.1%} of the bytes each"
            )
            verdict = "kept" if kept else "stepped back: over budget"
            note(f"{label}: step {len(steps) - 1}, {name} back to int8: {_numbers(measure)} ({verdict})")
            bar.update(status=name)
            made.move_to(trial) if kept else made.drop(trial)


def _rank(candidates, made: _Candidates, start_bytes, index, base, label) -> list[Rank]:
    """The groups best first: how much reverting each alone lowers the ranking subset's mean
    output error below `base`, the start's; with the bytes that revert adds."""
    judge = made.judge
    ranked = []
    with Progress(f"Ranking layer groups ({label})", len(candidates)) as bar:
        for group in candidates:
            path = made.path(set(group.layers))
            error = float(judge.sample_errors(judge.outputs(made.open_session(path), index), index).mean())
            ranked.append(Rank(group, base - error, path.stat().st_size - start_bytes))
            path.unlink(missing_ok=True)
            bar.update()
    order = sorted(range(len(ranked)), key=lambda i: (-ranked[i].recovery, i))
    return [ranked[i] for i in order]


def _kept(layers) -> str:
    return f" but {', '.join(sorted(layers))} (keep_float)" if layers else ""


def _numbers(measure: Measure) -> str:
    accuracy = "" if measure.accuracy_delta is None else f"accuracy {measure.accuracy_delta:+.2f} points, "
    return f"{accuracy}cosine {measure.cosine:.5f}, {'within' if measure.passed else 'over'} budget"
