"""`convert`: one Keras model to every requested (format, precision) artifact, validated."""

from __future__ import annotations

from pathlib import Path

from edgekeras.errors import CheckFailed, InputError, ParityError

MIN_CALIBRATION_SAMPLES = 10


class ValidationFailed(CheckFailed):
    """One or more artifacts failed validation; all artifacts and manifests are written."""

    def __init__(self, artifacts, errors):
        self.artifacts, self.errors = artifacts, errors
        super().__init__("\n".join(str(e) for e in errors))


def artifact_stem(keras_model, name=None):
    return name or getattr(keras_model.model, "name", None) or "model"


def convert(model, formats=("tflite", "onnx"), precisions=("fp32",), calibration=None, data=None,
            out="artifacts", force=False, validate=True, opset=17, name=None, safe_mode=True,
            calibration_samples=200):
    """Converts `model` to each format × precision and validates every artifact.

    Args:
        model: a `keras.Model`, a `.keras`/`.h5` path, a run folder, or a training `Run`.
        formats, precisions: lists of names (see `edgekeras.export.EXPORTERS`).
        calibration: representative inputs for quantized precisions (a `.npz` path,
            {input: array}, an array or a `tf.data.Dataset`); required for int8.
        data: labelled data for parity and accuracy (same forms; labels under `y`).
        out: output folder. Existing artifacts are not overwritten unless `force`.

    Returns:
        The list of `Artifact`s, in (format, precision) order. Raises `ValidationFailed`
        (after writing everything) if any artifact fails validation.
    """
    from edgekeras.artifact import Artifact
    from edgekeras.atomic import atomic_path, check_writable
    from edgekeras.data.coerce import as_split
    from edgekeras.export import get_exporter
    from edgekeras.export.context import ExportContext
    from edgekeras.model_io import as_keras_model
    from edgekeras.precisions import get_precision
    from edgekeras.progress import note
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    formats, precisions = _as_list(formats, "formats"), _as_list(precisions, "precisions")
    pairs = [(f, p) for f in formats for p in precisions]
    exporters = [get_exporter(f, p) for f, p in pairs]  # all names checked before any work
    keras_model = as_keras_model(model, safe_mode=safe_mode)
    out = Path(out)
    stem = artifact_stem(keras_model, name)
    paths = [out / f"{stem}-{e.format}-{e.precision}{e.suffix}" for e in exporters]
    for path in paths:
        check_writable(path, force)
        check_writable(path.with_suffix(".json"), force)

    calib_feeds = None
    if any(get_precision(e.precision).needs_calibration for e in exporters):
        split = as_split(calibration, "calibration data")
        if split is None:
            raise InputError(
                "Expected calibration data for a quantized precision (int8). Received: none. "
                "Pass --calibration FILE.npz (calibration=...) with representative inputs."
            )
        where = f"calibration data ('{calibration}')" if isinstance(calibration, (str, Path)) else "calibration data"
        calib_feeds = split.take(calibration_samples).feeds(keras_model.inputs, what=where)
        n = len(next(iter(calib_feeds.values())))
        if n < MIN_CALIBRATION_SAMPLES:
            raise InputError(
                f"Expected at least {MIN_CALIBRATION_SAMPLES} calibration samples. Received: {n}. "
                "Too few samples give quantization ranges that do not represent the data."
            )
    data_split = as_split(data, "validation data")

    versions = _tool_versions()
    context = ExportContext(keras_model, calibration=calib_feeds, opset=opset)
    artifacts, errors = [], []
    try:
        for exporter, path in zip(exporters, paths):
            note(f"Converting {exporter.format} {exporter.precision} -> {path}")
            with atomic_path(path, force=force, suffix=exporter.suffix) as tmp:
                exporter.build(context, tmp)
            from edgekeras.model_io import sha256_file

            artifact = Artifact(path, {
                "format": exporter.format,
                "precision": exporter.precision,
                "description": exporter.description,
                "artifact_sha256": sha256_file(path),
                "size_bytes": path.stat().st_size,
                "source_model": str(keras_model.path) if keras_model.path else None,
                "source_sha256": keras_model.sha256,
                "inputs": [s.to_dict() for s in keras_model.inputs],
                "outputs": [s.to_dict() for s in keras_model.outputs],
                "calibration_samples": len(next(iter(calib_feeds.values())))
                if calib_feeds and get_precision(exporter.precision).needs_calibration else None,
                "opset": opset if exporter.format == "onnx" else None,
                "runtime": exporter.runtime,
                "tool_versions": versions,
            })
            artifact.save(force=force)
            if validate:
                from edgekeras.validation import validate as run_validation

                try:
                    run_validation(artifact, keras_model, data=data_split)
                except ParityError as e:
                    errors.append(e)
            artifacts.append(artifact)
    finally:
        context.close()
    if errors:
        raise ValidationFailed(artifacts, errors)
    return artifacts


def _as_list(value, what):
    if isinstance(value, str):
        return [value]
    value = list(value)
    if not value:
        raise InputError(f"Expected at least one entry in {what}. Received: an empty list.")
    return value


def _tool_versions():
    from importlib import metadata

    versions = {}
    for dist in ("edgekeras", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx",
                 "onnxruntime", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
