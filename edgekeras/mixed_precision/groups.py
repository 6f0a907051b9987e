"""The units the accuracy-aware search reverts: groups of Keras layers.

A group is a layer with the normalizations and activations that follow it (a convolution with
its BatchNormalization and ReLU): the converters fuse them into one op, or quantize the tensor
between them, so reverting one without the other recovers little. Layers whose int8 output holds
exactly their int8 input's values (padding, reshapes, max pooling: EXACT) are never ranked alone,
but they join the group of the layer feeding them: in int8 after an int8 layer they are exact,
while left int8 after a reverted one they quantize its float output again (random-weight
TFLite, every other layer float: InceptionV3 0.859 with its four max poolings int8,
EfficientNetB0 0.978 with its paddings and squeeze-excite reshapes int8). Groups are then checked
against the converted graph: layers without ops there are dropped (the exporters' keep_float
refuses them), and groups whose layers share an op (TFLite fuses across layers) are merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# Layers whose int8 output holds exactly their int8 input's values (layout, max, dropout):
# reverting them alone recovers nothing, so they only follow the layer feeding them.
EXACT = frozenset(
    {
        "InputLayer",
        "Flatten",
        "Reshape",
        "Permute",
        "Identity",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
    }
)
# Layers that join the group of the one layer feeding them (elementwise on one input).
FOLLOWERS = frozenset({"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"})


@dataclass(frozen=True)
class Group:
    """Keras layers reverted together, and the converted graph's ops (node names) they own."""

    layers: tuple[str, ...]
    nodes: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.layers)


def layer_groups(model) -> list[tuple[str, ...]]:
    """The model's top-level layers grouped with their followers, in order (an exact layer
    without a single grouped layer feeding it, such as the input's padding, is left out)."""
    root: dict[str, str] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        feeding = _inbound(layer)
        follows = len(feeding) == 1 and feeding[0] in root
        if kind in EXACT and not follows:
            continue
        root[layer.name] = root[feeding[0]] if follows and (kind in FOLLOWERS or kind in EXACT) else layer.name
    groups: dict[str, list[str]] = {}
    for name, head in root.items():
        groups.setdefault(head, []).append(name)
    return [tuple(members) for members in groups.values()]


def _inbound(layer) -> list[str]:
    """Names of the layers whose outputs `layer` takes (its first call)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        return []
    return list(dict.fromkeys(parent.operation.name for parent in nodes[0].parent_nodes))


def present_groups(
    groups: Iterable[Sequence[str]], nodes_of: Callable[[list[str]], Mapping[str, Sequence[str]]]
) -> list[Group]:
    """`groups` restricted to layers with ops in the converted graph (`nodes_of(layers)` gives
    {layer: node names}), groups sharing an op merged, empty ones dropped; model order kept."""
    groups = [list(g) for g in groups]
    nodes = nodes_of([layer for g in groups for layer in g])
    merged: list[tuple[list[str], set[str]]] = []
    for group in groups:
        layers = [layer for layer in group if nodes.get(layer)]
        owned = {n for layer in layers for n in nodes[layer]}
        if not layers:
            continue
        for other in [m for m in merged if m[1] & owned]:
            merged.remove(other)
            layers, owned = other[0] + layers, other[1] | owned
        merged.append((layers, owned))
    order = {layer: i for i, layer in enumerate(layer for g in groups for layer in g)}
    merged.sort(key=lambda m: min(order[layer] for layer in m[0]))
    return [Group(tuple(sorted(layers, key=order.__getitem__)), tuple(sorted(owned))) for layers, owned in merged]
