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


def _search(score, names, tmp_path, limit=0.98, sizes=None, built=None):
    """Runs the search on one-layer groups `names`; `sizes`: bytes a layer adds when float
    (the stand-in artifact is padded by them); `built`: a list every build appends its layers to."""
    groups = [Group((name,), (name,)) for name in names]
    sizes = sizes or {}

    def build(float_layers, path):
        if built is not None:
            built.append(tuple(float_layers))
        path.write_text(json.dumps(float_layers) + " " * sum(sizes.get(n, 0) for n in float_layers))

    def open_session(path):
        return json.loads(path.read_text())

    return search(groups, build, open_session, _Judge(score, limit), tmp_path, "stand-in", ".json")  # type: ignore[arg-type]


def _prefixes(result):
    """How many layers each prefix step reverted."""
    return [len(s.reverted_layers) for s in result.steps if s.action == "revert"]


def test_the_shortest_ranking_prefix_meeting_the_budget_is_found_by_doubling_then_bisecting(tmp_path):
    """Eight layers, each recovering less than the one before; the budget needs the best five.
    Prefixes of 1, 2, 4, 8 layers, then 6 and 5 (bisecting 4..8): six candidates, not one per layer.
    Each of the five then misses the budget back in int8, so all stay; e back in int8 is the prefix
    of four, measured already, so it is not tried again."""
    names = list("abcdefgh")
    gain = {n: 0.01 * (8 - i) for i, n in enumerate(names)}  # a: 0.08 ... h: 0.01

    def score(floats):
        return (
            0.90 if not floats else 0.90 + sum(gain[n] for n in floats) / 10 + (0.08 if set("abcde") <= floats else 0)
        )

    built = []
    result = _search(score, list(reversed(names)), tmp_path, built=built)
    assert [r.group.layers[0] for r in result.ranking] == names
    assert _prefixes(result) == [1, 2, 4, 8, 6, 5]
    assert result.met and result.reverted_layers == tuple("abcde")
    trims = [(s.group, s.kept) for s in result.steps if s.action == "requantize"]
    assert sorted(trims) == [((n,), False) for n in "abcd"]  # e back in int8 is the prefix of four
    assert len(built) == 1 + 8 + 6 + 4  # start, ranking, prefixes, trims
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]  # every other candidate removed


def test_reverts_that_help_only_together_are_found_and_the_idle_one_trimmed(tmp_path):
    """int8 error spread over a, b and c: no single revert helps, all three together pass. The
    prefix grows until it holds them; d, in the prefix but never needed, goes back to int8."""

    def score(floats):
        return 0.99 if {"a", "b", "c"} <= floats else 0.90

    result = _search(score, ["a", "d", "b", "c"], tmp_path)
    assert _prefixes(result) == [1, 2, 4, 3]
    assert result.met and result.reverted_layers == ("a", "b", "c")
    trims = [(s.group, s.kept) for s in result.steps if s.action == "requantize"]
    assert trims == [(("a",), False), (("d",), True), (("b",), False), (("c",), False)]
    assert json.loads(result.path.read_text()) == ["a", "b", "c"]


def test_trimming_puts_the_costliest_revert_back_first(tmp_path):
    """Either {s1, s2} or {big, s2} meets the budget; big costs 1000 bytes. The prefix holds all
    three; big goes back to int8 first, so the small pair is what stays (trimming the least
    recovering first would have kept big)."""

    def score(floats):
        if {"s1", "s2"} <= floats or {"big", "s2"} <= floats:
            return 0.99
        return 0.90 + 0.02 * ("big" in floats) + 0.01 * ("s1" in floats) + 0.005 * ("s2" in floats)

    result = _search(score, ["s1", "s2", "big"], tmp_path, sizes={"big": 1000, "s1": 10, "s2": 10})
    assert [r.group.layers[0] for r in result.ranking] == ["big", "s1", "s2"]
    assert [r.bytes > 1000 for r in result.ranking] == [True, False, False]
    assert result.met and result.reverted_layers == ("s1", "s2")
    assert next(s.group for s in result.steps if s.action == "requantize") == ("big",)


def test_the_best_mix_is_returned_when_none_meets_the_budget(tmp_path):
    def score(floats):
        return 0.90 + 0.01 * len(floats)

    result = _search(score, ["a", "b"], tmp_path)
    assert not result.met and result.reverted_layers == ("a", "b")
    assert result.best.measure.cosine == 0.92
    assert not any(s.action == "requantize" for s in result.steps)  # trimming only follows a met budget


def test_a_budget_even_all_float_misses_leaves_the_best_measured_prefix(tmp_path):
    def score(floats):
        return 0.95 if floats == {"a"} else 0.90 - 0.01 * len(floats)

    result = _search(score, ["b", "a"], tmp_path)
    assert not result.met and result.reverted_layers == ("a",) and result.best.measure.cosine == 0.95
    assert [(len(s.reverted_layers), s.kept) for s in result.steps[1:]] == [(1, True), (2, False)]
    assert json.loads(result.path.read_text()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]


def test_the_ranking_subset_is_evenly_spaced_not_the_worst_samples(tmp_path):
    """The worst samples' int8 error is partly chance: any other rounding lowers it, so every
    revert would look like a recovery there. The ranking runs on 100 evenly spaced samples."""
    seen = []

    class Judge(_Judge):
        def outputs(self, session, index=None):
            seen.append(None if index is None else list(index))
            return {"cosine": np.full(250, self.score(set(session)))}

        def measure(self, outputs):
            return super().measure({"cosine": outputs["cosine"][:1]})

        def sample_errors(self, outputs, index=None):
            errors = np.arange(250.0) * (1.0 - float(outputs["cosine"][0]))  # sample 249 strays furthest
            return errors if index is None else errors[index]

    def build(float_layers, path):
        path.write_text(json.dumps(float_layers))

    groups = [Group(("a",), ("a",))]
    result = search(
        groups,
        build,
        lambda p: json.loads(p.read_text()),
        Judge(lambda f: 0.99 if f else 0.9, 0.98),
        tmp_path,
        "s",
        ".json",
    )  # type: ignore[arg-type]
    ranking = [index for index in seen if index is not None]
    assert result.met and result.ranking_samples == 100 and len(ranking) == 1
    assert ranking[0][0] == 0 and ranking[0][-1] == 249 and len(ranking[0]) == 100


def test_weightless_reverts_go_back_to_int8_in_one_block(tmp_path):
    """w (1000 bytes) and x (20 bytes) are needed; p and q add no bytes (an add, a pool): trimmed
    one at a time they would cost a candidate each, so they go back to int8 together."""

    def score(floats):
        return 0.99 if {"w", "x"} <= floats else 0.90 + 0.001 * len(floats)

    result = _search(score, ["w", "p", "q", "x"], tmp_path, sizes={"w": 1000, "x": 20})
    assert result.met and result.reverted_layers == ("w", "x")
    trims = [(s.group, s.kept) for s in result.steps if s.action == "requantize"]
    assert trims == [(("w",), False), (("p", "q"), True)]  # x back in int8 is the prefix of three: known to miss
