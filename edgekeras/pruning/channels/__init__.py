"""Structured channel pruning: remove whole output channels and rebuild a smaller plain Keras model.

`prune_channels(model, fraction=... | flops=...)` traces which channels must go together
(`dependencies`), scores them (`importance`), picks the ones to remove (`plan`) and re-makes
the model with fewer filters and sliced weights (`rebuild`). The result has the same input and
output names and shapes, runs on every runtime at its smaller size, and is fine-tuned like any
Keras model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekeras.errors import InputError, suggest
from edgekeras.models.graph import layer_calls, working_graph
from edgekeras.pruning.channels.dependencies import trace
from edgekeras.pruning.channels.importance import importance as score_units
from edgekeras.pruning.channels.plan import Analysis, by_flops, by_fraction, group_units
from edgekeras.pruning.channels.rebuild import rebuild
from edgekeras.pruning.flops import count

__all__ = ["ChannelPruning", "prune_channels"]


@dataclass
class ChannelPruning:
    """A channel-pruned model and what changed. FLOPs are multiply-accumulates at batch 1
    (`edgekeras.pruning.flops`); None where the model's shapes are not static."""

    model: Any
    groups_pruned: list[tuple[list[str], int, int]] = field(default_factory=list)  # (layers, before, after)
    params_before: int = 0
    params_after: int = 0
    flops_before: int | None = None
    flops_after: int | None = None

    def summary(self) -> str:
        """Parameters and FLOPs before and after, and the groups that lost channels."""

        def ratio(after, before):
            return f"{after / before:.1%}" if before else "n/a"

        lines = [
            f"params: {self.params_before:,} -> {self.params_after:,} ({ratio(self.params_after, self.params_before)})"
        ]
        if self.flops_before is not None and self.flops_after is not None:
            lines.append(
                f"FLOPs (multiply-accumulates): {self.flops_before:,} -> {self.flops_after:,} "
                f"({ratio(self.flops_after, self.flops_before)})"
            )
        pruned = [g for g in self.groups_pruned if g[2] < g[1]]
        lines.append(f"channel groups pruned: {len(pruned)} of {len(self.groups_pruned)}")
        for layers, before, after in pruned:
            shown = ", ".join(layers[:3]) + (f" (+{len(layers) - 3})" if len(layers) > 3 else "")
            lines.append(f"  {shown}: {before} -> {after}")
        return "\n".join(lines)


def _check_target(fraction, flops, min_channels, channel_multiple):
    if (fraction is None) == (flops is None):
        raise InputError(
            f"Expected exactly one of fraction= (of channels) or flops= (of FLOPs) to remove. Received: "
            f"fraction={fraction!r}, flops={flops!r}."
        )
    name, value = ("fraction", fraction) if fraction is not None else ("flops", flops)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InputError(f"Expected {name} to be a number in [0, 1). Received: {name}={value!r}.")
    for key, number in (("min_channels", min_channels), ("channel_multiple", channel_multiple)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InputError(f"Expected {key} to be an integer >= 1. Received: {key}={number!r}.")


def excluded_layers(layers, exclude) -> set[int]:
    """ids of the layers `exclude` names: each entry a layer name, a layer type or a regex that
    fully matches names; an entry matching nothing is an error naming the closest layer."""
    if isinstance(exclude, str):
        exclude = [exclude]
    found = set()
    for entry in exclude:
        hits = [layer for layer in layers if entry in (layer.name, type(layer).__name__) or _matches(entry, layer.name)]
        if not hits:
            names = [layer.name for layer in layers] + sorted({type(layer).__name__ for layer in layers})
            raise InputError(
                f"Expected each entry of exclude to be a layer name, a layer type or a regular expression "
                f"matching layer names. Received: {entry!r}, which matches no layer.{suggest(entry, names)}"
            )
        found |= {id(layer) for layer in hits}
    return found


def _matches(pattern, name):
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def analyze(graph, importance="l1", exclude=(), keep_residual=False) -> Analysis:
    """The units of `graph` (a flat functional model), their groups and importance."""
    calls = layer_calls(graph)
    excluded = excluded_layers([c.layer for c in calls], exclude)
    deps = trace(calls, graph.inputs, graph.outputs, excluded, keep_residual)
    roots = deps.roots()
    fixed = deps.fixed_units(roots)
    units = sorted({int(r) for r in roots.tolist()} - set(fixed))
    groups = group_units(deps, roots, units)
    return Analysis(deps, roots, units, fixed, groups, score_units(importance, deps, roots, units))


def prune_channels(
    model,
    *,
    fraction=None,
    flops=None,
    importance="l1",
    exclude=(),
    min_channels=1,
    channel_multiple=1,
    input_shape=None,
    keep_residual=False,
):
    """Removes whole output channels from `model`; returns a `ChannelPruning` with the new model.

    Args:
        model: a functional or Sequential Keras model (nested models are walked into; the result
            is one flat functional model). Subclassed models are refused.
        fraction: the fraction of each group's channels to remove (rounded per group).
        flops: the fraction of the model's FLOPs to remove: the least important channels, model
            wide, go first until the target is met. Exactly one of `fraction` and `flops`.
        importance: "l1" or "l2" (norm of each output filter, summed over the layers whose
            channels are tied), or "bn_scale" (|gamma| of the BatchNormalization after them).
        exclude: layer names, layer types or regular expressions whose output channels are kept.
        min_channels: the fewest output channels any layer keeps.
        channel_multiple: round each group's kept channels up to a multiple of this (8 or 16
            suit runtimes whose kernels work in channel blocks; 1: no rounding).
        input_shape: the input shape (without batch) to count FLOPs at, for a model whose spatial
            dimensions are free.
        keep_residual: keep every channel a residual `Add` sums (the stream a residual stage's
            blocks read and write) and prune only inside the blocks. For int8 CPU runtimes: the
            streams feed cheap 1 x 1 convolutions, while a block's inner (expansion) channels
            also run its depthwise convolution, which takes several times longer per FLOP, so
            the same FLOPs removed from inside the blocks cut more latency (MobileNetV2 at 128,
            50 % of FLOPs, 1 thread, p50 of the unpruned: LiteRT int8 0.60 without it, 0.55 with
            it; ONNX Runtime int8 0.64 and 0.59; `benchmarks/channel_pruning.py`). Any `Add`
            counts: two branches summed keep their channels too.

    Channels reaching a model output, or a layer the rules cannot rewrite, are kept; asking for
    more than the rest can give is an `InputError` that names why channels were kept.
    """
    _check_target(fraction, flops, min_channels, channel_multiple)
    graph = working_graph(model, input_shape)
    try:
        before = count(graph)
    except InputError:
        if flops is not None:
            raise
        before = None
    analysis = analyze(graph, importance, exclude, keep_residual)
    if fraction is not None:
        removed = by_fraction(analysis, fraction, min_channels, channel_multiple)
    else:
        assert before is not None  # count() raised otherwise
        removed = by_flops(analysis, flops, min_channels, before.flops, channel_multiple)
    gone = np.isin(analysis.roots, np.fromiter(removed, dtype=np.int64, count=len(removed)))
    pruned = rebuild(graph, analysis.deps, gone, name=model.name)
    after = count(pruned) if before is not None else None
    groups = [(g.layers, len(g.units), len(set(g.units) - removed)) for g in analysis.groups]
    return ChannelPruning(
        model=pruned,
        groups_pruned=groups,
        params_before=int(model.count_params()),
        params_after=int(pruned.count_params()),
        flops_before=before.flops if before else None,
        flops_after=after.flops if after else None,
    )
