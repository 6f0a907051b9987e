"""What each output of a model is (its head kind), and so which checks fit it.

A classifier's output is judged by whether the artifact picks the same class (top-1
agreement) and keeps its accuracy; a regressor's by how far its values move relative to
their spread and how much its own error metric (MAE, RMSE, ...) degrades. The kind comes
from the compiled loss of that output (Keras' losses, by name); a custom loss or an
uncompiled model falls back on the output layer's activation, then on the values
themselves (rows that look like probabilities are a classifier's).

Everything here is data: a new Keras loss or activation is a new table entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekeras.recipe.keras_objects import snake_case


@dataclass(frozen=True)
class HeadKind:
    """One kind of output: the checks `validation.CHECKS` applies to it, and the metric its
    quality is reported by (`accuracy`: higher is better, `error`: lower is better)."""

    name: str
    description: str
    checks: tuple
    quality: str | None = None


KINDS = {
    k.name: k
    for k in [
        HeadKind(
            "classifier",
            "one score per class: top-1 agreement and accuracy",
            ("max_abs_error", "cosine", "top1_agreement", "accuracy_drop"),
            quality="accuracy",
        ),
        HeadKind(
            "multi_label",
            "independent yes/no scores (sigmoid, binary crossentropy): accuracy",
            ("max_abs_error", "cosine", "accuracy_drop"),
            quality="accuracy",
        ),
        HeadKind(
            "regressor",
            "values: error relative to their spread, and the degradation of its error metric",
            ("max_abs_error", "cosine", "relative_error", "metric_ratio"),
            quality="error",
        ),
        HeadKind("other", "anything else (embeddings, distributions): parity only", ("max_abs_error", "cosine")),
    ]
}

# Keras' losses (and their string aliases) by the kind of output they train. A loss missing
# here but known to Keras is "other"; a custom loss says nothing, so the activation decides.
LOSS_KINDS = {
    "categorical_crossentropy": "classifier",
    "sparse_categorical_crossentropy": "classifier",
    "categorical_focal_crossentropy": "classifier",
    "categorical_generalized_cross_entropy": "classifier",
    "categorical_hinge": "classifier",
    "binary_crossentropy": "multi_label",
    "binary_focal_crossentropy": "multi_label",
    "hinge": "multi_label",
    "squared_hinge": "multi_label",
    "mean_squared_error": "regressor",
    "mse": "regressor",
    "mean_absolute_error": "regressor",
    "mae": "regressor",
    "mean_absolute_percentage_error": "regressor",
    "mape": "regressor",
    "mean_squared_logarithmic_error": "regressor",
    "msle": "regressor",
    "huber": "regressor",
    "huber_loss": "regressor",
    "log_cosh": "regressor",
    "logcosh": "regressor",
    "poisson": "regressor",
    "cosine_similarity": "other",
    "kl_divergence": "other",
    "kld": "other",
    "ctc": "other",
    "dice": "other",
    "tversky": "other",
    "circle": "other",
}

# Loss strings Keras resolves by the output's shape: binary for one column, else categorical.
SHAPE_DECIDED = ("crossentropy", "ce")

# The label each classification loss takes: a class index per sample, or a row per class.
# Losses not listed (and uncompiled heads) take either; the label's shape then says which.
LOSS_LABELS = {
    "sparse_categorical_crossentropy": "index",
    "categorical_crossentropy": "one_hot",
    "categorical_focal_crossentropy": "one_hot",
    "categorical_hinge": "one_hot",
}

# Output activations by kind, for heads without a Keras loss. Any other activation
# (tanh, a custom one, an output that is not a Dense/Conv/Activation layer) is decided by
# the values.
ACTIVATION_KINDS = {
    "softmax": "classifier",
    "log_softmax": "classifier",
    "sparsemax": "classifier",
    "sigmoid": "multi_label",
    "hard_sigmoid": "multi_label",
    "linear": "regressor",
    "relu": "regressor",
    "relu6": "regressor",
    "leaky_relu": "regressor",
    "elu": "regressor",
    "selu": "regressor",
    "softplus": "regressor",
    "exponential": "regressor",
}


@dataclass(frozen=True)
class Head:
    """One output of a model: its kind, what decided it, its loss and its label form."""

    output: str
    kind: str
    basis: str  # e.g. "loss 'mean_squared_error'", "activation 'softmax'", "values"
    loss: str | None = None
    labels: str | None = None  # "index", "one_hot" or None (either)

    @property
    def checks(self):
        return KINDS[self.kind].checks

    @property
    def quality(self):
        return KINDS[self.kind].quality


def loss_name(loss):
    """A loss as Keras names its function (`mean_squared_error`), or None when unknown."""
    if isinstance(loss, str):
        return snake_case(loss) if loss[:1].isupper() else loss
    if isinstance(loss, dict):
        if "class_name" in loss:  # Keras' serialized form
            return snake_case(str(loss["class_name"]))
        if len(loss) == 1:  # {ClassName: config}
            return snake_case(str(next(iter(loss))))
        return None
    fn = getattr(loss, "fn", None)  # Keras' own Loss classes wrap a function
    if fn is not None:
        return getattr(fn, "__name__", None)
    if hasattr(loss, "get_config"):  # a Loss subclass of the user's
        return snake_case(type(loss).__name__)
    return getattr(loss, "__name__", None)


def losses_by_output(model, names):
    """{output name: loss name or None} from the model's compiled loss."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return {}
    if isinstance(loss, dict) and not (len(loss) == 1 and next(iter(loss)) not in names):
        return {name: loss_name(loss[name]) if loss.get(name) is not None else None for name in names}
    if not isinstance(loss, str) and hasattr(loss, "__iter__") and not isinstance(loss, dict):
        return {name: loss_name(item) if item is not None else None for name, item in zip(names, loss)}
    return dict.fromkeys(names, loss_name(loss))


