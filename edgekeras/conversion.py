"""`convert`: one Keras model to every requested (format, precision) artifact, validated.

`convert` plans (`conversion_plan`: names and options checked, no TensorFlow), opens the
model (`sources`: a file, a run folder, a live model), gathers its inputs
(`conversion_inputs`: calibration and validation data, checked before any conversion),
then executes the plan one artifact at a time: export to a temporary file, rename, write
the manifest, validate. The command line's `edgekeras convert` is this function.

Several artifacts of a model file (or run folder) of `ISOLATE_FROM_BYTES` or more run in child
processes (`child_process`): one plans (loads the model, reads and checks the data, checks
memory and disk), then each artifact gets its own, which loads the file, converts, records
and validates, and ends, returning every byte the converter touched. This process never
loads TensorFlow or the model for them, so the whole `convert` needs about what its largest
artifact needs. A live `keras.Model` (or training `Run`), or data only this process holds (a
`tf.data.Dataset`), converts here: the caller holds the model in memory anyway, so a child
would add a second copy rather than return one, and saving it for a child to reload costs a
write and a read of every weight and fails for layers defined in the caller's script.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.artifact import Artifact, external_entry, gzip_size
from edgekeras.atomic import atomic_file_set, check_writable
from edgekeras.child_process import run_in_child
from edgekeras.constraints import check_artifact, raise_violations
from edgekeras.conversion_inputs import ConversionInputs, conversion_inputs
from edgekeras.conversion_plan import ConversionJob, ConversionPlan, plan_conversion
from edgekeras.errors import CannotValidate, InputError, ParityError, ValidationFailed
from edgekeras.export.context import ExportContext
from edgekeras.inspection.weights import weight_report
from edgekeras.manifest import Manifest
from edgekeras.memory_estimate import (
    artifact_bytes,
    check_disk,
    check_memory,
    check_tflite_size,
    estimate,
    release_memory,
    weight_bytes,
)
from edgekeras.model_io import KerasModel, sha256_file
from edgekeras.precisions import PRECISIONS, get_precision
from edgekeras.qat import check_precisions as check_quantization_aware
from edgekeras.quiet import quiet_tensorflow
from edgekeras.run_folder import RunFolder
from edgekeras.sources import ModelSource, load_model, open_model
from edgekeras.validation import validate as validate_artifact

if TYPE_CHECKING:
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Architecture, PathLike
    from edgekeras.quantize_recipes import QuantRecipe
    from edgekeras.sources import ModelLike

__all__ = ["ValidationFailed", "convert", "convert_auto", "execute", "tool_versions", "write_artifact"]

log = logging.getLogger(__name__)

# Whose versions every manifest records.
TOOLS = ("edgekeras", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")
# Weights from which each artifact of a multi-artifact `convert` gets its own child process.
# Below it, a child's start (TensorFlow imported again: ~0.5 GB and seconds) costs more than
# the converter's leftovers it would return.
ISOLATE_FROM_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ModelFile:
    """A model as a child process loads it: the file or run folder and `load_model`'s options."""

    path: Path
    safe_mode: bool = True
    custom_objects: tuple[str, ...] = ()
    architecture: Architecture | None = None

    def load(self) -> KerasModel:
        return load_model(
            self.path, safe_mode=self.safe_mode, custom_objects=self.custom_objects, architecture=self.architecture
        )


