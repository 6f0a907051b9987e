"""Which layers can be pruned, and which of their weights: data, not code paths.

`PRUNABLE` maps a Keras layer class name to its prunable weights. Each weight names its
attribute (dotted from the layer, e.g. `cell.kernel` of an LSTM) and the kernel axes that
hold its input channels — the axes a layer sums over for one output, along which N:M groups
run (`None`: N:M is not defined for that weight, e.g. a depthwise kernel or an embedding
table; `EINSUM`: read from the EinsumDense equation). Biases are never pruned.

`prunable_weights(model, exclude)` walks any layer tree — nested models (a keras.applications
backbone inside a Sequential), wrappers (Bidirectional, TimeDistributed) and subclassed models
alike — and returns one `Target` per weight to prune. A layer whose class (or a base class) is
registered is pruned as a whole; any other layer is walked into. Frozen (non-trainable)
weights are left out: they would not fine-tune to make up for what pruning takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgekeras.errors import InputError, suggest

EINSUM = "einsum"  # input axes from the EinsumDense equation


@dataclass(frozen=True)
class Weight:
    """One prunable weight of a layer: its attribute path and its input-channel axes."""

    attribute: str
    input_axes: tuple[int, ...] | str | None


def _w(attribute, input_axes):
    return Weight(attribute, input_axes)


_RECURRENT = (_w("cell.kernel", (0,)), _w("cell.recurrent_kernel", (0,)))
_CELL = (_w("kernel", (0,)), _w("recurrent_kernel", (0,)))

# layer class name -> its prunable weights
PRUNABLE: dict[str, tuple[Weight, ...]] = {
    "Dense": (_w("kernel", (0,)),),
    "EinsumDense": (_w("kernel", EINSUM),),
    "Conv1D": (_w("kernel", (-2,)),),
    "Conv2D": (_w("kernel", (-2,)),),
    "Conv3D": (_w("kernel", (-2,)),),
    # a transposed convolution's kernel is (..., filters, input channels)
    "Conv1DTranspose": (_w("kernel", (-1,)),),
    "Conv2DTranspose": (_w("kernel", (-1,)),),
    "Conv3DTranspose": (_w("kernel", (-1,)),),
    # one filter per input channel: no sum over channels to split into N:M groups
    "DepthwiseConv1D": (_w("kernel", None),),
    "DepthwiseConv2D": (_w("kernel", None),),
    "SeparableConv1D": (_w("depthwise_kernel", None), _w("pointwise_kernel", (-2,))),
    "SeparableConv2D": (_w("depthwise_kernel", None), _w("pointwise_kernel", (-2,))),
    "Embedding": (_w("embeddings", None),),
    "SimpleRNN": _RECURRENT,
    "LSTM": _RECURRENT,
    "GRU": _RECURRENT,
    "SimpleRNNCell": _CELL,
    "LSTMCell": _CELL,
    "GRUCell": _CELL,
    "MultiHeadAttention": tuple(
        _w(f"_{name}_dense.kernel", EINSUM) for name in ("query", "key", "value", "gate", "output")
    ),
}


@dataclass
class Target:
    """A weight to prune: where it is (`path` = layer path + '/' + attribute) and the variable."""

    path: str
    layer: Any
    weight: Weight
    variable: Any
    owner: Any  # the layer that holds the variable (an MHA's EinsumDense, an RNN's cell)

    @property
    def input_axes(self) -> tuple[int, ...] | None:
        axes = self.weight.input_axes
        return einsum_input_axes(self.owner.equation) if axes == EINSUM else axes  # type: ignore[return-value]


def einsum_input_axes(equation: str) -> tuple[int, ...]:
    """The kernel axes an EinsumDense sums over: in its input's subscripts, not its output's."""
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    return tuple(i for i, c in enumerate(kernel) if c in x and c not in output)


def registered_weights(layer: Any) -> tuple[Weight, ...] | None:
    """The registry entry of `layer`'s class or its closest registered base class, else None."""
    for cls in type(layer).__mro__:
        if cls.__name__ in PRUNABLE:
            return PRUNABLE[cls.__name__]
    return None


def _variable(layer, attribute):
    """(owner, variable) at the dotted `attribute` of `layer`, or (None, None) when absent.

    Keras keeps some kernels as `_kernel` behind a `kernel` property (which may add a LoRA
    term); the variable itself is what gets the mask."""
    *parents, name = attribute.split(".")
    owner = layer
    for part in parents:
        owner = getattr(owner, part, None)
        if owner is None:
            return None, None
    for candidate in (f"_{name}", name):
        value = getattr(owner, candidate, None)
        if value is not None and hasattr(value, "assign") and hasattr(value, "constraint"):
            return owner, value
    return None, None


def _sublayers(layer):
    return list(layer._flatten_layers(include_self=False, recursive=False))


def walk(model):
    """(path, layer) for every layer under `model`, depth first, paths joined with '/'."""
    out = []

    def visit(layer, prefix):
        for sub in _sublayers(layer):
            path = f"{prefix}{sub.name}"
            out.append((path, sub))
            if registered_weights(sub) is None:
                visit(sub, path + "/")

    visit(model, "")
    return out


class Exclusions:
    """The `exclude` list: each entry a layer name, a layer path, a class name or a regex
    (matched in full against names and paths). An entry that matches nothing is an error."""

    def __init__(self, entries, layers):
        self.entries = list(entries or [])
        self._layers = layers
        names = {n for path, layer in layers for n in (path, layer.name, type(layer).__name__)}
        self._patterns = {}
        for entry in self.entries:
            if not isinstance(entry, str):
                raise InputError(
                    f"Expected 'exclude' entries to be layer names, classes or regexes. Received: {entry!r}."
                )
            if entry in names:
                continue
            try:
                pattern = re.compile(entry)
            except re.error:
                pattern = None
            if pattern is None or not any(pattern.fullmatch(n) for n in names):
                raise InputError(
                    f"Expected 'exclude' to name layers of the model (a name, a path such as 'backbone/conv1', "
                    f"a class such as 'Dense', or a regex). Received: {entry!r}, which matches no layer."
                    f"{suggest(entry, sorted(names))}"
                )
            self._patterns[entry] = pattern

    def excludes(self, path, layer):
        keys = (path, layer.name, type(layer).__name__)
        for entry in self.entries:
            pattern = self._patterns.get(entry)
            if entry in keys or (pattern is not None and any(pattern.fullmatch(k) for k in keys)):
                return True
        return False


def prunable_weights(model: Any, exclude: Iterable[str] = ()) -> list[Target]:
    """Every weight of `model` to prune, in layer order; `exclude` skips layers (and all
    they contain). Shared layers are pruned once."""
    layers = walk(model)
    exclusions = Exclusions(exclude, layers)
    excluded: list[str] = []
    targets, seen = [], set()
    for path, layer in layers:
        if any(path.startswith(p + "/") for p in excluded):
            continue
        if exclusions.excludes(path, layer):
            excluded.append(path)
            continue
        for weight in registered_weights(layer) or ():
            owner, variable = _variable(layer, weight.attribute)
            if variable is None or id(variable) in seen or not variable.trainable:
                continue
            seen.add(id(variable))
            targets.append(Target(f"{path}/{weight.attribute}", layer, weight, variable, owner))
    return targets
