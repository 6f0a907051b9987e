"""How much each unit of channels matters: a weight norm of the filters that make it, summed
over the unit's member layers, or the |gamma| of the BatchNormalization layers that scale it."""

from __future__ import annotations

import numpy as np

from edgekeras.errors import InputError, expected_one_of
from edgekeras.pruning.channels.dependencies import Dependencies

# layer type -> (weight holding its output filters, the axis of its output channels)
FILTERS = {
    **dict.fromkeys(("Conv1D", "Conv2D", "Conv3D", "Dense"), ("kernel", -1)),
    **dict.fromkeys(("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"), ("kernel", -2)),
    **dict.fromkeys(("SeparableConv1D", "SeparableConv2D"), ("pointwise_kernel", -1)),
}


def _weight(layer, name):
    for variable in layer.weights:
        if variable.name == name:
            return np.asarray(variable.numpy())
    raise KeyError(f"{layer.name} has no weight '{name}'")


def _filter_norms(layer, order):
    name, axis = FILTERS[type(layer).__name__]
    filters = np.moveaxis(_weight(layer, name), axis, 0)
    flat = np.abs(filters.reshape(filters.shape[0], -1).astype(np.float64))
    return flat.sum(axis=1) if order == 1 else np.sqrt((flat**2).sum(axis=1))


def _norm(order):
    def score(deps, roots, units):
        total = dict.fromkeys(units, 0.0)
        for layer, atoms in deps.producers.values():
            for root, value in zip(roots[atoms].tolist(), _filter_norms(layer, order).tolist()):
                if root in total:
                    total[root] += value
        return total

    return score


def _bn_scale(deps, roots, units):
    total: dict[int, float] = {}
    for call in deps.calls:
        layer = call.layer
        if type(layer).__name__ != "BatchNormalization" or not layer.scale:
            continue
        gamma = np.abs(_weight(layer, "gamma").astype(np.float64))
        for atom, value in zip(deps.inputs[id(layer)].tolist(), gamma.tolist()):
            root = int(roots[atom]) if atom >= 0 else -1
            if root in units:
                total[root] = total.get(root, 0.0) + value
    missing = sorted({deps.producers[deps.owner[u]][0].name for u in units if u not in total})
    if missing:
        raise InputError(
            "Expected a BatchNormalization (with scale=True) after every layer whose channels are pruned "
            f"for importance='bn_scale'. Received: {', '.join(repr(n) for n in missing[:8])} with none. Use "
            "importance='l1' or 'l2', or exclude those layers."
        )
    return total


# importance name -> score(deps, roots, units) -> {unit: importance}
IMPORTANCE = {"l1": _norm(1), "l2": _norm(2), "bn_scale": _bn_scale}


def importance(name, deps: Dependencies, roots, units) -> dict[int, float]:
    """{unit: importance} for every prunable unit under the named criterion."""
    if name not in IMPORTANCE:
        raise expected_one_of("importance", name, IMPORTANCE)
    return IMPORTANCE[name](deps, roots, set(units))
