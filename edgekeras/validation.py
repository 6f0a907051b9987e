"""Parity of an artifact against its Keras model, and accuracy on labelled data.

Every output is compared by name; every failing (output, metric) is collected and raised
once as a `ParityError` (after the manifest records the results), so a user sees the whole
picture instead of the first mismatch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgekeras.errors import CannotValidate, InputError, OutputMismatch, ParityError

GENERATED_SAMPLES = 64


@dataclass
class OutputParity:
    output: str
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    reference_range: float
    top1_agreement: float | None = None


@dataclass
class ValidationResult:
    """What `validate` measured, the tolerance it applied, and whether it passed."""

    artifact: str
    precision: str
    samples: int
    data: str  # "labelled data", "calibration data", "generated inputs"
    outputs: list = field(default_factory=list)
    metrics_reference: dict = field(default_factory=dict)
    metrics_artifact: dict = field(default_factory=dict)
    accuracy_delta: float | None = None  # percentage points, artifact - reference
    tolerance: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def passed(self):
        return not self.failures

    @property
    def max_abs_error(self):
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def accuracy(self):
        return _accuracy_value(self.metrics_artifact)

    def to_dict(self):
        d = asdict(self)
        d["failures"] = [str(f) for f in self.failures]
        d["passed"] = self.passed
        d["max_abs_error"] = self.max_abs_error
        d["accuracy"] = self.accuracy
        return d


def compare(output, reference, actual, classifier=None):
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
    if classifier and reference.ndim == 2 and reference.shape[1] > 1:
        parity.top1_agreement = float(np.mean(ref.argmax(1) == act.argmax(1)))
    return parity


# Losses whose outputs are one class score per column: top-1 agreement means something there.
# Binary crossentropy (multi-label) and regression losses are left out.
CLASSIFICATION_LOSSES = {
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
}


def _loss_name(loss):
    from edgekeras.recipe.keras_objects import snake_case

    if isinstance(loss, str):
        return snake_case(loss) if loss[:1].isupper() else loss
    if isinstance(loss, dict) and len(loss) == 1:  # {ClassName: config}
        return snake_case(next(iter(loss)))
    fn = getattr(loss, "fn", None)  # Keras' own Loss classes wrap a function
    if fn is not None:
        return getattr(fn, "__name__", None)
    if hasattr(loss, "get_config"):  # a Loss subclass of the user's
        return snake_case(type(loss).__name__)
    return getattr(loss, "__name__", None)


def _losses_by_output(model, names):
    """{output name: loss name or None} from the model's compiled loss."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return {}
    if isinstance(loss, dict) and not (len(loss) == 1 and next(iter(loss)) not in names):
        return {name: _loss_name(loss[name]) if loss.get(name) is not None else None for name in names}
    if not isinstance(loss, str) and hasattr(loss, "__iter__"):  # a list (Keras may wrap it)
        return {name: _loss_name(item) if item is not None else None for name, item in zip(names, loss)}
    return dict.fromkeys(names, _loss_name(loss))


def _looks_like_probabilities(values):
    rows = values.reshape(len(values), -1).astype(np.float64)
    return bool(rows.size and rows.min() >= 0 and np.allclose(rows.sum(1), 1.0, atol=1e-3))


def classifier_outputs(model, reference_outputs):
    """{output name: whether top-1 agreement applies}: a classification loss says so; without a
    compiled loss (or with a custom one), softmax-like rows (non-negative, summing to 1) do."""
    names = list(reference_outputs)
    losses = _losses_by_output(model, names)
    kinds = {}
    for name, values in reference_outputs.items():
        if values.ndim != 2 or values.shape[1] < 2:
            kinds[name] = False
            continue
        loss = losses.get(name)
        known = loss in CLASSIFICATION_LOSSES or _known_loss(loss)
        kinds[name] = loss in CLASSIFICATION_LOSSES if known else _looks_like_probabilities(values)
    return kinds


