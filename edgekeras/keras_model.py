"""A Keras model held in memory with the facts artifacts record, and its signature.

`KerasModel` pairs a live model with its content hash (and file, when it came from one);
`input_specs`/`output_specs`/`output_names` read its named inputs and outputs the way every
comparison matches them (by name, never by position); `predict` runs it on named feeds.
Nothing here reads or writes files (that is `model_io`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.signature import TensorSpec

if TYPE_CHECKING:
    import keras

    from edgekeras.hints import Arrays


@dataclass
class KerasModel:
    """A Keras model with the facts artifacts record about it.

    `precision` is the dtype policy the model was trained under: a mixed-precision model is
    held in its float32 form (same weights), which is what converters can lower.
    """

    model: keras.Model
    sha256: str
    path: Path | None = None
    precision: str = "float32"

    @property
    def inputs(self) -> list[TensorSpec]:
        return input_specs(self.model)

    @property
    def outputs(self) -> list[TensorSpec]:
        return output_specs(self.model)


def sha256_model(model: keras.Model) -> str:
    """A content hash of an in-memory model: architecture plus every weight."""
    import json

    h = hashlib.sha256()
    try:
        h.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    except Exception:  # subclassed models may not serialize their config
        h.update(type(model).__name__.encode())
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def input_specs(model: keras.Model) -> list[TensorSpec]:
    """`TensorSpec`s (name, shape with a free batch dim, dtype) of a model's symbolic inputs."""
    specs = []
    for t in model.inputs:
        name = t.name
        specs.append(TensorSpec(name, (None, *t.shape[1:]), str(t.dtype).replace("tf.", "")))
    return specs


def output_names(model: keras.Model) -> list[str]:
    """Keras output names (the output layers' names); Sequential keeps them on its graph."""
    names = getattr(model, "output_names", None)
    if names is None and getattr(model, "_functional", None) is not None:
        names = model._functional.output_names
    if names is None:
        names = [
            t._keras_history[0].name if hasattr(t, "_keras_history") else f"output_{i}"
            for i, t in enumerate(model.outputs)
        ]
    return list(names)


def output_specs(model: keras.Model) -> list[TensorSpec]:
    return [
        TensorSpec(name, (None, *t.shape[1:]), "float32")
        for name, t in zip(output_names(model), _flat_outputs(model, model.outputs))
    ]


def _flat_outputs(model: keras.Model, outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[n] for n in output_names(model)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def outputs_by_name(model: keras.Model, outputs: Any) -> dict[str, Any]:
    """{output name: tensor} from whatever structure `model(...)` returned."""
    if isinstance(outputs, dict):
        return dict(outputs)
    return dict(zip(output_names(model), _flat_outputs(model, outputs)))


def predict(model: keras.Model, feeds: Mapping[str, np.ndarray], batch_size: int = 256) -> Arrays:
    """Runs the Keras model on {input name: array}; returns {output name: numpy array}."""
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    y = model.predict(x, batch_size=batch_size, verbose=0)
    return {k: np.asarray(v) for k, v in outputs_by_name(model, y).items()}
