"""A model's functional graph, as the transforms that rewire or walk a model see it: FLOP
counting, channel pruning and quantization-aware training. Sequential models through their
functional twin, nested models walked into, subclassed models refused (Keras cannot list
their layers' connections)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekeras.errors import InputError


@dataclass
class LayerCall:
    """One call of a layer in the graph: its symbolic input and output tensors (flat lists)."""

    layer: Any
    inputs: list
    outputs: list

    @property
    def input_shapes(self):
        return [tuple(t.shape) for t in self.inputs]

    @property
    def output_shapes(self):
        return [tuple(t.shape) for t in self.outputs]


def graph_of(model, purpose="pruning"):
    """The functional graph behind `model` (a Sequential model's own functional twin); `purpose`
    names the transform that needs it, in the error a model without one gets."""
    import keras

    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise InputError(
                f"Expected a Sequential model with a known input shape. Received: '{model.name}', never "
                f"built. Give it a keras.Input (or call it once on data) before {purpose}."
            )
        return graph
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise InputError(
            f"Expected a functional or Sequential Keras model for {purpose}. Received: "
            f"'{getattr(model, 'name', model)}', a subclassed {type(model).__name__}: its call() is Python code, "
            "so Keras cannot list which layer feeds which. Rebuild it with the functional API "
            "(edgekeras.models.subclassed.functional)."
        )
    return model


def _nested(graph):
    import keras

    return any(isinstance(layer, keras.Model) for layer in graph.layers)


def working_graph(model, input_shape=None):
    """A functional model computing `model` with no nested models, sharing `model`'s layers.

    `model`'s own graph when it has no nested model and `input_shape` is None; else its layers
    are called again on new inputs (of `input_shape`, without batch: one shape, or a list of
    them in input order), nested models walked into. Outputs keep their names.
    """
    import keras
    from keras import tree

    graph = graph_of(model)
    if input_shape is None and not _nested(graph):
        return graph
    shapes = _input_shapes(graph, input_shape)

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.Model):
            inner = tree.flatten(args[0] if len(args) == 1 else args)
            return graph_of(layer)._run_through_graph(inner, call_fn=call)
        return layer(*args, **kwargs)

    inputs = [keras.Input(batch_shape=s, dtype=t.dtype, name=input_name(t)) for t, s in zip(graph.inputs, shapes)]
    outputs = tree.flatten(graph._run_through_graph(inputs, call_fn=call))
    named = []
    for before, after in zip(tree.flatten(graph.outputs), outputs):
        name = before._keras_history.operation.name
        named.append(after if after._keras_history.operation.name == name else keras.layers.Identity(name=name)(after))
    structured = tree.pack_sequence_as(graph._inputs_struct, inputs)
    return keras.Model(structured, tree.pack_sequence_as(graph._outputs_struct, named), name=model.name)


def _input_shapes(graph, input_shape):
    own = [tuple(t.shape) for t in graph.inputs]
    if input_shape is None:
        return own
    given = [input_shape] if len(own) == 1 and not isinstance(input_shape[0], (list, tuple)) else list(input_shape)
    if len(given) != len(own) or any(len(g) != len(o) - 1 for g, o in zip(given, own)):
        raise InputError(
            f"Expected input_shape to give each of the model's {len(own)} input(s) its shape without the batch "
            f"dimension, like {[o[1:] for o in own]}. Received: {input_shape!r}."
        )
    return [(None, *map(int, g)) for g in given]


def input_name(tensor):
    """A model input's name as Keras knows it (its InputLayer's: the keys `predict` takes);
    keras.applications models have a different, generated tensor name."""
    return tensor._keras_history.operation.name


def layer_calls(graph) -> list[LayerCall]:
    """Every layer call of a functional `graph`, inputs before the layers they feed."""
    calls = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            calls.append(LayerCall(node.operation, list(node.input_tensors), list(node.outputs)))
    return calls
