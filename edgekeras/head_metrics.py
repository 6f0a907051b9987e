"""A Keras model's compiled loss and metrics on given predictions, as `evaluate` computes them,
and the one metric each output (head) is judged by.

`model.compute_metrics` alone reports the loss as 0.0: `evaluate`'s test step computes the
loss (`compute_loss`, regularization included) and feeds a tracker weighted by batch size
first. `compiled_metrics` repeats exactly those steps on predictions made elsewhere (an
artifact's), so the Keras model's and an artifact's numbers compare like for like.
"""

from __future__ import annotations

import numpy as np

from edgekeras.errors import InputError
from edgekeras.model_io import output_names

BATCH = 256  # `edgekeras evaluate`'s default batch size

# Metric names (as Keras reports them) a head's quality is read from, best first. A
# classifier's: higher is better; a regressor's: lower is better.
ACCURACY_METRICS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")
ERROR_METRICS = (
    "mae",
    "mean_absolute_error",
    "rmse",
    "root_mean_squared_error",
    "mse",
    "mean_squared_error",
    "mape",
    "mean_absolute_percentage_error",
    "msle",
    "mean_squared_logarithmic_error",
    "log_cosh",
    "logcosh",
)


def is_compiled(model):
    return bool(getattr(model, "compiled", False)) and getattr(model, "loss", None) is not None


def output_structure(model, by_name):
    """`by_name` ({output name: array}) in the structure the model returns: one array, a list
    in output order, or a dict (Keras matches labels to outputs through it)."""
    names = output_names(model)
    if len(names) == 1:
        return by_name[names[0]]
    if isinstance(getattr(model, "output", None), dict):
        return {n: by_name[n] for n in names}
    return [by_name[n] for n in names]


def stand_in_labels(heads, reference):
    """Labels for outputs without any: the Keras model's own predictions (a class index where
    the loss takes one). Keras computes a multi-output model's loss and metrics only with a
    label for every output; whatever the stand-ins give is dropped (see `compiled_metrics`)."""
    out = {}
    for name, values in reference.items():
        head = heads.get(name)
        out[name] = np.argmax(values, axis=-1) if head is not None and head.labels == "index" else values
    return out


def compiled_metrics(model, feeds, labels, predictions, stand_ins=None, batch_size=BATCH):
    """{name: value} of the model's compiled loss and metrics on `predictions`, the way
    `model.evaluate` reports them (`loss`, `accuracy`; `<output>_loss`, `<output>_mae`, ...
    for several outputs). {} for a model without a compiled loss.

    `labels` is {output name: array}; outputs missing from it take `stand_ins[name]` so that
    Keras can run, and their entries (and the total `loss`, which needs every output) are
    left out of the result.
    """
    if not is_compiled(model):
        return {}
    names = output_names(model)
    unlabelled = [n for n in names if n not in labels]
    full = {n: labels[n] if n in labels else stand_ins[n] for n in names}
    x_parts = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    n = len(next(iter(feeds.values())))
    tracker = next((m for m in model.metrics if m.name == "loss"), None)
    model.reset_metrics()
    result = {}
    try:
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            x = {k: v[part] for k, v in x_parts.items()} if isinstance(x_parts, dict) else x_parts[part]
            y = output_structure(model, {k: np.asarray(v)[part] for k, v in full.items()})
            y_pred = output_structure(model, {k: np.asarray(v)[part] for k, v in predictions.items()})
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            if tracker is not None and loss is not None:  # evaluate weighs each batch by its size
                tracker.update_state(loss, sample_weight=min(batch_size, n - start))
            result = model.compute_metrics(x, y, y_pred)
    except Exception as e:  # labels that do not fit the model's loss/metrics
        if unlabelled:  # the stand-ins did not fit a custom loss: no numbers rather than wrong ones
            return {}
        shapes = {k: np.shape(v) for k, v in labels.items()}
        raise InputError(
            f"Expected labels that fit the model's loss and metrics. Received: labels of shape {shapes}, "
            f"which Keras rejected: {(str(e).strip().splitlines() or [type(e).__name__])[0]}"
        ) from None
    finally:
        model.reset_metrics()
    values = {k: metric_value(v) for k, v in result.items()}
    if not unlabelled:
        return values
    return {k: v for k, v in values.items() if k != "loss" and metric_output(k, names) not in unlabelled}


def metric_value(value: object) -> float | list[float]:
    """A metric's result as JSON takes it: a float, or a list for a per-class metric
    (e.g. F1Score without averaging)."""
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.size == 1 else array.tolist()


def metric_output(key, names):
    """The output a metric key belongs to (`cls_accuracy` -> `cls`); None for the total loss
    or for a single-output model, whose keys carry no output name."""
    if len(names) == 1:
        return names[0] if key != "loss" else None
    owners = [n for n in names if key.startswith(f"{n}_")]
    return max(owners, key=len) if owners else None


def head_metrics(metrics, output, names):
    """The part of `metrics` that belongs to `output`, without the output-name prefix."""
    if len(names) == 1:
        return dict(metrics)
    return {k[len(output) + 1 :]: v for k, v in metrics.items() if metric_output(k, names) == output}


def quality_metric(head, own):
    """(metric name, 'compiled' | 'computed') that `head` is judged by, given its own compiled
    metrics `own` ({name: value}); None when its kind has no quality metric.

    Classifiers: a compiled accuracy, else top-1 accuracy computed here. Regressors: a compiled
    error metric (MAE first, then RMSE, MSE, ...), else the head's own loss when it is a
    regression loss, else MAE computed here.
    """
    if head.quality == "accuracy":
        name = next((m for m in ACCURACY_METRICS if m in own), None)
        name = name or next((m for m in own if "accuracy" in m and "top_k" not in m), None)
        if name:
            return name, "compiled"
        return ("accuracy", "computed") if head.kind == "classifier" else None
    if head.quality == "error":
        name = next((m for m in ERROR_METRICS if m in own), None)
        if name:
            return name, "compiled"
        if "loss" in own and head.loss:
            return "loss", "compiled"
        return "mae", "computed"
    return None


def computed_metric(name, labels, predictions):
    """The metrics `quality_metric` computes when the model compiles none: top-1 accuracy
    (labels as class indices or one row per class) and mean absolute error."""
    pred = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(labels)
    if name == "accuracy":
        picked = pred.argmax(-1)
        truth = labels.argmax(-1) if labels.shape == pred.shape else labels.reshape(picked.shape)
        return float(np.mean(picked == truth))
    return float(np.mean(np.abs(pred - labels.reshape(pred.shape).astype(np.float64))))
