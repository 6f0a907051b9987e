"""`convert`: one Keras model to every requested (format, precision) artifact, validated."""

from __future__ import annotations

from pathlib import Path

from edgekeras.errors import CheckFailed, ConversionError, InputError, ParityError
from edgekeras.export.calibration import MIN_SAMPLES as MIN_CALIBRATION_SAMPLES  # noqa: F401


class ValidationFailed(CheckFailed):
    """One or more artifacts failed validation; all artifacts and manifests are written."""

    def __init__(self, artifacts, errors):
        self.artifacts, self.errors = artifacts, errors
        super().__init__("\n".join([str(e) for e in errors] + _advice(artifacts, errors)))


def _advice(artifacts, errors):
    """One 'what to try' line per precision that failed (from `precisions.PRECISIONS`)."""
    from edgekeras.precisions import PRECISIONS

    failed = {str(getattr(e, "artifact", "")) for e in errors}
    precisions = dict.fromkeys(a.precision for a in artifacts if str(a.path) in failed)
    return [f"{p}: {PRECISIONS[p].if_failed}" for p in precisions if p in PRECISIONS and PRECISIONS[p].if_failed]


def artifact_stem(keras_model, name=None):
    return name or getattr(keras_model.model, "name", None) or "model"


def convert(
    model,
    formats=None,
    precisions=None,
    calibration=None,
    data=None,
    out="artifacts",
    force=False,
    validate=True,
    opset=None,
    name=None,
    safe_mode=True,
    calibration_samples=None,
    recipe=None,
    allow_select_ops=False,
    fixed_batch=None,
    int8_io=False,
    target=None,
):
    """Converts `model` to each format × precision and validates every artifact.

    Args:
        model: a `keras.Model`, a `.keras`/`.h5` path, a run folder, or a training `Run`.
        formats: format names (default: the recipe's formats, else tflite and onnx; pairs
            that do not exist are then skipped, while explicitly named ones are an error).
        precisions: precision names (default: the recipe's precision, else fp32).
        calibration: representative inputs for calibrated precisions (int8, int16x8): a
            `.npz` path, an image folder, {input: array}, an array or a `tf.data.Dataset`.
        data: labelled data for parity and accuracy (same forms; labels under `y`).
        out: output folder. Existing artifacts are not overwritten unless `force`.
        opset: ONNX opset (default `export.onnx.DEFAULT_OPSET`).
        calibration_samples: at most this many calibration samples (default: the recipe's).
        recipe: a quantize recipe (name in `quantize/`, YAML path or dict) for its precision;
            other precisions use their default recipe.
        allow_select_ops: let TFLite artifacts use TensorFlow (Flex) ops, listed in the manifest.
        fixed_batch: a fixed batch size (default: dynamic; recurrent TFLite models use 1).
        int8_io: TFLite int8 artifacts take and return int8 instead of float32.
        target: a deployment target (name in `targets/` or a YAML path): it implies the format,
            precision, recipe, I/O type and batch, and its constraints are checked on every
            artifact (`ConstraintViolation`, after everything is written).

    Returns:
        The list of `Artifact`s, in (format, precision) order. Raises `ValidationFailed`
        (after writing everything) if any artifact fails validation. Bad input raises
        `InputError` before anything is written, and a conversion that fails removes the
        artifacts this call already wrote.
    """
    from edgekeras.atomic import check_writable
    from edgekeras.export import EXPORTERS, check_recipe, get_exporter
    from edgekeras.export import formats as all_formats
    from edgekeras.export.context import ExportContext
    from edgekeras.export.onnx import DEFAULT_OPSET, check_opset
    from edgekeras.model_io import as_keras_model
    from edgekeras.precisions import get_precision
    from edgekeras.qat import check_precisions as check_quantization_aware
    from edgekeras.quantize_recipes import load_quant_recipe, recipes_for
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    target_obj = None
    if target is not None:
        from edgekeras.targets import get_target

        target_obj = get_target(target)
        implied = target_obj.conversion_options(formats, precisions, recipe, int8_io, fixed_batch)
        formats, precisions, recipe = implied["formats"], implied["precisions"], implied["recipe"]
        int8_io, fixed_batch = implied["int8_io"], implied["fixed_batch"]
    chosen = load_quant_recipe(recipe) if recipe is not None else None
    precisions = _as_list(
        precisions if precisions is not None else [chosen.precision if chosen else "fp32"], "precisions"
    )
    for p in precisions:
        get_precision(p)
    explicit = formats is not None
    if not explicit:
        formats = list(chosen.formats) if chosen and chosen.formats else all_formats()
    formats = _as_list(formats, "formats")
    pairs = [(f, p) for f in formats for p in precisions if explicit or (f, p) in EXPORTERS]
    if not pairs:
        raise InputError(
            f"Expected a format that produces {', '.join(precisions)}. Received: none of {', '.join(formats)} does."
        )
    exporters = [get_exporter(f, p) for f, p in pairs]  # all names checked before any work
    recipes = recipes_for(precisions, chosen)
    if int8_io:
        if "int8" not in recipes:
            raise InputError(f"Expected --precision int8 with --int8-io. Received: {', '.join(precisions)}.")
        if any(e.precision == "int8" and "io_dtype" not in e.options for e in exporters):
            raise InputError(
                "Expected --format tflite with --int8-io: int8 I/O is a TFLite option (ONNX QDQ "
                f"artifacts keep float32 inputs/outputs). Received: --format {', '.join(formats)}."
            )
        recipes["int8"] = recipes["int8"].with_options(io_dtype="int8")
    if target_obj is not None and target_obj.tolerances:
        recipes = {
            p: r.with_options(tolerance={**r.tolerance, **target_obj.tolerances.get(p, {})}) for p, r in recipes.items()
        }
    for exporter in exporters:
        check_recipe(exporter, recipes[exporter.precision])
    opset = DEFAULT_OPSET if opset is None else opset
    check_opset(opset)
    if fixed_batch is not None and (
        not isinstance(fixed_batch, int) or isinstance(fixed_batch, bool) or fixed_batch < 1
    ):
        raise InputError(f"Expected --batch-size to be a positive integer. Received: {fixed_batch!r}.")

    keras_model = as_keras_model(model, safe_mode=safe_mode)
    check_quantization_aware(keras_model.model, precisions)
    out = Path(out)
    stem = artifact_stem(keras_model, name)
    paths = [out / f"{stem}-{e.format}-{_label(recipes[e.precision], e.precision)}{e.suffix}" for e in exporters]
    for path in paths:
        check_writable(path, force)
        check_writable(path.with_suffix(".json"), force)

    calibrated = [recipes[e.precision] for e in exporters if get_precision(e.precision).needs_calibration]
    calib_feeds = None
    if calibrated:
        from edgekeras.export.calibration import calibration_feeds

        samples = calibration_samples or max(r.samples for r in calibrated)
        scale = next((r.calibration["scale"] for r in calibrated if r.calibration["scale"]), None)
        calib_feeds = calibration_feeds(calibration, keras_model.inputs, samples, scale)
        if calibration_samples:  # an explicit count overrides every recipe's
            recipes = {
                p: r.with_options(calibration={**r.calibration, "samples": calibration_samples})
                for p, r in recipes.items()
            }
    from edgekeras.data.coerce import as_split

    data_split = as_split(data, "validation data")
    context = ExportContext(
        keras_model, calibration=calib_feeds, opset=opset, allow_select_ops=allow_select_ops, fixed_batch=fixed_batch
    )
    written = []
    try:
        artifacts, errors = _build_all(
            context, exporters, paths, recipes, keras_model, force, validate, data_split, written
        )
    except (InputError, ConversionError):
        for path in written:  # no half-finished set of artifacts after bad input or a failed conversion
            path.unlink(missing_ok=True)
        raise
    finally:
        context.close()
    checked = []
    if target_obj is not None:
        from edgekeras.constraints import check_artifact

        checked = [(a, check_artifact(a, target_obj)) for a in artifacts]
    if errors:
        raise ValidationFailed(artifacts, errors)
    if checked:
        from edgekeras.constraints import raise_violations

        raise_violations(target_obj, checked, artifacts)
    return artifacts


