"""Masks applied while a plain Keras model trains, at no Python cost per step.

The model stays a plain Keras model. Each pruned variable gets a `MaskConstraint`: Keras'
optimizers apply a variable's `constraint` in the compiled train step right after the
update (`BaseOptimizer.apply`), so pruned weights stay exactly zero with one multiply per
kernel and step. The masks are non-trainable `keras.Variable`s outside the model (a saved
model never holds them); the pruning callback (`pruning/callback.py`) recomputes them on the
schedule's steps. `Pruner.variables` (masks and step) ride in the run folder's checkpoint, so a
killed run resumes mid-schedule. `strip_pruning` puts the variables' own constraints back: what
is saved or exported is the plain model with zeros in its kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from edgekeras.errors import InputError
from edgekeras.pruning.masks import Structure, check_n_m, mask_for
from edgekeras.pruning.registry import Target, prunable_weights
from edgekeras.qat import fake_quant_layers

log = logging.getLogger(__name__)


class MaskConstraint:
    """A pruned variable's constraint while pruning: its own constraint first, then × mask."""

    def __init__(self, mask, original=None):
        self.mask, self.original = mask, original

    def __call__(self, value):
        from keras import ops

        if self.original is not None:
            value = self.original(value)
        return value * ops.cast(self.mask, value.dtype)


def check_prunable(model: Any) -> None:
    """InputError for a model pruning cannot take: an already quantization-aware one."""
    if fake_quant_layers(model):
        raise InputError(
            f"Expected a float model to prune. Received: '{model.name}', which is quantization-aware (FakeQuant "
            "layers). Prune the float model first, then call quantize_aware on the pruned model: it keeps the zeros."
        )


class Pruner:
    """The pruning state of one model: its targets, their masks and the schedule's step."""

    def __init__(
        self, model: Any, structure: Structure, exclude: Iterable[str] = (), targets: list[Target] | None = None
    ):
        import keras

        if targets is None:  # targets given: the caller chose them (e.g. a QAT model's sparse kernels)
            check_prunable(model)
            targets = prunable_weights(model, exclude)
        self.model, self.structure, self.targets = model, structure, targets
        if structure.kind == "n:m":
            self.targets = self._n_m_targets(self.targets)
        if not self.targets:
            raise InputError(
                f"Expected a model with prunable weights (Dense, convolutions, Embedding, recurrent and attention "
                f"kernels; see edgekeras.pruning.registry). Received: '{model.name}', with none left to prune."
            )
        self.masks = [
            keras.Variable(np.ones(t.variable.shape, dtype="float32"), trainable=False, name=f"mask_{i}")
            for i, t in enumerate(self.targets)
        ]
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="pruning_step")
        self.sparsity = 0.0

    def _n_m_targets(self, targets):
        kept = [t for t in targets if t.input_axes is not None]
        skipped = [t.path for t in targets if t.input_axes is None]
        if skipped:
            log.info("%s leaves weights without input channels dense: %s", self.structure, ", ".join(skipped))
        for t in kept:
            check_n_m(tuple(t.variable.shape), t.input_axes, self.structure.n, self.structure.m, t.path)
        return kept

    @property
    def variables(self) -> list:
        """What a checkpoint must hold to resume mid-schedule: every mask, then the step."""
        return [*self.masks, self.step]

    def attach(self) -> Pruner:
        """Puts a `MaskConstraint` on every target (the next compiled train step applies it)."""
        for target, mask in zip(self.targets, self.masks):
            constraint = target.variable.constraint
            if not isinstance(constraint, MaskConstraint):
                target.variable.constraint = MaskConstraint(mask, constraint)
        self.model.train_function = None  # a train step traced before would not apply them
        return self

    def update(self, sparsity: float) -> None:
        """Recomputes every mask at `sparsity` from the current weights and applies it."""
        for target, mask in zip(self.targets, self.masks):
            weight = target.variable.numpy()
            new = mask_for(weight, self.structure, sparsity, target.input_axes)
            mask.assign(new)
            target.variable.assign(weight * new)
        self.sparsity = sparsity

    def apply(self) -> None:
        """Multiplies every target by its current mask (e.g. after weights were restored)."""
        for target, mask in zip(self.targets, self.masks):
            target.variable.assign(target.variable.numpy() * mask.numpy())

    def strip(self) -> Pruner:
        """Applies the masks and gives every variable its own constraint back (`strip_pruning`)."""
        self.apply()
        strip_pruning(self.model)
        return self

    def summary(self) -> dict:
        return sparsity_summary(self.targets)


def preserve_zeros(model: Any, min_sparsity: float = 0.01) -> Pruner | None:
    """A `Pruner` whose masks are the zeros of `model`'s prunable kernels (those at least
    `min_sparsity` zero), attached: fine-tuning (e.g. quantization-aware) keeps them zero.
    None when no kernel is sparse."""
    targets = [t for t in prunable_weights(model) if np.mean(t.variable.numpy() == 0) >= min_sparsity]
    if not targets:
        return None
    pruner = Pruner(model, Structure("unstructured"), targets=targets)
    for target, mask in zip(pruner.targets, pruner.masks):
        mask.assign((target.variable.numpy() != 0).astype("float32"))
    return pruner.attach()


def strip_pruning(model: Any) -> Any:
    """`model` with every pruning constraint removed (its masks applied first): a plain model
    that saves and exports without any pruning object. Returns `model`."""
    for variable in model.variables:
        constraint = getattr(variable, "constraint", None)
        if isinstance(constraint, MaskConstraint):
            variable.assign(variable.numpy() * constraint.mask.numpy())
            variable.constraint = constraint.original
    model.train_function = None
    return model


def sparsity_summary(targets: Iterable[Target]) -> dict:
    """{'weights': {path: {shape, sparsity}}, 'sparsity': zeros / size over all targets}."""
    weights, zeros, size = {}, 0, 0
    for target in targets:
        value = target.variable.numpy()
        count = int(np.sum(value == 0))
        weights[target.path] = {"shape": list(value.shape), "sparsity": count / value.size}
        zeros, size = zeros + count, size + value.size
    return {"weights": weights, "sparsity": zeros / size if size else 0.0}


def model_sparsity(model: Any, exclude: Iterable[str] = ()) -> dict:
    """`sparsity_summary` of every prunable weight of `model`."""
    return sparsity_summary(prunable_weights(model, exclude))