def _known_loss(name):
    """Whether `name` is one of Keras' own losses (a custom loss says nothing about its output)."""
    if not name:
        return False
    import keras

    from edgekeras.recipe.keras_objects import snake_case

    return hasattr(keras.losses, name) or any(snake_case(n) == name for n in dir(keras.losses) if n[:1].isupper())


def _check(parity, tol):
    failures = []
    if tol.max_abs_error is not None:
        limit = tol.max_abs_error * max(1.0, parity.reference_range)
        if parity.max_abs_error > limit:
            failures.append(OutputMismatch(parity.output, "max_abs_error", parity.max_abs_error, limit, "<="))
    if tol.min_cosine is not None and parity.cosine < tol.min_cosine:
        failures.append(OutputMismatch(parity.output, "cosine", parity.cosine, tol.min_cosine, ">="))
    if (
        tol.min_top1_agreement is not None
        and parity.top1_agreement is not None
        and parity.top1_agreement < tol.min_top1_agreement
    ):
        failures.append(
            OutputMismatch(parity.output, "top1_agreement", parity.top1_agreement, tol.min_top1_agreement, ">=")
        )
    return failures


def generated_inputs(specs, n=GENERATED_SAMPLES, seed=0):
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


def _fixed_batch(session):
    """The artifact's fixed batch size (e.g. 1 for recurrent TFLite models), or None."""
    dims = {s.shape[0] for s in session.inputs if s.shape}
    return next(iter(dims)) if len(dims) == 1 and None not in dims else None


