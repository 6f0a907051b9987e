"""Preprocessing layers that learn their state from data (`adapt`), adapted before training.

A `Normalization` nobody adapted has mean 0 and variance 1 and does nothing; a lookup layer
without a vocabulary maps every token to the OOV index. Before `fit`, every such layer in the
model (nested functional and Sequential models walked into) whose state is not yet set is
adapted on the training split: its input is computed by a sub-model from the model's inputs
to that layer's input, batch by batch, so a Normalization after a Reshape or on one of several
inputs sees exactly the features it will normalize. The split is read as the model is fed at
inference: no shuffling, no `data.augment` (random, training-only draws would make the state
depend on the draw) and no sample weights. Layers earlier in the graph are adapted first, so a
later layer's input already passes through their learned state.

A layer inside a subclassed model (or another layer's `call`) has no graph to compute its input
from: it is refused with an error saying how to set its state instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekeras.errors import InputError
from edgekeras.models.subclassed import has_inputs
from edgekeras.progress import note


@dataclass(frozen=True)
class Adaptable:
    """What edgekeras knows about one kind of adaptable layer."""

    is_set: object  # layer -> True when its state is given in its config, adapted or loaded
    given_by: str  # the config argument(s) that set the state without data (for errors)


def _normalization_set(layer):
    if layer.input_mean is not None:
        return True
    if not layer.built:
        return False
    # `adapt` (or loading a saved model) moves the statistics off their initial zeros and ones.
    mean, variance = np.asarray(layer.adapt_mean), np.asarray(layer.adapt_variance)
    return bool(np.any(mean != 0) or np.any(variance != 1))


def _has_vocabulary(layer):
    return len(layer.get_vocabulary(include_special_tokens=False)) > 0


# Keras class (or a base class) -> how to tell its state is set. Layers with `adapt` not
# listed here are asked `is_adapted` (Keras 2 style) or `_is_adapted` (FeatureSpace).
ADAPTABLE = {
    "Normalization": Adaptable(_normalization_set, "'mean' and 'variance'"),
    "Discretization": Adaptable(lambda layer: layer.bin_boundaries is not None, "'bin_boundaries'"),
    "IndexLookup": Adaptable(_has_vocabulary, "'vocabulary'"),  # StringLookup, IntegerLookup
    "TextVectorization": Adaptable(_has_vocabulary, "'vocabulary'"),
}


def _kind(layer):
    """The `ADAPTABLE` entry of `layer`'s class or nearest base class, or None."""
    return next((ADAPTABLE[c.__name__] for c in type(layer).__mro__ if c.__name__ in ADAPTABLE), None)


def _given_by(layer):
    """The config argument(s) that set `layer`'s state without data (for errors)."""
    kind = _kind(layer)
    return kind.given_by if kind else "its state"


def needs_adapting(layer):
    """True if `layer` learns its state with `adapt` and that state is not set yet."""
    if not callable(getattr(layer, "adapt", None)):
        return False
    kind = _kind(layer)
    if kind is not None:
        return not kind.is_set(layer)
    return not (getattr(layer, "is_adapted", False) or getattr(layer, "_is_adapted", False))


@dataclass(frozen=True)
class Pending:
    """A layer to adapt: `chain` is the graph models from the outer one to the layer's own."""

    layer: object
    path: str  # 'normalization', or 'inner_model/normalization' inside a nested model
    chain: tuple


def pending_layers(model):
    """Every layer of `model` to adapt, in graph order; raises InputError for one that sits
    where its input cannot be computed (inside a subclassed model or a layer's own call, or
    shared between several calls), before anything is adapted."""
    if not _is_graph(model):  # e.g. a subclassed model passed to `train` in memory
        _refuse_inside(model, model.name)
        return []
    pending = list(_walk(model, (model,), ""))
    for item in pending:
        for container, target in _links(item):
            _node_of(container, target, item.path)
    return pending


def _links(item):
    """(graph model, what it computes the input of) from the outer model down to the layer."""
    return zip(item.chain, item.chain[1:] + (item.layer,))


def _is_graph(layer):
    """A functional or Sequential model: the inputs of its layers can be computed."""
    import keras

    return isinstance(layer, keras.Model) and has_inputs(layer)