def is_keras_loss(name):
    """Whether `name` is one of Keras' own losses (a custom loss says nothing about its output)."""
    if not name:
        return False
    if name in LOSS_KINDS:
        return True
    import keras

    return hasattr(keras.losses, name) or any(snake_case(n) == name for n in dir(keras.losses) if n[:1].isupper())


def output_activation(model, name):
    """The name of the activation that produces output `name`, or None when no layer says."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    activation = getattr(layer, "activation", None)
    if activation is not None:
        return getattr(activation, "__name__", None)
    if type(layer).__name__ == "Softmax":
        return "softmax"
    return None


def looks_like_probabilities(values):
    """Rows that are non-negative and sum to 1 (a softmax's)."""
    rows = np.asarray(values).reshape(len(values), -1).astype(np.float64)
    return bool(rows.size and rows.min() >= 0 and np.allclose(rows.sum(1), 1.0, atol=1e-3))


def output_heads(model, output_names, output_shapes, outputs=None):
    """{output name: `Head`} for a Keras `model`.

    `output_shapes` gives each output's per-sample shape ({name: tuple}); `outputs` (optional,
    {name: array} of the model's predictions) decides heads that neither a Keras loss nor
    the activation does. A classifier needs at least two columns: a one-value head with a
    classification loss is left as "other".
    """
    losses = losses_by_output(model, list(output_names))
    heads = {}
    for name in output_names:
        loss = losses.get(name)
        columns = (output_shapes.get(name) or (1,))[-1:] or (1,)
        several = columns[0] is None or columns[0] > 1
        kind, basis = None, None
        if loss in SHAPE_DECIDED:  # Keras picks binary or categorical crossentropy by the shape
            kind, basis = ("classifier" if several else "multi_label"), f"loss '{loss}'"
        elif is_keras_loss(loss):
            kind, basis = LOSS_KINDS.get(loss, "other"), f"loss '{loss}'"
        else:
            activation = output_activation(model, name)
            if activation in ACTIVATION_KINDS:
                kind, basis = ACTIVATION_KINDS[activation], f"activation '{activation}'"
            elif outputs is not None and name in outputs:
                kind = "classifier" if several and looks_like_probabilities(outputs[name]) else "other"
                basis = "values"
            else:
                kind, basis = "other", "unknown (custom loss and activation)"
            if loss:
                basis = f"custom loss '{loss}', {basis}"
        if kind == "classifier" and not several:
            kind = "other"
        heads[name] = Head(name, kind, basis, loss, LOSS_LABELS.get(loss))
    return heads


def keras_heads(keras_model, outputs=None):
    """`output_heads` for an edgekeras `KerasModel` (its output specs give names and shapes)."""
    specs = keras_model.outputs
    return output_heads(
        keras_model.model, [s.name for s in specs], {s.name: tuple(s.shape[1:]) for s in specs}, outputs
    )
