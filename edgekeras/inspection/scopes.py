"""Which Keras layer a converter's tensor name belongs to.

TFLite and tf2onnx keep the Keras layer scopes in tensor names
('sequential_1/conv2d_1/Relu;sequential_1/conv2d_1/BiasAdd'), with suffixes TensorFlow adds
to make scopes unique; `resolve_scopes` undoes them against the model's layer names.
"""

from __future__ import annotations

import re


def scope_of(tensor_name):
    """The top-level layer scope in a converter tensor name ('model/layer/op;...' -> 'layer')."""
    parts = tensor_name.split(";")[0].split("/")
    return parts[1] if len(parts) >= 3 else None


def resolve_scopes(scopes, layer_names):
    """Maps name scopes (in execution order) to Keras layer names.

    TensorFlow makes scopes unique with suffixes ('conv2d_1' can be layer 'conv2d' traced a
    second time, or layer 'conv2d_1'), so each scope takes the first layer at or after the
    previous match whose name it extends; out-of-order scopes fall back to an exact name.
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
    return mapping


def keras_layer_names(model):
    """The model's layer names in order, without its InputLayers."""
    return [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
