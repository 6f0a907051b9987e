"""Parity of an artifact against its Keras model, and each output's quality on labelled data.

Every output is compared by name and judged by the checks that fit its kind (`heads`):
classifiers by top-1 agreement and accuracy, regressors by their error relative to the
outputs' spread and by how much their own error metric (MAE, RMSE, ...) degrades; max abs
error and cosine apply to every output. Every failing (output, check) is collected and
raised once as a `ParityError` (after the manifest records the results), so a user sees
the whole picture instead of the first mismatch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.artifact import as_artifact
from edgekeras.data.files import load_data_file
from edgekeras.data.labels import check_labels
from edgekeras.devices.edgekeras_runner import fixed_batch, run_rows
from edgekeras.errors import CannotValidate, InputError, OutputMismatch, ParityError, expected_one_of
from edgekeras.formats import get_format
from edgekeras.head_metrics import (
    compiled_metrics,
    computed_metric,
    head_metrics,
    quality_metric,
    stand_in_labels,
)
from edgekeras.heads import keras_heads, output_heads
from edgekeras.keras_model import output_names, predict
from edgekeras.memory_estimate import batch_for
from edgekeras.precisions import get_precision
from edgekeras.remote import as_device, outputs_on_device
from edgekeras.runtimes import open_session
from edgekeras.sources import open_model

if TYPE_CHECKING:
    import keras

    from edgekeras.artifact import Artifact
    from edgekeras.data.coerce import DataLike
    from edgekeras.data.labels import Labelled
    from edgekeras.heads import Head
    from edgekeras.hints import Arrays, JSONDict, PathLike
    from edgekeras.keras_model import KerasModel
    from edgekeras.precisions import Tolerance
    from edgekeras.remote import SSHDevice
    from edgekeras.runtimes.session import Session
    from edgekeras.signature import TensorSpec
    from edgekeras.sources import ModelLike

GENERATED_SAMPLES = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where validation inputs came from; `weak` verdicts say little about real inputs."""

    key: str  # the manifest's `validation.data_source`
    text: str  # the manifest's `validation.data`, and what reports show
    weak: bool = False


DATA_SOURCES = {
    s.key: s
    for s in [
        DataSource("labelled", "labelled data"),
        DataSource("inputs", "given inputs"),
        # convert without --data: inputs the user gave for calibration, minus those it calibrated on
        DataSource("calibration_holdout", "held-out calibration inputs"),
        # the last resort: uniform [0, 1) values, which may lie far outside what a quantized
        # artifact was calibrated for, so its verdict (pass or fail) is weak
        DataSource("generated", "generated inputs", weak=True),
    ]
}


@dataclass(frozen=True)
class Check:
    """One gate: the `Tolerance` field holding its limit and which side passes."""

    tolerance: str
    comparison: str  # "<=" or ">="
    label: str  # the failure's metric name; {metric} is the output's quality metric
    scaled: bool = False  # the limit is multiplied by max(1, the reference output's range)
    needs_labels: bool = False


# The checks `heads.KINDS` picks from, by name (each output's `checks` in the manifest).
CHECKS = {
    "max_abs_error": Check("max_abs_error", "<=", "max_abs_error", scaled=True),
    "cosine": Check("min_cosine", ">=", "cosine"),
    "top1_agreement": Check("min_top1_agreement", ">=", "top1_agreement"),
    "relative_error": Check("max_relative_error", "<=", "relative_error"),
    "accuracy_drop": Check("max_accuracy_drop", "<=", "accuracy_drop_points", needs_labels=True),
    "metric_ratio": Check("max_metric_ratio", "<=", "{metric}_ratio", needs_labels=True),
}


