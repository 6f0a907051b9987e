"""Magnitude masks (numpy only): which weights of a kernel are kept (1) and which zeroed (0).

- unstructured: the round(sparsity * size) weights of smallest |w| are zeroed — exactly that
  many (ties broken by position, so the count never drifts);
- N:M: along a kernel's input-channel axes (`registry.Weight.input_axes`), every group of M
  consecutive input channels feeding one output keeps its N largest |w| (2:4 is the pattern
  sparse tensor cores run).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekeras.errors import InputError
from edgekeras.pruning.schedules import check_sparsity


@dataclass(frozen=True)
class Structure:
    """What a mask looks like: 'unstructured', 'n:m' (with n, m) or 'channels'."""

    kind: str
    n: int = 0
    m: int = 0

    @property
    def sparsity(self) -> float:
        """The sparsity an N:M pattern fixes (1 - N/M)."""
        return 1 - self.n / self.m if self.kind == "n:m" else 0.0

    def __str__(self):
        return f"{self.n}:{self.m}" if self.kind == "n:m" else self.kind


def parse_structure(value: Any) -> Structure:
    """'unstructured', 'channels' or 'N:M' (e.g. '2:4') as a `Structure`; else an InputError."""
    if value in ("unstructured", "channels"):
        return Structure(value)
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value) if isinstance(value, str) else None
    if match is None:
        raise InputError(
            f"Expected structure to be 'unstructured', 'channels' or 'N:M' (e.g. '2:4'). Received: {value!r}."
        )
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise InputError(f"Expected N:M sparsity with 0 < N < M (e.g. '2:4'). Received: '{n}:{m}'.")
    return Structure("n:m", n, m)


def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """A float32 0/1 mask zeroing exactly round(sparsity * size) weights of smallest |w|."""
    sparsity = check_sparsity(sparsity)
    weight = np.asarray(weight)
    flat = np.abs(weight).reshape(-1)
    k = round(sparsity * flat.size)
    mask = np.ones(flat.size, dtype=np.float32)
    if k:
        mask[np.argsort(flat, kind="stable")[:k]] = 0.0
    return mask.reshape(weight.shape)


def input_channels(shape: Sequence[int], input_axes: Sequence[int]) -> int:
    """How many input channels (the product over `input_axes`) one output sums over."""
    return int(np.prod([shape[a] for a in input_axes]))


def check_n_m(shape: Sequence[int], input_axes: Sequence[int], n: int, m: int, where: str) -> None:
    """InputError unless an N:M pattern fits a kernel of `shape` (M divides its channels)."""
    if input_axes is None:
        raise InputError(
            f"Expected a weight with input channels for {n}:{m} sparsity. Received: '{where}', which has none."
        )
    channels = input_channels(shape, input_axes)
    if channels % m:
        raise InputError(
            f"Expected the input-channel count of '{where}' to be a multiple of M={m} for {n}:{m} sparsity. "
            f"Received: {channels} channels (kernel shape {tuple(shape)}). Exclude the layer (exclude: [...]) "
            f"or choose an M that divides {channels}."
        )


def n_m_mask(weight: np.ndarray, n: int, m: int, input_axes: Sequence[int]) -> np.ndarray:
    """A float32 0/1 mask keeping the N largest |w| of every M consecutive input channels."""
    weight = np.asarray(weight)
    axes = tuple(a % weight.ndim for a in input_axes)
    others = tuple(a for a in range(weight.ndim) if a not in axes)
    order = axes + others
    moved = np.transpose(np.abs(weight), order)
    channels = input_channels(weight.shape, axes)
    groups = moved.reshape(channels // m, m, -1)
    # rank within each group of M: the M - N smallest are zeroed
    ranks = np.argsort(np.argsort(groups, axis=1, kind="stable"), axis=1, kind="stable")
    kept = (ranks >= m - n).astype(np.float32)
    return np.transpose(kept.reshape(moved.shape), np.argsort(order))


def mask_for(
    weight: np.ndarray, structure: Structure, sparsity: float, input_axes: Sequence[int] | None = None
) -> np.ndarray:
    """The mask `structure` asks for at `sparsity` (N:M masks ignore `sparsity`: the pattern fixes it)."""
    if structure.kind == "n:m":
        if input_axes is None:  # the registry gives every N:M-prunable weight its input axes
            raise ValueError("Expected the input-channel axes of a weight pruned N:M. Received: None.")
        return n_m_mask(weight, structure.n, structure.m, input_axes)
    return magnitude_mask(weight, sparsity)