def _label(recipe, precision):
    """The file-name tag: the precision, or the recipe name when it is not the default one."""
    from edgekeras.precisions import get_precision

    label = precision if recipe.name in (precision, get_precision(precision).default_recipe) else recipe.name
    return label + ("-int8io" if recipe.io_dtype == "int8" else "")


def _build_all(context, exporters, paths, recipes, keras_model, force, validate, data_split, written):
    from edgekeras.artifact import Artifact
    from edgekeras.atomic import atomic_path
    from edgekeras.model_io import sha256_file
    from edgekeras.precisions import get_precision
    from edgekeras.progress import note, notice

    versions = _tool_versions()
    artifacts, errors = [], []
    for exporter, path in zip(exporters, paths):
        note(f"Converting {exporter.format} {exporter.precision} -> {path}")
        recipe = recipes[exporter.precision]
        existed = path.exists(), path.with_suffix(".json").exists()
        with atomic_path(path, force=force, suffix=exporter.suffix) as tmp:
            notes = exporter.build(context, tmp, recipe) or {}
        written += [p for p, e in zip((path, path.with_suffix(".json")), existed) if not e]
        precision = get_precision(exporter.precision)
        quantized = precision.default_recipe is not None
        warnings = notes.pop("warnings", [])
        artifact = Artifact(
            path,
            {
                "format": exporter.format,
                "precision": exporter.precision,
                "description": exporter.description,
                "artifact_sha256": sha256_file(path),
                "size_bytes": path.stat().st_size,
                "source_model": str(keras_model.path) if keras_model.path else None,
                "source_sha256": keras_model.sha256,
                "inputs": [s.to_dict() for s in keras_model.inputs],
                "outputs": [s.to_dict() for s in keras_model.outputs],
                "calibration_samples": context.calibration_count(recipe.samples)
                if precision.needs_calibration
                else None,
                "recipe": recipe.name if quantized else None,
                "quantization": recipe.to_dict() if quantized else None,
                "tolerance_overrides": dict(recipe.tolerance),
                **notes,
                "warnings": warnings,
                "runtime": exporter.runtime,
                "tool_versions": versions,
            },
        )
        artifact.save(force=force)
        for warning in warnings:
            notice(f"Warning: {warning}")
        if validate:
            _validate_into(artifact, keras_model, data_split, errors)
        artifacts.append(artifact)
    return artifacts, errors


def _validate_into(artifact, keras_model, data_split, errors):
    from edgekeras.progress import notice
    from edgekeras.validation import CannotValidate
    from edgekeras.validation import validate as run_validation

    try:
        run_validation(artifact, keras_model, data=data_split)
    except ParityError as e:
        errors.append(e)
    except CannotValidate as e:  # select ops were asked for; say so instead of passing or failing
        artifact.manifest["validation"] = {"status": "skipped", "reason": str(e), "passed": None}
        artifact.save()
        notice(f"Warning: {artifact.path.name}: {e}")


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
    for dist in (
        "edgekeras",
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