@dataclass
class OutputParity:
    """What was measured on one output, how it was judged, and against which limits."""

    output: str
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    reference_range: float
    top1_agreement: float | None = None
    kind: str | None = None  # heads.KINDS: classifier, multi_label, regressor, other
    kind_basis: str | None = None  # what decided the kind: "loss 'mse'", "activation 'softmax'", ...
    relative_error: float | None = None  # regressors: mean abs error / reference spread
    labels: str | None = None  # the label array it was judged with ('y', 'y_cls'); None: unlabelled
    metric: str | None = None  # its quality metric: accuracy, mae, root_mean_squared_error, ...
    metric_source: str | None = None  # "compiled" (the model's) or "computed" (none compiled)
    metric_reference: float | None = None  # the Keras model's value
    metric_artifact: float | None = None  # the artifact's value
    accuracy_delta: float | None = None  # classifiers: percentage points, artifact - Keras
    metric_ratio: float | None = None  # regressors: artifact / Keras (> 1: worse)
    # [{check, value, limit, comparison, passed} | {check, skipped}]
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ValidationResult:
    """What `validate` measured, the tolerance it applied, and whether it passed."""

    artifact: str
    precision: str
    samples: int
    data: str  # DATA_SOURCES' text: "labelled data", "given inputs", ...
    outputs: list[OutputParity] = field(default_factory=list)
    metrics_reference: dict[str, Any] = field(default_factory=dict)  # Keras' loss and metrics, as `evaluate` gives them
    metrics_artifact: dict[str, Any] = field(default_factory=dict)
    accuracy_delta: float | None = None  # percentage points, artifact - reference (first classifier output)
    tolerance: dict[str, float] = field(default_factory=dict)
    failures: list[OutputMismatch] = field(default_factory=list)
    data_source: str = "generated"  # DATA_SOURCES' key
    measured_on: str = "local"  # where the artifact computed its outputs: "local" or the device's ssh:// URL
    weak: bool = False  # generated inputs for a calibrated precision: the verdict says little
    unlabelled: list[str] = field(default_factory=list)  # outputs without labels (with labelled data)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def accuracy(self) -> float | None:
        """The artifact's accuracy on the first output that has one (None without labels)."""
        head = _accuracy_head(self.outputs)
        return None if head is None else head.metric_artifact

    def to_dict(self) -> JSONDict:
        d = asdict(self)
        d["failures"] = [str(f) for f in self.failures]
        d["passed"] = self.passed
        d["max_abs_error"] = self.max_abs_error
        d["accuracy"] = self.accuracy
        return d


def _accuracy_head(outputs: Iterable[OutputParity]) -> OutputParity | None:
    return next((o for o in outputs if o.accuracy_delta is not None), None)


def compare(output: str, reference: np.ndarray, actual: np.ndarray, classifier: bool | None = None) -> OutputParity:
    """Parity numbers for one output; top-1 agreement when it is a classifier's (`classifier`
    None: any 2-D output with several columns)."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    act = actual.astype(np.float64).reshape(len(actual), -1)
    if ref.shape[1] == 1:
        # One value per sample: a per-sample cosine only says whether the signs agree, so the
        # batch is compared as one vector instead.
        ref, act = ref.T, act.T
    diff = np.abs(ref - act)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(act, axis=1)
    dots = np.sum(ref * act, axis=1)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 1.0)
    parity = OutputParity(
        output,
        float(diff.max(initial=0.0)),
        float(diff.mean()) if diff.size else 0.0,
        float(cos.mean()),
        float(np.ptp(ref)) if ref.size else 0.0,
    )
    if classifier is None:
        classifier = reference.ndim == 2 and reference.shape[1] > 1
    if classifier and reference.ndim >= 2 and reference.shape[-1] > 1:
        parity.top1_agreement = float(np.mean(reference.argmax(-1) == actual.argmax(-1)))
    return parity


def relative_error(reference: np.ndarray, actual: np.ndarray) -> float:
    """Mean |actual - reference| over the reference's spread (the mean over columns of each
    column's standard deviation across samples). A constant reference (or a single sample)
    has no spread: the error is then taken relative to its mean magnitude (1 if that is 0)."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    act = actual.astype(np.float64).reshape(len(actual), -1)
    spread = float(ref.std(axis=0).mean()) if len(ref) > 1 else 0.0
    if spread <= 1e-12 * max(1.0, float(np.abs(ref).max(initial=0.0))):
        spread = float(np.abs(ref).mean()) or 1.0
    return float(np.abs(act - ref).mean()) / spread


def classifier_outputs(model: keras.Model, reference_outputs: Mapping[str, np.ndarray]) -> dict[str, bool]:
    """{output name: whether top-1 agreement applies} (see `heads.output_heads`)."""
    shapes = {k: tuple(np.shape(v)[1:]) for k, v in reference_outputs.items()}
    heads = output_heads(model, list(reference_outputs), shapes, reference_outputs)
    return {name: head.kind == "classifier" for name, head in heads.items()}