def convert(
    model: ModelLike,
    formats: str | Iterable[str] | None = None,
    precisions: str | Iterable[str] | None = None,
    calibration: DataLike | None = None,
    data: DataLike | None = None,
    out: PathLike | None = None,
    force: bool = False,
    validate: bool = True,
    opset: int | None = None,
    name: str | None = None,
    safe_mode: bool = True,
    calibration_samples: int | None = None,
    recipe: str | Path | dict[str, Any] | QuantRecipe | None = None,
    allow_select_ops: bool = False,
    fixed_batch: int | None = None,
    int8_io: bool = False,
    target: PathLike | None = None,
    custom_objects: Iterable[str] | None = (),
    architecture: Architecture | None = None,
    input_lengths: dict[str, int] | None = None,
    accuracy_budget: float | None = None,
    min_cosine: float | None = None,
    revert_to: str | None = None,
) -> list[Artifact]:
    """Converts `model` to each format × precision and validates every artifact.

    Args:
        model: a `keras.Model`, a `.keras`/`.h5` path, a run folder, or a training `Run`.
            A run folder (or `Run`) brings its data: its training split calibrates and its
            test split validates unless `calibration`/`data` are given, and artifacts go to
            its `artifacts/` folder unless `out` is given.
        formats: format names (default: the recipe's formats, else tflite and onnx; pairs
            that do not exist are then skipped, while explicitly named ones are an error).
        precisions: precision names (default: the recipe's precision, else fp32).
        calibration: representative inputs for calibrated precisions (int8, int16x8): a
            `.npz` path, an image folder, {input: array}, an array or a `tf.data.Dataset`.
        data: labelled data for parity and accuracy (same forms; labels under `y`, or
            `y_<output>` per output). Without it, a held-out part of the calibration inputs
            validates; generated inputs are the last resort (flagged in the manifest).
        out: output folder (default: the run's `artifacts/`, else `artifacts`). Existing
            artifacts are not overwritten unless `force`.
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
        safe_mode, custom_objects, architecture: how a model file is loaded (see
            `model_io.load_model`); a run folder adds the custom objects it recorded.
        input_lengths: {input name: sequence length} for inputs of free length, where a
            conversion needs a fixed one (recurrent layers unrolled for TFLite int8/int16x8;
            default: the calibration data's length).
        accuracy_budget, min_cosine: the bound of precision "auto" (accuracy-aware mixed
            precision, `edgekeras.mixed_precision`): start from full int8 and keep the layers
            that cost the most in float until the artifact loses at most `accuracy_budget`
            accuracy points on the labelled `data` (or a run's test split), and/or keeps a
            cosine of at least `min_cosine` to the Keras model on every output (no labels
            needed). When no mix meets it, the best one is written and `ValidationFailed` raised.
        revert_to: what precision "auto" raises those layers to: "int16x8" (16-bit activations,
            8-bit weights; TFLite only, through ai-edge-quantizer) or "float32" (default: the
            format's, see `edgekeras.mixed_precision`).

    Returns:
        The list of `Artifact`s, in (format, precision) order. Raises `ValidationFailed`
        (after writing everything) if any artifact fails validation. Bad input raises
        `InputError` before anything is written; a conversion that fails removes the
        artifacts this call already wrote (and the output folder, if it made it).
    """
    plan = plan_conversion(
        formats=formats,
        precisions=precisions,
        recipe=recipe,
        target=target,
        int8_io=int8_io,
        fixed_batch=fixed_batch,
        opset=opset,
        allow_select_ops=allow_select_ops,
        calibration_samples=calibration_samples,
        validate=validate,
        input_lengths=input_lengths,
        accuracy_budget=accuracy_budget,
        min_cosine=min_cosine,
        revert_to=revert_to,
    )
    quiet_tensorflow()
    isolated = _isolated_file(model, plan, calibration, data)
    if isolated is not None:  # planned in one child, each artifact converted in another
        file = ModelFile(isolated, safe_mode, tuple(custom_objects or ()), architecture)
        inputs, paths = run_in_child(_prepare_in_child, plan, file, calibration, data, out, name, force)
        return execute(plan, file, inputs, paths, force)
    source = open_model(model, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture)
    release_memory()  # what reading the file left in the allocator (VGG16's .keras: 0.5 GB) goes back
    inputs, paths = _prepare(plan, source, calibration, data, out, name, force)
    return execute(plan, source.keras_model, inputs, paths, force)


