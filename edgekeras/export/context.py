"""What every exporter receives: the model, its serving function, calibration data, options.

Expensive intermediates (the serving function, a SavedModel, the fp32 ONNX graph) are built
once per `convert` call and shared by every precision that needs them.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportContext:
    keras_model: object                 # model_io.KerasModel
    calibration: dict | None = None     # {input name: array}, checked against the signature
    opset: int = 17
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgekeras-")))
    _cache: dict = field(default_factory=dict)

    @property
    def model(self):
        return self.keras_model.model

    def cached(self, key, build):
        """`build()` once per context; later calls return the same value."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def calibration_samples(self):
        """Yields one {input name: batch-of-1 array} per calibration sample."""
        n = len(next(iter(self.calibration.values())))
        for i in range(n):
            yield {k: v[i:i + 1] for k, v in self.calibration.items()}

    def close(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
