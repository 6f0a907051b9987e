"""Which Keras layer a converter's tensor or op name belongs to.

TFLite and tf2onnx keep the Keras layer scopes in names ('sequential_1/conv2d_1/Relu',
fused TFLite ops join several with ';'), with suffixes TensorFlow adds to make scopes
unique; `resolve_scopes` undoes them against the model's layer names. Format-independent:
the exporters (keep_float layers, error messages) and `inspect --layers` share it.
"""

from __future__ import annotations

import re


def scope_of(name):
    """The top-level layer scope in a converter name ('model/layer/op;...' -> 'layer'), or None."""
    parts = name.split(";")[0].split("/")
    return parts[1] if len(parts) >= 3 else None


def scopes_of(name):
    """The top-level layer scope of every ';'-joined part of a fused name, in order, once each."""
    return list(dict.fromkeys(s for s in map(scope_of, name.split(";")) if s))


def resolve_scopes(scopes, layer_names):
    """Maps name scopes (in execution order) to Keras layer names.

    TensorFlow makes scopes unique with suffixes ('conv2d_1' can be layer 'conv2d' traced a
    second time, or layer 'conv2d_1'), so each scope takes the first layer at or after the
    previous match whose name it extends. A scope seen out of order (tf2onnx names a
    Transpose feeding a convolution after the batch norm that follows it) falls back to the
    layer of exactly its name, else to the first layer whose name it extends.
    """
    mapping, pos = {}, 0
    for scope in scopes:
        cands = [
            i
            for i, name in enumerate(layer_names)
            if scope == name or re.fullmatch(re.escape(name) + r"(_\d+)+", scope)
        ]
        later = [i for i in cands if i >= pos]
        if later:
            mapping[scope], pos = layer_names[later[0]], later[0] + 1
        elif scope in layer_names:
            mapping[scope] = scope
        elif cands:
            mapping[scope] = layer_names[cands[0]]
    return mapping


def keras_layer_names(model):
    """The model's layer names in order, without its InputLayers."""
    return [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]


def layer_pattern(layer):
    """Matches a Keras layer's name scope in TensorFlow-derived names ('model/dense_1/MatMul').

    Keras 3 on TensorFlow may add a `_N` suffix to the scope of a layer called `dense`.
    """
    return re.compile(rf"(^|/){re.escape(layer)}(_\d+)?(/|;|$)")


def names_in_layers(names, layers, scoped_by=None):
    """{layer: [names in its scope]} for each layer name. `scoped_by`, parallel to `names`,
    gives the name that carries each one's scope where that is not the name itself."""
    labels = list(names) if scoped_by is None else list(scoped_by)
    return {layer: [n for n, label in zip(names, labels) if layer_pattern(layer).search(label)] for layer in layers}


def layers_in_names(names, layer_names):
    """The Keras layers whose scope appears in any of `names` (for error messages)."""
    found = []
    for layer in layer_names:
        if any(layer_pattern(layer).search(n) for n in names) and layer not in found:
            found.append(layer)
    return found
