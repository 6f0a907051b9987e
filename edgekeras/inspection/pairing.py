"""Pairing an artifact's run-time tensors with its float baseline's, never across Keras layers.

Each graph is handed over as `Node`s (one per comparable run-time tensor, in execution
order). Every node gets an **owner**, the Keras layer whose output it is, from the names the
converter left: the scopes in the tensor's name (the latest layer of a fused
'model/bn/FusedBatchNorm;model/conv/Conv2D'), else its op's name (ONNX nodes keep
'model/block_2_depthwise/depthwise' when their output is renamed), else its largest weight's
name, else the Keras input/output it is, else the owner of the tensor it was computed from
(a Transpose after a convolution). Tensors are then paired only with a tensor of the same
owner, by name, by their fused parts, by a name without the counters a converter appends
(format-specific), each key unique on both sides, and last by being computed from the same
paired tensors (the one candidate of its layer). A (de)quantized copy of a paired tensor is
paired with the same float tensor.

Converter counters depend on what the converting process converted before ('Conv__378' in
the artifact need not be 'Conv__378' in the baseline), which is why a name alone never pairs
two tensors of different layers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekeras.readers.scopes import resolve_scopes, scope_of, scopes_of

if TYPE_CHECKING:
    from edgekeras.readers.quant import Quant

# {artifact node id: (reference node id, how they were paired)}
Matched = dict[Hashable, tuple[Hashable, str]]


@dataclass
class Node:
    """One comparable run-time tensor of a graph, as pairing sees it."""

    id: Hashable  # tensor index (TFLite) or name (ONNX)
    name: str
    shape: tuple[Any, ...] = ()
    dtype: str = "float32"
    quant: Quant | None = None  # of a quantized tensor
    op: int | None = None  # index of the op that computes it (None for a graph input)
    output: int = 0  # its position among that op's outputs
    outputs: int = 1  # how many outputs that op has
    inputs: tuple[Hashable, ...] = ()  # ids of the run-time tensors that op reads
    op_name: str | None = None  # the op's own name, where the format keeps one (ONNX)
    weights: tuple[str, ...] = ()  # names of the constants the op reads, largest first
    io: str | None = None  # the Keras input/output name, for a graph input/output
    copy_of: Hashable | None = None  # id of the tensor this is a QUANTIZE/DEQUANTIZE copy of
    copy_how: str = ""  # "quantized copy" / "dequantized copy"

    @property
    def key_name(self) -> str:
        """The name pairing matches: an op whose outputs share one fused name ('split;split1')
        names its k-th output by the k-th part."""
        parts = self.name.split(";")
        return parts[self.output] if self.outputs > 1 and len(parts) == self.outputs else self.name

    def elements(self) -> int | None:
        """Elements per sample (batch axis dropped), or None when a dimension is unknown."""
        dims = self.shape[1:] if self.shape else ()
        if any(d is None for d in dims):
            return None
        count = 1
        for d in dims:
            count *= d
        return count


@dataclass
class Layering:
    """Which Keras layer each node of both graphs belongs to."""

    layer_names: list[str]  # Keras layers in model order
    input_names: list[str]  # Keras inputs (owners of the graph inputs)
    mapping: dict[str, str] = field(default_factory=dict)  # name scope -> layer
    owner: dict[tuple[str, Hashable], str | None] = field(default_factory=dict)  # (side, id) -> layer or input name
    # (side, id) -> other layers its op names
    covered: dict[tuple[str, Hashable], set[str]] = field(default_factory=dict)

    def layer_of(self, name: str) -> str | None:
        """The layer whose scope `name` carries (None when it carries none we know)."""
        return self.mapping.get(scope_of(name))


def resolve(layer_names: Sequence[str], input_names: Iterable[str], graphs: Mapping[str, Sequence[Node]]) -> Layering:
    """A `Layering` for {side: [Node]} graphs (each in execution order)."""
    scopes: list[str] = []
    for nodes in graphs.values():
        for n in nodes:
            scopes += scopes_of(n.name) + [s for s in map(scope_of, (n.op_name or "", *n.weights)) if s]
    mapping = resolve_scopes(list(dict.fromkeys(scopes)), layer_names)
    layering = Layering(list(layer_names), list(input_names), mapping)
    order = {name: i for i, name in enumerate(layer_names)}

    def layer(name: str | None) -> str | None:
        return layering.layer_of(name) if name else None

    for side, nodes in graphs.items():
        by_id = {n.id: n for n in nodes}
        for n in nodes:
            named = [mapping[s] for s in scopes_of(n.name) if s in mapping]
            from_op = layer(n.op_name)
            from_weights = [x for x in map(layer, n.weights) if x]
            owner: str | None
            if n.io in order:
                owner = n.io
            elif named:
                owner = max(named, key=lambda x: order.get(x, -1))
            elif from_op:
                owner = from_op
            elif from_weights:
                owner = from_weights[0]
            elif n.io is not None:
                owner = n.io
            else:  # data movement after a layer (Transpose, Reshape): the layer it came from
                owner = next(
                    (layering.owner[side, i] for i in n.inputs if i in by_id and (side, i) in layering.owner), None
                )
            layering.owner[side, n.id] = owner
            layering.covered[side, n.id] = {x for x in [*named, from_op, *from_weights] if x and x != owner}
    return layering


def pair(art: Sequence[Node], ref: Sequence[Node], layering: Layering, renumbered: Callable[[str], str]) -> Matched:
    """{artifact id: (reference id, how)}; tensors pair only within the same owner layer.

    `renumbered(name)` is the format's name without converter counters.
    """
    matched: Matched = {}
    groups: dict[str | None, dict[str, list[Node]]] = {}
    for side, nodes in (("art", art), ("ref", ref)):
        for n in nodes:
            if side == "art" and n.copy_of is not None:
                continue  # paired through what it copies
            groups.setdefault(layering.owner[side, n.id], {"art": [], "ref": []})[side].append(n)
    for group in groups.values():
        _pair_group(group["art"], group["ref"], renumbered, matched)
    _through_copies(art, matched)
    _by_inputs(groups, matched)
    _through_copies(art, matched)
    return matched


def _by_inputs(groups: Mapping[str | None, Mapping[str, list[Node]]], matched: Matched) -> None:
    """Pairs what is left in a layer by the op's inputs: an artifact tensor whose inputs are all
    paired takes the one unpaired float tensor of its layer computed from their partners at
    the same output position (a Reshape both converters named with a counter of their own)."""
    changed = True
    while changed:
        changed = False
        used = {r for r, _ in matched.values()}
        for group in groups.values():
            for a in group["art"]:
                if a.id in matched or not a.inputs or any(i not in matched for i in a.inputs):
                    continue
                sources = {matched[i][0] for i in a.inputs}
                candidates = [
                    r
                    for r in group["ref"]
                    if r.id not in used and set(r.inputs) == sources and r.output == a.output and _fits(a, r)
                ]
                if len(candidates) == 1:
                    matched[a.id] = (candidates[0].id, "same inputs")
                    used.add(candidates[0].id)
                    changed = True


def _fits(a: Node, r: Node) -> bool:
    ea, er = a.elements(), r.elements()
    return ea is None or er is None or ea == er


def _pair_group(art: Sequence[Node], ref: Sequence[Node], renumbered: Callable[[str], str], matched: Matched) -> None:
    """Pairs within one layer: by name, by fused parts, by the renumbered name (unique on both sides)."""
    free = list(ref)

    def take(a: Node, r: Node, how: str) -> None:
        matched[a.id] = (r.id, how)
        free.remove(r)

    keys: tuple[tuple[Callable[[Node], Hashable], str], ...] = (
        (lambda n: n.key_name, "name"),
        (lambda n: frozenset(n.key_name.split(";")), "fused name"),
        (lambda n: frozenset(renumbered(p) for p in n.key_name.split(";")), "renumbered name"),
    )
    for key, how in keys:
        refs: dict[Hashable, list[Node]] = {}
        for r in free:
            refs.setdefault(key(r), []).append(r)
        arts: dict[Hashable, list[Node]] = {}
        for a in art:
            if a.id not in matched:
                arts.setdefault(key(a), []).append(a)
        for k, group in arts.items():
            candidates = refs.get(k, [])
            if len(group) == 1 and len(candidates) == 1 and _fits(group[0], candidates[0]):
                take(group[0], candidates[0], how)


def _through_copies(art: Sequence[Node], matched: Matched) -> None:
    """A (de)quantized copy of a paired tensor pairs with the same float tensor, and a tensor
    whose copy is paired pairs with its copy's partner."""
    by_id = {n.id: n for n in art}
    changed = True
    while changed:
        changed = False
        for n in art:
            if n.copy_of is None or n.copy_of not in by_id:
                continue
            if n.id not in matched and n.copy_of in matched:
                matched[n.id] = (matched[n.copy_of][0], n.copy_how)
                changed = True
            elif n.copy_of not in matched and n.id in matched:
                how = "quantized copy" if n.copy_how == "dequantized copy" else "dequantized copy"
                matched[n.copy_of] = (matched[n.id][0], how)
                changed = True