def _walk(container, chain, prefix):
    for layer in container.layers:
        path = prefix + layer.name
        if _is_graph(layer):
            yield from _walk(layer, chain + (layer,), path + "/")  # a nested graph model
        elif needs_adapting(layer):
            yield Pending(layer, path, chain)
        else:
            _refuse_inside(layer, path)


def _refuse_inside(holder, path):
    """Raises InputError for an unadapted layer inside `holder`'s own call() (no graph)."""
    for inner in holder._flatten_layers(include_self=False, recursive=True):
        if needs_adapting(inner):
            raise _unreachable(inner, f"{path}/{inner.name}", holder)


def _unreachable(layer, path, holder):
    return InputError(
        f"Expected layer '{path}' ({type(layer).__name__}) to have its state set, or to sit where edgekeras can "
        f"adapt it on the training split. Received: an unadapted layer inside '{holder.name}' "
        f"({type(holder).__name__}), whose call() has no graph to compute the layer's input from. Give "
        f"{_given_by(layer)} in its config, or call layer.adapt(data) in the `python` model function before "
        "returning the model."
    )


def adapt_layers(model, split, batch_size):
    """Adapts every layer `pending_layers(model)` finds on the inputs `split` (the training
    split) feeds them; returns [{layer, class, samples}] for run.json ([] if none)."""
    pending = pending_layers(model)
    if pending:
        names = ", ".join(f"'{p.path}'" for p in pending)
        note(f"Adapting {names} on the {len(split)} training samples")
    done = []
    for item in pending:
        features = _features(item)
        try:
            item.layer.adapt(features(batch) for batch in _input_batches(split, batch_size))
        except (ValueError, TypeError) as e:  # Keras' own reason, e.g. a shape adapt cannot take
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(
                f"Expected layer '{item.path}' ({type(item.layer).__name__}) to adapt on the training split. "
                f"Received: {reason} Give {_given_by(item.layer)} in its config instead."
            ) from None
        done.append({"layer": item.path, "class": type(item.layer).__name__, "samples": len(split)})
    return done


def _input_batches(split, batch_size):
    """The split's inputs (no labels) in batches of numpy arrays, in their stored order."""
    dataset = split.to_tf_dataset().map(lambda x, *_labels: x).batch(batch_size)
    return dataset.as_numpy_iterator()


def _features(item):
    """batch of model inputs -> the tensor(s) at `item.layer`'s input, as numpy."""
    import keras

    stages = []
    for container, target in _links(item):
        tensors = _node_of(container, target, item.path).input_tensors
        inputs = container.inputs[0] if len(container.inputs) == 1 else container.inputs
        stages.append(keras.Model(inputs, tensors[0] if len(tensors) == 1 else list(tensors)))

    def compute(batch):
        if isinstance(batch, dict) and len(batch) == 1 and len(item.chain[0].inputs) == 1:
            batch = next(iter(batch.values()))  # {'x': array} for a single-input model
        for stage in stages:  # eager calls: a predict function per sub-model would retrace (and warn)
            batch = keras.tree.map_structure(keras.ops.convert_to_numpy, stage(batch, training=False))
        return batch

    return compute


def _node_of(container, layer, path):
    """`layer`'s one call inside `container`'s graph (a Sequential keeps its graph in
    `_functional`; its rebuilds leave older calls on the layer, outside that graph)."""
    graph = getattr(container, "_functional", None) or container
    nodes = [n for depth in graph._nodes_by_depth.values() for n in depth if n.operation is layer]
    if len(nodes) != 1:
        raise InputError(
            f"Expected layer '{path}' ({type(layer).__name__}) to be called once in '{container.name}' so it "
            f"can be adapted on one input. Received: {len(nodes)} calls (a shared layer). Give "
            f"{_given_by(layer)} in its config, or adapt it in the `python` model function."
        )
    return nodes[0]


def refresh_adapted_state(model):
    """Re-derives what each `Normalization` in `model` computes with from its variables, after
    they were assigned directly (a checkpoint restore, `set_weights` on a clone): Keras keeps a
    tensor copy of the statistics that only `adapt` and `load_own_variables` refresh, so a
    clone given an adapted layer's weights would otherwise still compute with mean 0, variance 1."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()
