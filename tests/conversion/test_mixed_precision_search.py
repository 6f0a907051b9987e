"""The accuracy-aware search's rules, on a stand-in format whose accuracy is a table: fast, no TensorFlow.

What the search is given per format (`build`, `open_session`) only writes and reads which layers are
float; the judge scores a mix from that list, so each rule of `search` can be checked exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from edgekeras.mixed_precision.groups import Group
from edgekeras.mixed_precision.search import search


@dataclass
class _Result:
    passed: bool
    accuracy_delta: float | None = None


class _Judge:
    """Scores a mix of float layers with `score(float_layers) -> cosine`; passes at `limit`."""

    def __init__(self, score, limit):
        self.score, self.limit = score, limit

    def outputs(self, session, index=None):
        return {"cosine": np.array([self.score(set(session))])}

    def measure(self, outputs):
        from edgekeras.mixed_precision.judge import Measure

        cosine = float(outputs["cosine"][0])
        return Measure(_Result(cosine >= self.limit), cosine)  # type: ignore[arg-type]

    def check_budget(self, first):
        pass

    def sample_errors(self, outputs, index=None):
        return np.full(1, 1.0 - float(outputs["cosine"][0]))


def _search(score, names, tmp_path, limit=0.98):
    groups = [Group((name,), (name,)) for name in names]

    def build(float_layers, path):
        path.write_text(json.dumps(float_layers))

    def open_session(path):
        return json.loads(path.read_text())

    return search(groups, build, open_session, _Judge(score, limit), tmp_path, "stand-in", ".json")  # type: ignore[arg-type]


def test_reverts_that_help_only_together_are_kept_and_idle_ones_trimmed(tmp_path):
    """int8 error spread over a, b and c: no single revert helps, all three together pass. The
    search keeps reverts that do not hurt, meets the budget, then puts back in int8 the one (d)
    that was never needed."""

    def score(floats):
        return 0.99 if {"a", "b", "c"} <= floats else 0.90

    result = _search(score, ["a", "d", "b", "c"], tmp_path)
    assert result.met and result.reverted_layers == ("a", "b", "c")
    actions = [(s.action, s.group, s.kept) for s in result.steps]
    assert actions[1:5] == [("revert", ("a",), True), ("revert", ("d",), True), ("revert", ("b",), True)] + [
        ("revert", ("c",), True)
    ]
    # Trimming, last first: b back to int8 misses the budget, d does not, a does.
    assert actions[5:] == [("requantize", ("b",), False), ("requantize", ("d",), True), ("requantize", ("a",), False)]
    assert result.path.exists() and json.loads(result.path.read_text()) == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]  # every other candidate removed


def test_a_revert_that_hurts_is_stepped_back_and_retried_in_a_later_pass(tmp_path):
    """b helps alone but hurts beside a (their int8 errors cancelled); once c is float too, it helps."""
    table = {
        frozenset(): 0.90,
        frozenset("a"): 0.95,
        frozenset("b"): 0.93,
        frozenset("c"): 0.91,
        frozenset("ab"): 0.88,
        frozenset("ac"): 0.96,
        frozenset("abc"): 0.99,
    }

    result = _search(lambda floats: table[frozenset(floats)], ["a", "b", "c"], tmp_path)
    assert result.met and result.reverted_layers == ("a", "b", "c")
    reverts = [(s.group, s.kept, s.pass_number) for s in result.steps if s.action == "revert"]
    assert reverts == [(("a",), True, 1), (("b",), False, 1), (("c",), True, 1), (("b",), True, 2)]


def test_the_best_mix_is_returned_when_none_meets_the_budget(tmp_path):
    def score(floats):
        return 0.90 + 0.01 * len(floats)

    result = _search(score, ["a", "b"], tmp_path)
    assert not result.met and result.reverted_layers == ("a", "b")
    assert result.best.measure.cosine == 0.92
    assert not any(s.action == "requantize" for s in result.steps)  # trimming only follows a met budget


def test_stalled_passes_end_in_ranking_order_reverts_until_the_budget_is_met(tmp_path):
    """Every partial revert makes things worse (each alone, and any two): the passes keep nothing,
    so the remaining groups are reverted in order without stepping back; all three together pass."""

    def score(floats):
        return 0.99 if {"a", "b", "c"} <= floats else 0.90 - 0.01 * len(floats)

    result = _search(score, ["a", "b", "c"], tmp_path)
    assert result.met and result.reverted_layers == ("a", "b", "c")
    passes = {s.pass_number for s in result.steps if s.action == "revert" and not s.kept}
    assert passes == {1}  # the first pass stepped every revert back
    forced = [(s.group, s.kept, s.pass_number) for s in result.steps if s.action == "revert" and s.pass_number == 2]
    assert forced == [(("a",), True, 2), (("b",), True, 2), (("c",), True, 2)]
    assert [s.kept for s in result.steps if s.action == "requantize"] == [False, False]  # neither can go back


def test_a_budget_even_all_float_misses_leaves_the_best_mix_of_the_passes(tmp_path):
    def score(floats):
        return 0.95 if floats == {"a"} else 0.90 - 0.01 * len(floats)

    result = _search(score, ["a", "b"], tmp_path)
    assert not result.met and result.reverted_layers == ("a",) and result.best.measure.cosine == 0.95
    assert json.loads(result.path.read_text()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]