def generated_inputs(specs: Iterable[TensorSpec], n: int = GENERATED_SAMPLES, seed: int = 0) -> Arrays:
    """Inputs drawn from the signature when no data is given (uniform [0, 1) floats)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = (n, *[d or 1 for d in spec.shape[1:]])
        if np.issubdtype(np.dtype(spec.dtype), np.integer):
            feeds[spec.name] = rng.integers(0, 10, size=shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.random(shape).astype(spec.dtype)
    return feeds


def run_batched(session: Session, feeds: Mapping[str, np.ndarray], batch: int = 64) -> Arrays:
    """Runs `feeds` in slices of `batch` rows, the on-device runner's way (`run_rows`: a
    fixed-batch artifact gets slices of exactly its batch size)."""
    return run_rows(session.run, dict(feeds), fixed_batch(session.backend.inputs), batch)


def _artifact_outputs(
    artifact: Artifact, session: Session, feeds: Arrays, runtime: str | None, device: SSHDevice | None, batch: int = 64
) -> Arrays:
    """The artifact's outputs on every row of `feeds`: run here in `session` (slices of `batch`
    rows), or by the on-device runner on `device` (same runtime and options) and brought back.
    Both slice the rows the runner's way (`run_rows`)."""
    if device is None:
        return run_batched(session, feeds, batch)
    options = _runtime_options(artifact, runtime)
    return outputs_on_device(device, artifact.path, feeds, runtime=runtime, options=options)


def _judge(parity: OutputParity, check_names: Iterable[str], tol: Tolerance) -> list[OutputMismatch]:
    """Applies `check_names` (keys of CHECKS) to the measured `parity`; records each in
    `parity.checks` and returns the failures."""
    values = {
        "max_abs_error": parity.max_abs_error,
        "cosine": parity.cosine,
        "top1_agreement": parity.top1_agreement,
        "relative_error": parity.relative_error,
        "accuracy_drop": None if parity.accuracy_delta is None else -parity.accuracy_delta,
        "metric_ratio": parity.metric_ratio,
    }
    failures = []
    for name in check_names:
        check = CHECKS[name]
        value, limit = values[name], getattr(tol, check.tolerance)
        if value is None:
            reason = "no labels for this output" if check.needs_labels and not parity.labels else "not measured"
            parity.checks.append({"check": name, "skipped": reason})
            continue
        if limit is None:
            parity.checks.append({"check": name, "value": value, "skipped": f"no {check.tolerance} limit"})
            continue
        if check.scaled:
            limit = limit * max(1.0, parity.reference_range)
        passed = value <= limit if check.comparison == "<=" else value >= limit
        parity.checks.append(
            {"check": name, "value": value, "limit": limit, "comparison": check.comparison, "passed": bool(passed)}
        )
        if not passed:
            label = check.label.format(metric=parity.metric)
            failures.append(OutputMismatch(parity.output, label, value, limit, check.comparison))
    return failures


def _score(
    parity: OutputParity,
    head: Head,
    names: Sequence[str],
    labels: np.ndarray,
    ref_out: np.ndarray,
    art_out: np.ndarray,
    result: ValidationResult,
) -> None:
    """Fills the output's quality metric (the Keras model's and the artifact's, from the
    result's compiled metrics or computed on `labels`), and its accuracy delta or ratio."""
    own_ref = head_metrics(result.metrics_reference, head.output, names)
    own_art = head_metrics(result.metrics_artifact, head.output, names)
    picked = quality_metric(head, own_ref)
    if picked is None:
        return
    parity.metric, parity.metric_source = picked
    if parity.metric_source == "compiled":
        ref_value, art_value = own_ref.get(parity.metric), own_art.get(parity.metric)
    else:
        ref_value = computed_metric(parity.metric, labels, ref_out)
        art_value = computed_metric(parity.metric, labels, art_out)
    if not (isinstance(ref_value, float) and isinstance(art_value, float)):  # missing, or per class
        return
    parity.metric_reference, parity.metric_artifact = ref_value, art_value
    if head.quality == "accuracy":
        parity.accuracy_delta = 100.0 * (art_value - ref_value)
    elif ref_value > 0:  # a ratio to an exact fit (0) means nothing
        parity.metric_ratio = art_value / ref_value


