"""What every exporter receives: the model, its serving function, calibration data, options.

Expensive intermediates (the serving function, a SavedModel, the fp32 ONNX graph) are built
once per `convert` call and shared by every precision that needs them.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekeras.export.recurrent import check_input_lengths, recurrent_layers, sequence_lengths, unrolled_clone


@dataclass
class ExportContext:
    keras_model: object  # model_io.KerasModel
    calibration: dict | None = None  # {input name: array}, checked against the signature
    validation: object | None = None  # data.bundle.Split the artifacts are validated on (auto searches on it)
    validation_source: str | None = None  # validation.DATA_SOURCES key of unlabelled inputs, None if labelled
    opset: int = 18
    allow_select_ops: bool = False  # TFLite: allow TensorFlow (Flex) ops
    fixed_batch: int | None = None  # None: dynamic batch (recurrent TFLite models use 1)
    input_lengths: dict | None = None  # {input name: sequence length} where unrolling needs one
    unroll: bool = False  # unroll recurrent layers at every TFLite precision (inspect's float baseline)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgekeras-")))
    _cache: dict = field(default_factory=dict)

    def __post_init__(self):
        try:
            self.input_lengths = check_input_lengths(self.input_lengths, self.keras_model.inputs)
        except Exception:
            self.close()
            raise

    @property
    def model(self):
        return self.keras_model.model

    @property
    def recurrent_layers(self):
        """Names of the model's recurrent layers (LSTM, GRU, SimpleRNN, ...), outermost first."""
        return self.cached("recurrent_layers", lambda: recurrent_layers(self.model))

    def sequence_lengths(self, what):
        """{input: (length, source)} for inputs with a free sequence length, fixed from
        `input_lengths` or the calibration data (see `recurrent.sequence_lengths`); `what`
        names the conversion in the error raised when an input has neither."""
        return self.cached(
            "sequence_lengths", lambda: sequence_lengths(self.model, self.input_lengths, self.calibration, what)
        )

    @property
    def unrolled_model(self):
        """The model with its recurrent layers unrolled over fixed sequence lengths (once)."""

        def build():
            lengths = self.sequence_lengths("unrolling recurrent layers")
            return unrolled_clone(self.model, {name: length for name, (length, _) in lengths.items()})

        return self.cached("unrolled_model", build)

    def known(self, key):
        """What `cached(key, ...)` holds, or None when nothing built it yet."""
        return self._cache.get(key)

    def cached(self, key, build):
        """`build()` once per context; later calls return the same value."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def calibration_count(self, limit=None):
        n = len(next(iter(self.calibration.values())))
        return n if limit is None else min(n, limit)

    def calibration_samples(self, batch=1, limit=None):
        """Yields {input name: array of `batch` samples}, at most `limit` samples in all.

        Batch 1 matches a dynamic-batch model; a fixed-batch model gets its own batch size
        (the last incomplete batch is dropped: a fixed shape cannot take it).
        """
        n = self.calibration_count(limit)
        for start in range(0, n - batch + 1, batch):
            yield {k: v[start : start + batch] for k, v in self.calibration.items()}

    def close(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
