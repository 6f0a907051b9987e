"""`inspect`: what an artifact is, and, given its Keras model, where its error comes from.

    import edgekeras as ek
    info = ek.inspect("artifacts/digits-cnn-tflite-int8.tflite")
    info.precision, info.ops["CONV_2D"], info.needs_select_ops, info.to_dict()
    info = ek.inspect(path, reference="runs/digits/model.keras")   # adds per-tensor errors
    info.layers.activations[0]                                      # the worst tensor

Each format is one module here with `FORMAT`, `summarize(path) -> ArtifactSummary`,
`baseline_options(path, keras_model)` and `compare(artifact, baseline, workdir) ->
layers.Comparison`, listed once in `FORMATS`. Without a reference nothing here imports
TensorFlow: files are read by `edgekeras.readers`. `layers` explains what `--layers`
compares, `pairing` which tensors it pairs, `weights` each weighted op's sparsity, params
and MACs.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

from edgekeras.artifact import as_artifact, gzip_size
from edgekeras.errors import InputError
from edgekeras.export import format_of_path
from edgekeras.formats import get_format
from edgekeras.inspection.layers import DEFAULT_SAMPLES, layer_errors
from edgekeras.inspection.summary import Inspection, validation_summary
from edgekeras.inspection.weights import weight_report
from edgekeras.model_io import sha256_file
from edgekeras.xnnpack_sparse import verdict as xnnpack_verdict

if TYPE_CHECKING:
    from edgekeras.artifact import Artifact
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Architecture, PathLike
    from edgekeras.sources import ModelLike


def format_module(format: str) -> ModuleType:
    """The inspector module of `format` (its record's `inspector`, `edgekeras.formats`)."""
    return get_format(format).load("inspector")


def inspect(
    artifact: Artifact | PathLike,
    reference: ModelLike | None = None,
    data: DataLike | None = None,
    samples: int = DEFAULT_SAMPLES,
    sort: str = "auto",
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = None,
    architecture: Architecture | None = None,
) -> Inspection:
    """Describes `artifact` (a path or `Artifact`); with `reference`, adds per-tensor errors.

    Args:
        artifact: a `.tflite` or `.onnx` file (its `NAME.json` manifest is read if present).
        reference: the Keras model it was exported from (path, `keras.Model`, training run).
            With it, `layers` holds each tensor's error against the fp32 conversion of the
            reference, worst first (see `edgekeras.inspection.layers`).
        data: inputs for that comparison: a `.npz` path (arrays named after the model's
            inputs, or `x`), {input: array} or an array; default: generated from the signature.
        samples: how many samples of `data` (or generated inputs) to run.
        sort: the key the layer rows are sorted by, worst first: "auto" (each tensor's own
            quantization error for quantized artifacts, else relative rmse) or one of
            `edgekeras.inspection.layers.SORT_KEYS`.
        safe_mode, custom_objects, architecture: how a `reference` path loads
            (see `edgekeras.model_io.load_model`).

    Returns:
        An `Inspection` (`to_dict()` gives the JSON `edgekeras inspect --json` prints).
    """
    art = as_artifact(artifact)
    if art.path.is_dir():
        raise InputError(f"Expected an artifact file (.tflite, .onnx). Received: '{art.path}', a folder.")
    fmt = format_of_path(art.path)
    summary = format_module(fmt).summarize(art.path)
    has_manifest = art.manifest_path.exists()
    manifest = art.manifest if has_manifest else {}
    sha = sha256_file(art.path)
    recorded = manifest.get("artifact_sha256")
    result = Inspection(
        path=str(art.path),
        format=fmt,
        precision=manifest.get("precision") or summary.detected_precision,
        precision_source="manifest" if manifest.get("precision") else "detected",
        detected_precision=summary.detected_precision,
        size_bytes=art.path.stat().st_size,
        sha256=sha,
        manifest=str(art.manifest_path) if has_manifest else None,
        manifest_matches=None if recorded is None else recorded == sha,
        summary=summary,
        validation=validation_summary(manifest),
        unrolled=manifest.get("unrolled"),
        gzip_size_bytes=gzip_size(art.path),
        weights=weight_report(art.path, fmt),
        xnnpack_sparse=xnnpack_verdict(art.path) if fmt == "tflite" else None,
    )
    if reference is not None:
        result.layers = layer_errors(
            result,
            art.path,
            reference,
            data=data,
            samples=samples,
            sort=sort,
            safe_mode=safe_mode,
            custom_objects=custom_objects,
            architecture=architecture,
        )
    elif data is not None:
        raise InputError(
            "Expected a reference model to compare against when data is given. Received: data "
            "without a reference. Pass reference=MODEL (--reference MODEL)."
        )
    return result


__all__ = ["Inspection", "format_module", "inspect"]