def validation_inputs(
    data: DataLike | None, keras_model: KerasModel, source: str | None
) -> tuple[Arrays, Labelled | None, DataSource]:
    """(feeds, `Labelled` or None, DataSource) for `validate`'s `data` and `source`."""
    if source is not None and source not in DATA_SOURCES:
        raise expected_one_of("the validation data source", source, DATA_SOURCES)
    specs = keras_model.inputs
    if data is None:
        if source not in (None, "generated"):
            raise InputError(f"Expected data for validation data source '{source}'. Received: none.")
        return generated_inputs(specs), None, DATA_SOURCES["generated"]
    if source == "generated":
        raise InputError("Expected no data with validation data source 'generated'. Received: data.")
    where = "validation data"
    if isinstance(data, (str, Path)):
        where, data = f"validation data ('{data}')", load_data_file(data)
    labelled = check_labels(keras_model, data, what=where)
    feeds = labelled.split.feeds(specs, what=where)
    if labelled.labels:
        if source not in (None, "labelled"):
            raise InputError(
                f"Expected unlabelled inputs for validation data source '{source}'. Received: labels "
                f"({', '.join(labelled.names.values())})."
            )
        return feeds, labelled, DATA_SOURCES["labelled"]
    return feeds, None, DATA_SOURCES[source or "inputs"]


def validate(
    artifact: Artifact | PathLike,
    reference: ModelLike,
    data: DataLike | None = None,
    tolerance: Mapping[str, float] | None = None,
    runtime: str | None = None,
    raise_on_failure: bool = True,
    save: bool = True,
    source: str | None = None,
    device: str | SSHDevice | None = None,
    reference_outputs: Mapping[str, np.ndarray] | None = None,
) -> ValidationResult:
    """Checks `artifact` against the Keras `reference` on every output.

    `data` is a `Split`, a `.npz` path, {name: array}, (x, y) or a `tf.data.Dataset`; labels
    as `y` (single output) or `y_<output name>` per output (see `data.labels`), for some
    outputs or all. Labelled outputs are also judged on their quality metric (accuracy, or
    the ratio of their error metric). Without data the inputs are generated from the
    signature (a weak verdict for calibrated precisions, said on stderr). `source` names
    where unlabelled inputs came from (`DATA_SOURCES`: e.g. "calibration_holdout" for
    calibration inputs held out of calibration). `device` (an `ssh://user@host[:port]` URL or
    `SSHDevice`): the artifact computes its outputs there, through the on-device runner, and
    this host compares them; the result says where (`measured_on`). `reference_outputs`: the
    Keras model's outputs on `data`, when the caller already has them (`deploy` validates many
    artifacts against one model on one data set; each output by name).

    The result is written into the artifact's manifest; a failure raises `ParityError`
    listing every failing output and check (after the manifest is saved). Labels that do not
    fit the model's outputs raise `InputError` before anything runs.
    """
    artifact = as_artifact(artifact)
    model_source = open_model(reference)
    keras_model = model_source.keras_model
    bundle = model_source.data() if data is None else None
    if bundle is not None and bundle.test is not None:
        data = bundle.test  # a run folder (or training Run) validates on its test split
    session = _open(artifact, runtime)  # a corrupt file fails here, clearly
    precision = artifact.precision or _detect_precision(artifact, session)
    tol = get_precision(precision).tolerance
    tol = tol.merged(artifact.manifest.get("tolerance_overrides", {}))
    if tolerance:
        tol = tol.merged(tolerance)

    _check_signatures(artifact, keras_model.inputs, session)
    feeds, labelled, origin = validation_inputs(data, keras_model, source)
    weak = origin.weak and get_precision(precision).needs_calibration

    model = keras_model.model
    # Batches sized to the model: VGG16's activations at batch 64 alone would take 3 GB.
    ref_out = (
        dict(reference_outputs)
        if reference_outputs is not None
        else predict(model, feeds, batch_size=batch_for(model, 256))
    )
    remote = as_device(device)
    batch = batch_for(model, 64, artifact.manifest.get("largest_tensor_bytes"))
    art_out = _artifact_outputs(artifact, session, feeds, runtime, remote, batch=batch)
    missing = sorted(set(ref_out) - set(art_out))
    if missing:
        raise InputError(
            f"Expected artifact outputs named like the model's {sorted(ref_out)}. Received: "
            f"{sorted(art_out)}. Was '{artifact.path}' exported from this model?"
        )
    where = remote.url if remote is not None else "local"
    result = assess(
        keras_model, feeds, labelled, ref_out, art_out, tol, origin, str(artifact.path), precision, weak, where
    )
    if weak:
        log.warning(
            f"{artifact.path.name} ({precision}) was validated on generated inputs (uniform "
            "[0, 1)), not on data like its calibration data: its verdict says little about real inputs. "
            "Pass --data (labelled data, or inputs like the real ones)."
        )
    if save:
        artifact.manifest.record_validation(result.to_dict())
    if raise_on_failure and result.failures:
        raise ParityError(str(artifact.path), result.failures)
    return result