def _run_batched(session, feeds, batch=64):
    """Runs `feeds` in slices; a fixed-batch artifact gets slices of exactly its batch size
    (the last one padded by repeating its final sample, the padding dropped from the outputs)."""
    n = len(next(iter(feeds.values())))
    fixed = _fixed_batch(session)
    batch = fixed or batch
    parts = []
    for start in range(0, n, batch):
        chunk = {k: v[start : start + batch] for k, v in feeds.items()}
        size = len(next(iter(chunk.values())))
        if fixed and size < fixed:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], fixed - size, axis=0)]) for k, v in chunk.items()}
        parts.append({k: v[:size] for k, v in session.run(chunk).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _compiled_metrics(model, feeds, y, outputs):
    """The model's compiled metrics (and loss) on predictions `outputs`."""
    if getattr(model, "compiled_loss", None) is None and not getattr(model, "_compile_config", None):
        return {}
    from edgekeras.model_io import output_names

    names = output_names(model)
    y_pred = outputs[names[0]] if len(names) == 1 else {n: outputs[n] for n in names}
    for m in model.metrics:
        m.reset_state()
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    try:
        result = model.compute_metrics(x, y, y_pred)
    except Exception as e:  # labels that do not fit the model's loss/metrics
        raise InputError(
            f"Expected labels 'y' that fit the model's loss and metrics. Received: labels of shape "
            f"{np.shape(y)}, which Keras rejected: {str(e).strip().splitlines()[0]}"
        ) from None
    return {k: float(np.asarray(v)) for k, v in result.items()}


def _accuracy_value(metrics):
    for key, value in metrics.items():
        if "acc" in key:
            return value
    return None


def validate(artifact, reference, data=None, tolerance=None, runtime=None, raise_on_failure=True, save=True):
    """Checks `artifact` against the Keras `reference` on every output.

    `data` is labelled data (a `Split`, a `.npz` path, or {input: array}); without it the
    inputs are generated from the signature and no accuracy is measured. The result is
    written into the artifact's manifest; a failure raises `ParityError` listing every
    failing output and metric (after the manifest is saved).
    """
    from edgekeras.artifact import as_artifact
    from edgekeras.data.bundle import Split
    from edgekeras.data.files import load_data_file
    from edgekeras.model_io import predict
    from edgekeras.precisions import get_precision
    from edgekeras.sources import as_keras_model

    artifact = as_artifact(artifact)
    keras_model = as_keras_model(reference)
    session = _open(artifact, runtime)  # a corrupt file fails here, clearly
    precision = artifact.precision or _detect_precision(artifact, session)
    tol = get_precision(precision).tolerance
    tol = tol.merged(artifact.manifest.get("tolerance_overrides", {}))
    if tolerance:
        tol = tol.merged(tolerance)

    specs = keras_model.inputs
    _check_signatures(artifact, specs, session)

    if isinstance(data, (str,)) or hasattr(data, "suffix"):
        data = load_data_file(data)
    if isinstance(data, dict):
        data = Split({k: v for k, v in data.items() if k != "y"}, data.get("y"))
    if isinstance(data, Split):
        feeds, labels, source = (
            data.feeds(specs, what="validation data"),
            data.y,
            "labelled data" if data.y is not None else "given inputs",
        )
    elif data is None:
        feeds, labels, source = generated_inputs(specs), None, "generated inputs"
    else:
        raise InputError(f"Expected data as a .npz path, a Split or {{input: array}}. Received: {type(data).__name__}.")

    ref_out = predict(keras_model.model, feeds)
    art_out = _run_batched(session, feeds)
    missing = sorted(set(ref_out) - set(art_out))
    if missing:
        raise InputError(
            f"Expected artifact outputs named like the model's {sorted(ref_out)}. Received: "
            f"{sorted(art_out)}. Was '{artifact.path}' exported from this model?"
        )
    result = ValidationResult(
        str(artifact.path), precision, len(next(iter(feeds.values()))), source, tolerance=tol.to_dict()
    )
    classifiers = classifier_outputs(keras_model.model, ref_out)
    for name in ref_out:
        parity = compare(name, ref_out[name], art_out[name], classifiers[name])
        result.outputs.append(parity)
        result.failures.extend(_check(parity, tol))
    if labels is not None:
        result.metrics_reference = _compiled_metrics(keras_model.model, feeds, labels, ref_out)
        result.metrics_artifact = _compiled_metrics(keras_model.model, feeds, labels, art_out)
        ref_acc, art_acc = _accuracy_value(result.metrics_reference), _accuracy_value(result.metrics_artifact)
        if ref_acc is not None and art_acc is not None:
            result.accuracy_delta = 100.0 * (art_acc - ref_acc)
            if tol.max_accuracy_drop is not None and -result.accuracy_delta > tol.max_accuracy_drop:
                result.failures.append(
                    OutputMismatch("(all)", "accuracy_drop_points", -result.accuracy_delta, tol.max_accuracy_drop, "<=")
                )
    if save:
        artifact.manifest.record_validation(result.to_dict())
    if raise_on_failure and result.failures:
        raise ParityError(str(artifact.path), result.failures)
    return result


def _open(artifact, runtime):
    from edgekeras.runtimes import open_session

    flex = artifact.manifest.get("select_ops")
    if flex:
        raise CannotValidate(
            f"cannot validate '{artifact.path}': it needs TensorFlow select ops ({', '.join(flex)}), "
            "which ai-edge-litert cannot run. Validate it where the Flex delegate is linked in."
        )
    # Options the exporter found the artifact needs (e.g. XNNPACK off), for its own runtime.
    options = artifact.manifest.get("runtime_options") or {}
    if runtime not in (None, artifact.manifest.get("runtime")):
        options = {}
    try:
        return open_session(artifact.path, runtime=runtime, **options)
    except InputError as e:
        if "Select TensorFlow op" in str(e):
            raise CannotValidate(
                f"cannot validate '{artifact.path}': it needs TensorFlow select ops, which ai-edge-litert cannot run."
            ) from None
        raise


def _check_signatures(artifact, specs, session):
    expected = sorted(s.name for s in specs)
    received = sorted(s.name for s in session.inputs)
    if expected != received:
        raise InputError(
            f"Expected an artifact with the reference model's inputs {expected}. Received: "
            f"'{artifact.path}' with inputs {received}. Is --reference the model it was exported from?"
        )


def _detect_precision(artifact, session):
    """Precision of an artifact without a manifest, read from the file by its format's reader
    (`session` is not needed: the readers look at the file, not the runtime)."""
    from edgekeras.readers import onnx, tflite  # local: only this hunk of validation.py changes here

    reader = {"onnx": onnx, "tflite": tflite}[artifact.format]
    return reader.detect_precision(reader.read(artifact.path))