def layer_outputs(nodes: Sequence[Node], layering: Layering, side: str) -> dict[str, Node]:
    """{layer: its output node}: the last node it owns that another layer reads or that is a
    graph output (the last one it owns when neither)."""
    owner = {n.id: layering.owner[side, n.id] for n in nodes}
    read_outside: set[Hashable] = set()
    for n in nodes:
        for i in n.inputs:
            if i in owner and owner[i] != owner[n.id]:
                read_outside.add(i)
    found: dict[str, Node] = {}
    last: dict[str, Node] = {}
    for n in nodes:
        layer = owner[n.id]
        if layer is None:
            continue
        last[layer] = n
        if n.id in read_outside or n.io is not None:
            found[layer] = n
    return {layer: found.get(layer, n) for layer, n in last.items()}


def _unpaired_ancestors(
    start: Hashable, by_id: Mapping[Hashable, Node], paired: set[Hashable]
) -> tuple[set[Hashable], set[Hashable]]:
    """Reference nodes reachable backwards from `start` without passing a paired node, in
    execution order, and the paired nodes where the walk stopped."""
    seen: set[Hashable] = set()
    stops: set[Hashable] = set()
    stack = list(by_id[start].inputs)
    while stack:
        i = stack.pop()
        if i in seen or i not in by_id:
            continue
        seen.add(i)
        if i in paired:
            stops.add(i)
            continue
        stack.extend(by_id[i].inputs)
    return seen - stops, stops