def _isolated_file(model: ModelLike, plan: ConversionPlan, *data: Any) -> Path | None:
    """The model file or run folder to convert in child processes, or None to convert here: a
    live model, one artifact, a file under `ISOLATE_FROM_BYTES`, or data only this process holds
    (a `tf.data.Dataset`, a generator)."""
    if not isinstance(model, (str, Path)) or len(plan.jobs) < 2 or not all(map(_sendable, data)):
        return None
    try:
        pickle.dumps(plan)  # a target or recipe object of the caller's own making may not pickle
    except Exception:
        return None
    path = Path(model)
    file = RunFolder(path).model if RunFolder.is_run_folder(path) else path
    size = sum(f.stat().st_size for f in file.rglob("*") if f.is_file()) if file.is_dir() else _size(file)
    return path if size >= ISOLATE_FROM_BYTES else None


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0  # a missing file is load_model's error to name


def _sendable(data: Any) -> bool:
    """Whether `data` pickles as it is to a child: nothing, a path, arrays or {name: array}."""
    values = data.values() if isinstance(data, dict) else [data]
    return all(v is None or isinstance(v, (str, Path, np.ndarray)) for v in values)


def _prepare(
    plan: ConversionPlan,
    source: ModelSource,
    calibration: DataLike | None,
    data: DataLike | None,
    out: PathLike | None,
    name: str | None,
    force: bool,
) -> tuple[ConversionInputs, list[Path]]:
    """(inputs, artifact paths), every check made that can stop the conversion before work."""
    check_quantization_aware(source.keras_model.model, plan.precisions)
    inputs = conversion_inputs(plan, source, calibration, data)
    if out is None:
        out = source.run.artifacts if source.run is not None else Path("artifacts")
    stem = name or source.name or getattr(source.keras_model.model, "name", None) or "model"
    paths = plan.paths(out, stem)
    for path in paths:
        check_writable(path, force)
        check_writable(path.with_suffix(".json"), force)
    check_resources(plan, source.keras_model, paths, stem)
    return inputs, list(paths)


def _prepare_in_child(
    plan: ConversionPlan,
    file: ModelFile,
    calibration: DataLike | None,
    data: DataLike | None,
    out: PathLike | None,
    name: str | None,
    force: bool,
) -> tuple[ConversionInputs, list[Path]]:
    """`_prepare` in a child process, so that this one never holds TensorFlow or the model."""
    quiet_tensorflow()
    source = open_model(file.path, file.safe_mode, file.custom_objects, file.architecture)
    release_memory()
    return _prepare(plan, source, calibration, data, out, name, force)


def check_resources(plan: ConversionPlan, keras_model: KerasModel, paths: Sequence[Path], stem: str) -> None:
    """Stops before any work when an artifact cannot be written here: a TFLite artifact beyond the
    flatbuffer limit, more memory than is available, or a destination without room."""
    weights = weight_bytes(keras_model.model)
    for job in plan.jobs:
        check_tflite_size(job.format, job.precision, weights)
    check_memory([estimate(job.format, job.precision, weights, job.recipe.quantizer) for job in plan.jobs], stem)
    sizes = [(path, artifact_bytes(job.format, job.precision, weights)) for job, path in zip(plan.jobs, paths)]
    check_disk(sizes, scratch=2 * weights)  # the fp32 ONNX graph and SavedModel in the workdir


def convert_auto(
    model: ModelLike,
    format: str = "tflite",
    accuracy_budget: float | None = None,
    min_cosine: float | None = None,
    data: DataLike | None = None,
    calibration: DataLike | None = None,
    out: PathLike | None = None,
    revert_to: str | None = None,
    **options: Any,
) -> Artifact:
    """The int8 `format` artifact of `model` with the layers the budget needs raised to
    `revert_to` ("int16x8", TFLite only, or "float32"; default: the format's).

    `accuracy_budget` is in accuracy points on the labelled `data` (or a run folder's test
    split); `min_cosine` bounds every output's cosine to the Keras model (no labels needed);
    give one or both. `options` are `convert`'s (`recipe` for the int8 base, `force`, `name`,
    ...). The artifact's manifest records the mix (`mixed_precision`). When no mix meets the
    budget the best one is written and `ValidationFailed` raised (its `artifacts` hold it).
    """
    artifacts = convert(
        model,
        formats=[format],
        precisions=["auto"],
        accuracy_budget=accuracy_budget,
        min_cosine=min_cosine,
        data=data,
        calibration=calibration,
        out=out,
        revert_to=revert_to,
        **options,
    )
    return artifacts[0]


