"""How the accuracy-aware search measures a candidate mix.

Every candidate is judged the way `validate` judges the artifact it ships (`validation.assess`,
same data, same tolerance: the budget), so the search stops exactly where validation passes.
The Keras model's outputs are computed once. Ranking uses a finer, label-free measure on a
subset: each sample's output error relative to the reference's magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgekeras.errors import InputError
from edgekeras.keras_model import predict
from edgekeras.validation import assess, run_batched, validation_inputs

if TYPE_CHECKING:
    from edgekeras.hints import Arrays
    from edgekeras.keras_model import KerasModel
    from edgekeras.precisions import Tolerance
    from edgekeras.runtimes.session import Session
    from edgekeras.validation import ValidationResult


@dataclass(frozen=True)
class Measure:
    """One candidate on the whole validation set: the verdict and the numbers steps record."""

    result: ValidationResult
    cosine: float  # the lowest over outputs

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def accuracy_delta(self) -> float | None:
        return self.result.accuracy_delta

    def better_than(self, other: Measure) -> bool:
        """Accuracy first (when measured), then the worst output's cosine."""
        return (self.accuracy_delta or 0.0, self.cosine) > (other.accuracy_delta or 0.0, other.cosine)

    def to_dict(self) -> dict:
        return {
            "accuracy_delta": self.accuracy_delta,
            "accuracy": self.result.accuracy,
            "cosine": self.cosine,
            "failures": [str(f) for f in self.result.failures],
            "passed": self.passed,
        }


class Judge:
    """Measures candidate artifacts against the Keras model on the validation data."""

    def __init__(self, keras_model: KerasModel, data, source: str | None, tolerance: Tolerance) -> None:
        self.keras_model, self.tolerance = keras_model, tolerance
        self.feeds, self.labelled, self.origin = validation_inputs(data, keras_model, source)
        self.reference = predict(keras_model.model, self.feeds)

    @property
    def samples(self) -> int:
        return len(next(iter(self.feeds.values())))

    def outputs(self, session: Session, index: np.ndarray | None = None) -> Arrays:
        """The artifact's outputs on the validation inputs (only those at `index`, if given)."""
        feeds = self.feeds if index is None else {k: v[index] for k, v in self.feeds.items()}
        return run_batched(session, feeds)

    def measure(self, outputs: Arrays) -> Measure:
        result = assess(
            self.keras_model, self.feeds, self.labelled, self.reference, outputs, self.tolerance, self.origin
        )
        return Measure(result, min(o.cosine for o in result.outputs))

    def check_budget(self, first: Measure) -> None:
        """An accuracy budget needs an output whose accuracy was measured (a labelled classifier)."""
        if self.tolerance.max_accuracy_drop is None or first.accuracy_delta is not None:
            return
        kinds = ", ".join(f"'{o.output}' ({o.kind}{', labelled' if o.labels else ''})" for o in first.result.outputs)
        raise InputError(
            "Expected a classifier output with labels for --accuracy-budget (it is in accuracy points). "
            f"Received: outputs {kinds}. Use --min-cosine C to bound the mix by parity instead."
        )

    def sample_errors(self, outputs: Arrays, index: np.ndarray | None = None) -> np.ndarray:
        """Per sample: the squared error over the reference's squared magnitude, summed over outputs."""
        total = 0.0
        for name, ref in self.reference.items():
            ref = ref if index is None else ref[index]
            r = ref.astype(np.float64).reshape(len(ref), -1)
            a = outputs[name].astype(np.float64).reshape(len(ref), -1)
            total = total + ((a - r) ** 2).sum(1) / np.maximum((r**2).sum(1), 1e-12)
        return np.asarray(total)
