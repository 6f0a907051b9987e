"""Which units to remove: a fraction of each group, or the least important ones model-wide until
a FLOPs target is met. Pure planning over `Dependencies`: nothing is rebuilt here.

A *group* is the units whose producer layers overlap (a convolution's channels; a residual
stage's tied convolutions): fractions apply per group, and importance is compared across groups
after dividing by the group's mean, so a wide layer's small norms do not all go first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekeras.errors import InputError
from edgekeras.pruning.channels.dependencies import Dependencies
from edgekeras.pruning.flops import layer_macs


@dataclass
class Group:
    """Units (channels) removed and kept together, and the layers that make them."""

    units: list[int]
    layers: list[str]


@dataclass
class Analysis:
    """Everything a plan needs: units, their groups and importance, what each layer holds."""

    deps: Dependencies
    roots: np.ndarray  # atom -> unit
    units: list[int]  # prunable units
    fixed: dict  # unit -> why it is kept
    groups: list[Group]
    scores: dict  # unit -> importance


def group_units(deps: Dependencies, roots, units) -> list[Group]:
    """Units joined through the producer layers they share (a small union-find over units)."""
    parent = {u: u for u in units}

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    layers_of: dict[int, set] = {u: set() for u in units}
    for layer, atoms in deps.producers.values():
        mine = [int(r) for r in set(roots[atoms].tolist()) if r in parent]
        for u in mine:
            layers_of[u].add(layer.name)
        for u in mine[1:]:
            parent[find(u)] = find(mine[0])
    members: dict[int, list[int]] = {}
    for u in units:
        members.setdefault(find(u), []).append(u)
    return [Group(sorted(group), sorted(set().union(*(layers_of[u] for u in group)))) for group in members.values()]


def _per_layer(analysis):
    """{producer layer name: (channels, {unit: its channels of that layer})}."""
    out = {}
    for layer, atoms in analysis.deps.producers.values():
        counts: dict[int, int] = {}
        for root in analysis.roots[atoms].tolist():
            counts[root] = counts.get(root, 0) + 1
        out[layer.name] = (len(atoms), counts)
    return out


def check_min_channels(analysis: Analysis, removed: set, min_channels: int) -> None:
    """InputError if a plan leaves a layer with fewer than `min_channels` output channels."""
    for name, (channels, counts) in _per_layer(analysis).items():
        left = channels - sum(n for u, n in counts.items() if u in removed)
        if left < min_channels:
            raise InputError(
                f"Expected every layer to keep at least min_channels={min_channels} output channel(s). "
                f"Received: a target that leaves '{name}' with {left} of {channels}. Ask for less, or "
                "exclude that layer."
            )


def rounded(analysis: Analysis, removed: set, multiple: int) -> set:
    """`removed` with each group's kept units rounded up to a multiple of `multiple` (its most
    important removed units put back): runtimes' vectorized kernels work in blocks of 8 or 16
    channels, and a layer of 53 can run slower than one of 64 (ONNX Runtime's NCHWc path)."""
    if multiple <= 1:
        return removed
    out = set()
    for group in analysis.groups:
        mine = sorted((u for u in group.units if u in removed), key=lambda u: (analysis.scores[u], u))
        kept = len(group.units) - len(mine)
        out |= set(mine[: len(group.units) - min(len(group.units), -(-kept // multiple) * multiple)])
    return out


def by_fraction(analysis: Analysis, fraction: float, min_channels: int, multiple: int = 1) -> set:
    """The round(fraction * size) least important units of each group (kept count rounded up
    to a multiple of `multiple`)."""
    removed = set()
    for group in analysis.groups:
        count = round(fraction * len(group.units))
        removed |= set(sorted(group.units, key=lambda u: (analysis.scores[u], u))[:count])
    removed = rounded(analysis, removed, multiple)
    check_min_channels(analysis, removed, min_channels)
    return removed


def ranked(analysis: Analysis, min_channels: int) -> list[int]:
    """Units from least to most important (normalized per group), skipping any whose removal
    would leave a layer under `min_channels`: the order a FLOPs target removes them in."""
    normalized = {}
    for group in analysis.groups:
        mean = float(np.mean([analysis.scores[u] for u in group.units])) or 1.0
        normalized.update({u: analysis.scores[u] / mean for u in group.units})
    left = {name: channels for name, (channels, _) in _per_layer(analysis).items()}
    holders: dict[int, list] = {}
    for name, (_, counts) in _per_layer(analysis).items():
        for u, n in counts.items():
            holders.setdefault(u, []).append((name, n))
    order = []
    for u in sorted(analysis.units, key=lambda u: (normalized[u], u)):
        if all(left[name] - n >= min_channels for name, n in holders.get(u, [])):
            order.append(u)
            for name, n in holders.get(u, []):
                left[name] -= n
    return order


def estimate_flops(analysis: Analysis, removed: set) -> int:
    """The MACs of the model with `removed` units gone (every shape's channel axis shortened)."""
    gone = np.isin(analysis.roots, np.fromiter(removed, dtype=np.int64, count=len(removed)))
    deps = analysis.deps

    def shapes(tensors):
        out = []
        for t in tensors:
            labels, shape = deps.labels.get(id(t)), tuple(t.shape)
            if labels is not None and len(labels) == shape[-1]:
                shape = (*shape[:-1], int(len(labels) - np.count_nonzero(gone[labels[labels >= 0]])))
            out.append(shape)
        return out

    return sum(layer_macs(call, shapes(call.inputs), shapes(call.outputs)) for call in deps.calls)


def by_flops(analysis: Analysis, target: float, min_channels: int, flops_before: int, multiple: int = 1) -> set:
    """The fewest least-important units whose removal takes off `target` of the MACs."""
    order = ranked(analysis, min_channels)
    limit = (1.0 - target) * flops_before

    def removing(count):
        return rounded(analysis, set(order[:count]), multiple)

    lowest = estimate_flops(analysis, removing(len(order)))
    if lowest > limit:
        raise InputError(
            f"Expected flops to be at most {1 - lowest / flops_before:.3f} for this model (min_channels="
            f"{min_channels}, channel_multiple={multiple}). Received: flops={target}. {_kept_summary(analysis)}"
        )
    lo, hi = 0, len(order)  # the smallest prefix that meets the limit
    while lo < hi:
        mid = (lo + hi) // 2
        if estimate_flops(analysis, removing(mid)) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return removing(lo)


def _kept_summary(analysis: Analysis, most=5) -> str:
    """Why channels are kept, the most frequent reasons first."""
    counts: dict[str, int] = {}
    for why in analysis.fixed.values():
        counts[why] = counts.get(why, 0) + 1
    if not counts:
        return "Every layer is already at min_channels."
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:most]
    return "Channels kept: " + "; ".join(f"{n} because {why}" for why, n in top) + "."