def assess(
    keras_model: KerasModel,
    feeds: Arrays,
    labelled: Labelled | None,
    ref_out: Arrays,
    art_out: Arrays,
    tol: Tolerance,
    origin: DataSource,
    artifact: str = "",
    precision: str = "",
    weak: bool = False,
    measured_on: str = "local",
) -> ValidationResult:
    """Judges an artifact's outputs `art_out` against the Keras model's `ref_out` on `feeds`
    (labels from `labelled`) with `tol`: the verdict of `validate`, without running anything.
    The accuracy-aware search (`mixed_precision`) judges each candidate mix with it.
    `measured_on`: where `art_out` was computed ("local", or the device's URL)."""
    model = keras_model.model
    result = ValidationResult(
        artifact,
        precision,
        len(next(iter(feeds.values()))),
        origin.text,
        tolerance=tol.to_dict(),
        data_source=origin.key,
        weak=weak,
        unlabelled=list(labelled.unlabelled) if labelled else [],
        measured_on=measured_on,
    )
    heads = keras_heads(keras_model, ref_out)
    labels = labelled.labels if labelled else {}
    names = output_names(model)
    if labels:
        stand_ins = stand_in_labels(heads, ref_out)
        result.metrics_reference = compiled_metrics(model, feeds, labels, ref_out, stand_ins)
        result.metrics_artifact = compiled_metrics(model, feeds, labels, art_out, stand_ins)
    for name in ref_out:
        head = heads[name]
        parity = compare(name, ref_out[name], art_out[name], head.kind == "classifier")
        parity.kind, parity.kind_basis = head.kind, head.basis
        if head.kind == "regressor":
            parity.relative_error = relative_error(ref_out[name], art_out[name])
        if labelled is not None and name in labels:
            parity.labels = labelled.names[name]
            _score(parity, head, names, labels[name], ref_out[name], art_out[name], result)
        result.outputs.append(parity)
        result.failures.extend(_judge(parity, head.checks, tol))
    head = _accuracy_head(result.outputs)
    result.accuracy_delta = None if head is None else head.accuracy_delta
    return result


def _open(artifact: Artifact, runtime: str | None) -> Session:
    artifact.check_external_data()
    flex = artifact.manifest.get("select_ops")
    if flex:
        raise CannotValidate(
            f"cannot validate '{artifact.path}': it needs TensorFlow select ops ({', '.join(flex)}), "
            "which ai-edge-litert cannot run. Validate it where the Flex delegate is linked in."
        )
    try:
        return open_session(artifact.path, runtime=runtime, **_runtime_options(artifact, runtime))
    except InputError as e:
        if "Select TensorFlow op" in str(e):
            raise CannotValidate(
                f"cannot validate '{artifact.path}': it needs TensorFlow select ops, which ai-edge-litert cannot run."
            ) from None
        raise


def _runtime_options(artifact: Artifact, runtime: str | None) -> dict[str, Any]:
    """Options the exporter found the artifact needs (e.g. XNNPACK off), for its own runtime."""
    if runtime not in (None, artifact.manifest.get("runtime")):
        return {}
    return dict(artifact.manifest.get("runtime_options") or {})


def _check_signatures(artifact: Artifact, specs: Sequence[TensorSpec], session: Session) -> None:
    expected = sorted(s.name for s in specs)
    received = sorted(s.name for s in session.inputs)
    if expected != received:
        raise InputError(
            f"Expected an artifact with the reference model's inputs {expected}. Received: "
            f"'{artifact.path}' with inputs {received}. Is --reference the model it was exported from?"
        )


def _detect_precision(artifact: Artifact, session: Session) -> str:
    """Precision of an artifact without a manifest, read from the file by its format's reader."""
    reader = get_format(artifact.format).load("reader")
    return reader.detect_precision(reader.read(artifact.path))
