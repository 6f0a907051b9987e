"""Framework-free descriptions of a model's inputs and outputs (no TensorFlow import).

Inputs and outputs are always matched by name, never by position: TFLite and ONNX both
reorder them (see STACK-NOTES), so every artifact carries the Keras names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekeras.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic dimension) and numpy dtype name of one tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d["dtype"])

    def matches(self, array: np.ndarray) -> bool:
        """True if `array` fits this spec apart from dynamic dimensions."""
        if array.ndim != len(self.shape):
            return False
        return all(s is None or s == a for s, a in zip(self.shape, array.shape))

    def describe(self) -> str:
        dims = ", ".join("None" if s is None else str(s) for s in self.shape)
        return f"{self.name}: ({dims}) {self.dtype}"


def check_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, Any], what: str = "inputs") -> dict[str, np.ndarray]:
    """Validates a {name: array} dict against specs; returns it with arrays cast to spec dtypes."""
    names = [s.name for s in specs]
    what_names = f"{what} with arrays"
    missing = [n for n in names if n not in feeds]
    extra = [n for n in feeds if n not in names]
    if missing or extra:
        raise InputError(
            f"Expected {what_names} named {names}. Received: {sorted(feeds)}."
            + (f" Missing: {missing}." if missing else "")
            + (f" Unexpected: {extra}." if extra else "")
        )
    out = {}
    for spec in specs:
        arr = np.asarray(feeds[spec.name])
        if not spec.matches(arr):
            want = tuple("N" if s is None else s for s in spec.shape)
            raise InputError(
                f"Expected {what} for input '{spec.name}' of shape {want}. Received: an array of shape "
                f"{arr.shape}. Reshape the data to the model's input shape."
            )
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise InputError(
                f"Expected finite values in {what} for input '{spec.name}'. Received: an array with "
                f"{int(np.sum(~np.isfinite(arr)))} NaN/Inf values. Clean or drop those samples."
            )
        out[spec.name] = arr.astype(spec.dtype, copy=False)
    return out
