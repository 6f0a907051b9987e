"""Which output channels must be removed together, and which cannot be removed at all.

Every output channel of a layer that makes new channels (a convolution, a Dense: `PRODUCERS`) is
an *atom*. Each tensor of the graph carries, along its last (channel) axis, the atom each
position comes from, or -1 for a position no pruning can touch (a model input's channels).
Layers move these labels as the `RULES` table says: channel-preserving layers pass them on,
a depthwise convolution repeats each by its multiplier, Flatten tiles them over the positions,
Concatenate joins them, and elementwise merges (Add, Multiply, ...) *tie* the atoms they align
(a union-find): a residual stage's convolutions then lose the same channels. An atom is *fixed*
(kept) when it reaches a model output, a layer the rules do not know (the reason is recorded
for the error message), or a layer the caller excluded. The atoms tied together form a *unit*:
one channel to keep or remove everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekeras.models.graph import LayerCall
from edgekeras.models.layer_kinds import INFERENCE_IDENTITY, SPATIAL_MIXING, SPATIAL_SELECTING

# New output channels from their input: the input's channels are consumed (their weights sliced).
PRODUCERS = frozenset(
    {
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "SeparableConv1D",
        "SeparableConv2D",
        "Dense",
    }
)
DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
# One input, one output, channel c out computed from channel c in only.
CHANNELWISE = (
    frozenset({"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "Identity"})
    | INFERENCE_IDENTITY
    | SPATIAL_SELECTING
    | SPATIAL_MIXING
)
ELEMENTWISE = frozenset({"Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"})
# Merges that make a residual stream: what `keep_residual` keeps whole.
RESIDUAL = frozenset({"Add"})
# Activations that mix channels (a softmax over channels changes when one is removed).
CHANNEL_MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})


@dataclass
class Dependencies:
    """The channel labels of a functional graph (see the module docstring)."""

    calls: list[LayerCall]
    labels: dict = field(default_factory=dict)  # id(tensor) -> int array along the last axis
    inputs: dict = field(default_factory=dict)  # id(layer) -> labels of its first input
    outputs: dict = field(default_factory=dict)  # id(layer) -> labels of its first output
    producers: dict = field(default_factory=dict)  # id(layer) -> (layer, its output atoms)
    parent: list = field(default_factory=list)  # union-find over atoms
    owner: list = field(default_factory=list)  # atom -> id(producer layer)
    reasons: dict = field(default_factory=dict)  # fixed atom -> why it is kept
    keep_residual: bool = False  # keep the channels residual Adds sum (see `prune_channels`)

    def new_atoms(self, layer, count):
        if id(layer) not in self.producers:
            start = len(self.parent)
            self.parent.extend(range(start, start + count))
            self.owner.extend([id(layer)] * count)
            self.producers[id(layer)] = (layer, np.arange(start, start + count))
        return self.producers[id(layer)][1]

    def find(self, atom):
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def tie(self, a, b, why):
        """Positions `a` and `b` (labels arrays of one length) must keep the same channels."""
        for x, y in zip(a.tolist(), b.tolist()):
            if x >= 0 and y >= 0:
                self.parent[self.find(x)] = self.find(y)
            elif x >= 0 or y >= 0:
                self.fix(np.array([max(x, y)]), why)

    def fix(self, labels, why):
        for atom in np.asarray(labels).tolist():
            if atom >= 0:
                self.reasons.setdefault(atom, why)

    def roots(self):
        """Each atom's unit (its union-find root), as an array."""
        return np.array([self.find(a) for a in range(len(self.parent))], dtype=np.int64)

    def fixed_units(self, roots):
        """{unit: why it is kept} for every unit with a fixed atom."""
        fixed: dict[int, str] = {}
        for atom, why in self.reasons.items():
            fixed.setdefault(int(roots[atom]), why)
        return fixed

    def bind_input(self, layer, labels, why):
        """Records a layer's input labels; a shared layer's calls must agree channel by channel."""
        if id(layer) in self.inputs and len(self.inputs[id(layer)]) == len(labels):
            self.tie(self.inputs[id(layer)], labels, why)
        else:
            self.inputs.setdefault(id(layer), labels)


def _unknown(labels):
    return np.full(0 if labels is None else labels, -1, dtype=np.int64)