def fused_layers(
    art_node: Node,
    ref_id: Hashable,
    ref: Sequence[Node],
    layering: Layering,
    paired: set[Hashable],
    art_inputs: Iterable[Hashable],
) -> set[str]:
    """The layers a pair's comparison also covers.

    When the artifact op reads the partners of every paired float tensor the float graph
    needs to reach the paired one (`art_inputs`: the reference ids its inputs pair with),
    that op computes everything in between: a depthwise convolution, its batch norm and the
    padding before it, folded into one ONNX Conv whose output is the ReLU's. Otherwise only
    the layers the artifact op names (a batch norm's bias), and the unpaired float tensors
    between the paired one and a tensor of such a layer.
    """
    by_id = {n.id: n for n in ref}
    owner = layering.owner["ref", ref_id]
    covered = set(layering.covered["art", art_node.id])
    fused: set[str | None] = set(covered)
    between, stops = _unpaired_ancestors(ref_id, by_id, paired)
    if stops and stops <= set(art_inputs):
        for n in ref:
            if n.id in between:
                fused |= {layering.owner["ref", n.id], *layering.covered["ref", n.id]}
    elif covered:
        hit: dict[Hashable, bool] = {}
        for n in ref:  # execution order: a node's inputs are decided before it
            if n.id not in between:
                continue
            mine = {layering.owner["ref", n.id], *layering.covered["ref", n.id]}
            hit[n.id] = bool(mine & covered) or any(hit.get(i, False) for i in n.inputs)
            if hit[n.id]:
                fused |= mine
    fused.discard(owner)
    return {x for x in fused if x is not None}


def upstream(ref_id: Hashable, ref: Sequence[Node], paired: set[Hashable]) -> set[Hashable]:
    """Ids of the nearest paired reference tensors this one is computed from."""
    by_id = {n.id: n for n in ref}
    _, stops = _unpaired_ancestors(ref_id, by_id, paired)
    return stops