def execute(
    plan: ConversionPlan,
    keras_model: KerasModel | ModelFile,
    inputs: ConversionInputs,
    paths: Sequence[Path],
    force: bool = False,
) -> list[Artifact]:
    """Writes, records and validates every artifact of `plan`, in this process for a loaded
    model, one child process per artifact for a `ModelFile`; then checks the target."""
    out = Path(paths[0]).parent
    made_out = not out.exists()
    context = None if isinstance(keras_model, ModelFile) else _context(plan, keras_model, inputs)
    written: list[Path] = []
    try:
        artifacts: list[Artifact] = []
        errors: list[ParityError] = []
        versions = tool_versions()
        for job, path in zip(plan.jobs, paths):
            if context is None or isinstance(keras_model, ModelFile):
                done = run_in_child(_convert_in_child, plan, job, path, keras_model, inputs, versions, force)
                written += done[0]
                errors += done[1]
                artifacts.append(Artifact(path))
                continue
            artifacts.append(_convert(plan, job, path, context, keras_model, inputs, versions, force, written, errors))
            release_memory()  # the next artifact starts from what the model alone holds
    except BaseException:  # no half-finished set after bad input, a converter failure or Ctrl-C
        for path in written:
            path.unlink(missing_ok=True)
        if made_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        if context is not None:
            context.close()
    checked = [(a, check_artifact(a, plan.target)) for a in artifacts] if plan.target is not None else []
    if errors:
        raise ValidationFailed(artifacts, errors, _advice(artifacts, errors))
    if checked:
        raise_violations(plan.target, checked, artifacts)
    return artifacts


def _context(plan: ConversionPlan, keras_model: KerasModel, inputs: ConversionInputs) -> ExportContext:
    return ExportContext(
        keras_model,
        calibration=inputs.calibration,
        validation=inputs.validation,
        validation_source=inputs.validation_source,
        opset=plan.opset,
        allow_select_ops=plan.allow_select_ops,
        fixed_batch=plan.fixed_batch,
        input_lengths=plan.input_lengths,
    )


def _convert(
    plan: ConversionPlan,
    job: ConversionJob,
    path: Path,
    context: ExportContext,
    keras_model: KerasModel,
    inputs: ConversionInputs,
    versions: dict[str, str],
    force: bool,
    written: list[Path],
    errors: list[ParityError],
) -> Artifact:
    """One artifact written, recorded and (unless the plan says not) validated."""
    artifact = write_artifact(job, path, context, keras_model, versions, force, written)
    if plan.validate:
        _validate_into(artifact, keras_model, inputs, errors)
    return artifact


def _convert_in_child(
    plan: ConversionPlan,
    job: ConversionJob,
    path: Path,
    file: ModelFile,
    inputs: ConversionInputs,
    versions: dict[str, str],
    force: bool,
) -> tuple[list[Path], list[ParityError]]:
    """`_convert` in a child process (`child_process.run_in_child`): (files it wrote, parity errors)."""
    quiet_tensorflow()
    keras_model = file.load()
    release_memory()
    context = _context(plan, keras_model, inputs)
    written: list[Path] = []
    errors: list[ParityError] = []
    try:
        _convert(plan, job, path, context, keras_model, inputs, versions, force, written, errors)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    finally:
        context.close()
    return written, errors


