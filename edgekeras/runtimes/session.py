"""The interface every runtime session offers, and helpers they share."""

from __future__ import annotations

import numpy as np

from edgekeras.signature import check_feeds


class Session:
    """A loaded artifact. Subclasses fill `inputs`/`outputs` and implement the hooks.

    `run(feeds)` is for validation (any batch size, returns {name: array});
    `prepare(feeds)` then `invoke()` is the benchmark path: `invoke` does nothing but the
    runtime's own call, so timing it measures the runtime, not edgekeras.
    """

    runtime = ""
    inputs: list = []
    outputs: list = []

    def run(self, feeds):
        feeds = check_feeds(self.inputs, feeds)
        return self._run(feeds)

    def prepare(self, feeds):
        raise NotImplementedError

    def invoke(self):
        raise NotImplementedError

    def details(self):
        """Runtime facts for reports: providers, delegates, threads."""
        return {}


def quantize(array, scale, zero_point, dtype):
    info = np.iinfo(dtype)
    q = np.round(array / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(array, scale, zero_point):
    return (array.astype(np.float32) - zero_point) * scale