def _size(shape):
    return shape[-1] if shape and shape[-1] is not None else 0


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _why_not(layer, call):
    """Why a layer of a known type still cannot be rewritten, or None."""
    kind = type(layer).__name__
    if not _channels_last(layer):
        return "it is channels_first"
    if getattr(layer, "groups", 1) != 1:
        return f"it is a grouped convolution (groups={layer.groups})"
    if kind == "BatchNormalization":
        rank = len(call.input_shapes[0])
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if axis not in (-1, rank - 1):
            return f"it normalizes axis {layer.axis}, not the channel axis"
    if kind == "Activation" and _activation_name(layer) in CHANNEL_MIXING_ACTIVATIONS:
        return f"its {_activation_name(layer)} mixes channels"
    if len(call.inputs) != 1 and kind not in ELEMENTWISE | {"Concatenate"}:
        return f"it takes {len(call.inputs)} inputs"
    return None


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def _produce(deps, call, ins):
    deps.bind_input(call.layer, ins[0], f"'{call.layer.name}' is shared and its calls' inputs differ")
    atoms = deps.new_atoms(call.layer, _size(call.output_shapes[0]))
    if _activation_name(call.layer) in CHANNEL_MIXING_ACTIVATIONS:  # its own softmax sums over them
        deps.fix(atoms, f"'{call.layer.name}' ends in a {_activation_name(call.layer)} over its channels")
    return [atoms]


def _depthwise(deps, call, ins):
    deps.bind_input(call.layer, ins[0], f"'{call.layer.name}' is shared and its calls' inputs differ")
    return [np.repeat(ins[0], call.layer.depth_multiplier)]


def _channelwise(deps, call, ins):
    deps.bind_input(call.layer, ins[0], f"'{call.layer.name}' is shared and its calls' inputs differ")
    return [ins[0]]


def _elementwise(deps, call, ins):
    widest = max(ins, key=len)
    why = f"they meet in '{call.layer.name}' ({type(call.layer).__name__}) a tensor whose channels are kept"
    for labels in ins:
        if len(labels) == len(widest):
            deps.tie(widest, labels, why)
        else:  # broadcast (one channel) or unknown width: nothing to align, so keep it whole
            deps.fix(labels, f"'{call.layer.name}' broadcasts it")
        if deps.keep_residual and type(call.layer).__name__ in RESIDUAL:
            deps.fix(labels, f"they are the residual stream '{call.layer.name}' sums (keep_residual=True)")
    return [widest]


def _concatenate(deps, call, ins):
    rank = len(call.output_shapes[0])
    if call.layer.axis in (-1, rank - 1):
        return [np.concatenate(ins)]
    return _elementwise(deps, call, ins)


def _flatten(deps, call, ins):
    positions = call.input_shapes[0][1:-1]
    if any(d is None for d in positions):
        return None
    return [np.tile(ins[0], int(np.prod(positions, dtype=np.int64)))]


def _reshape(deps, call, ins):
    if call.input_shapes[0][-1] != call.output_shapes[0][-1] or call.output_shapes[0][-1] is None:
        return None
    return [ins[0]]


# layer type -> rule(deps, call, input labels) -> output labels, or None: the layer cannot be rewritten.
RULES: dict[str, Any] = {
    **dict.fromkeys(PRODUCERS, _produce),
    **dict.fromkeys(DEPTHWISE, _depthwise),
    **dict.fromkeys(CHANNELWISE, _channelwise),
    **dict.fromkeys(ELEMENTWISE, _elementwise),
    "Concatenate": _concatenate,
    "Flatten": _flatten,
    "Reshape": _reshape,
}


def trace(
    calls: list[LayerCall], graph_inputs, graph_outputs, excluded=frozenset(), keep_residual=False
) -> Dependencies:
    """The channel labels of every tensor of a flat functional graph, units tied and fixed
    (with `keep_residual`, the channels residual Adds sum are fixed too)."""
    deps = Dependencies(calls, keep_residual=keep_residual)
    for tensor in graph_inputs:
        deps.labels[id(tensor)] = _unknown(_size(tuple(tensor.shape)))
    for call in calls:
        ins = [deps.labels.get(id(t), _unknown(_size(tuple(t.shape)))) for t in call.inputs]
        layer, kind = call.layer, type(call.layer).__name__
        rule, why = RULES.get(kind), _why_not(call.layer, call)
        outs = rule(deps, call, ins) if rule is not None and why is None else None
        if outs is None:
            reason = why or ("channel pruning has no rule for it" if rule is None else "its shapes are not static")
            for labels in ins:
                deps.fix(labels, f"they flow into '{layer.name}' ({kind}), which cannot be rewritten: {reason}")
            outs = [_unknown(_size(shape)) for shape in call.output_shapes]
        if id(layer) in excluded:
            for labels in outs:
                deps.fix(labels, f"'{layer.name}' is excluded")
        for tensor, labels in zip(call.outputs, outs):
            deps.labels[id(tensor)] = labels
        deps.outputs.setdefault(id(layer), outs[0])
    for tensor in graph_outputs:
        deps.fix(deps.labels[id(tensor)], f"they reach the model output '{tensor._keras_history.operation.name}'")
    return deps