def write_artifact(
    job: ConversionJob,
    path: Path,
    context: ExportContext,
    keras_model: KerasModel,
    versions: dict[str, str],
    force: bool,
    written: list[Path],
) -> Artifact:
    """Exports one artifact of a plan atomically and writes its manifest; the files it created
    are added to `written` (so a caller can remove them when a later step fails). `context`
    is shared by every artifact of one model: its SavedModel and fp32 graphs are built once."""
    log.info(f"Converting {job.format} {job.precision} -> {path}")
    existed = path.exists(), path.with_suffix(".json").exists()
    replaced = _recorded_companions(path) if force else []
    with atomic_file_set(path, force=force) as tmp:
        notes = job.exporter.build(context, tmp, job.recipe) or {}
        companions = sorted(path.parent / p.name for p in tmp.parent.iterdir() if p.name != path.name)
    for stale in set(replaced) - set(companions):  # e.g. the .onnx.data of a model that shrank below 2 GB
        stale.unlink(missing_ok=True)
    written += [p for p, e in zip((path, path.with_suffix(".json")), existed) if not e] + companions
    precision = get_precision(job.precision)
    quantized = precision.default_recipe is not None
    warnings = notes.pop("warnings", [])
    fields = {
        "format": job.format,
        "precision": job.precision,
        "description": job.exporter.description,
        "artifact_sha256": sha256_file(path),
        "size_bytes": path.stat().st_size + sum(p.stat().st_size for p in companions),
        "gzip_size_bytes": gzip_size(path) + sum(gzip_size(p) for p in companions),
        **({"external_data": [external_entry(p) for p in companions]} if companions else {}),
        "weight_stats": weight_report(path, job.format).to_dict(),
        "source_model": str(keras_model.path) if keras_model.path else None,
        "source_sha256": keras_model.sha256,
        "inputs": [s.to_dict() for s in keras_model.inputs],
        "outputs": [s.to_dict() for s in keras_model.outputs],
        "calibration_samples": context.calibration_count(job.recipe.samples) if precision.needs_calibration else None,
        "recipe": job.recipe.name if quantized else None,
        "quantization": job.recipe.to_dict() if quantized else None,
        "tolerance_overrides": dict(job.recipe.tolerance),
        **notes,
        "warnings": warnings,
        "runtime": job.exporter.runtime,
        "tool_versions": versions,
    }
    artifact = Artifact(path, Manifest.create(path, fields, force=force))
    for warning in warnings:
        log.warning(warning)
    return artifact


def _recorded_companions(path: Path) -> list[Path]:
    """The files beside an artifact being replaced that its manifest lists (ONNX external data)."""
    try:
        return Artifact(path).external_files if path.exists() else []
    except InputError:  # an unreadable manifest: --force replaces it; it names no file to remove
        return []


def _validate_into(
    artifact: Artifact, keras_model: KerasModel, inputs: ConversionInputs, errors: list[ParityError]
) -> None:
    try:
        validate_artifact(artifact, keras_model, data=inputs.validation, source=inputs.validation_source)
    except ParityError as e:
        errors.append(e)
    except CannotValidate as e:  # select ops were asked for; say so instead of passing or failing
        artifact.manifest.record_validation_skipped(str(e))
        log.warning(f"{artifact.path.name}: {e}")


def _advice(artifacts: Sequence[Artifact], errors: Sequence[ParityError]) -> list[str]:
    """One 'what to try' line per precision that failed (from `precisions.PRECISIONS`)."""
    failed = {str(getattr(e, "artifact", "")) for e in errors}
    precisions = dict.fromkeys(a.precision for a in artifacts if str(a.path) in failed)
    return [f"{p}: {PRECISIONS[p].if_failed}" for p in precisions if p in PRECISIONS and PRECISIONS[p].if_failed]


def tool_versions() -> dict[str, str]:
    """{distribution: version} of the tools every manifest records (`TOOLS`)."""
    versions = {}
    for dist in TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
