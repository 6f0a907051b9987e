"""The recipe's `tune:` section: which tuner, what it optimizes, how many trials.

    tune:
      tuner: bayesian            # random | bayesian | hyperband (TUNERS)
      options: {num_initial_points: 3}   # the tuner's own settings
      objective: val_accuracy    # a metric of the training history (best epoch), or:
      # objective:
      #   artifact: {format: tflite, precision: int8, metric: accuracy}   # or {target: NAME, metric: ...}
      #   constraints: {max_size_kb: 64, max_p50_ms: 0.5}                  # targets' constraint names
      #   bench: {runtime: litert, threads: 2, runs: 50}                   # how p50 latency is measured
      direction: max             # inferred for known metric names
      max_trials: 10
      executions_per_trial: 1

An artifact objective converts, validates (on the validation split) and, where latency
matters, benchmarks each trial's model; a trial that breaks a constraint is infeasible and
never the best. Nothing here imports TensorFlow or Keras Tuner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekeras import export
from edgekeras.errors import InputError, expected_one_of
from edgekeras.recipe.schema import Field, check_section
from edgekeras.runtimes import RUNTIMES
from edgekeras.targets import CONSTRAINT_FIELDS, get_target


@dataclass(frozen=True)
class TunerKind:
    """One tuner: its Keras Tuner oracle class, its own options, and whether it takes max_trials."""

    oracle: str  # class name in keras_tuner.oracles
    options: dict[str, Field] = field(default_factory=dict)
    takes_max_trials: bool = True
    doc: str = ""


TUNERS = {
    "random": TunerKind("RandomSearchOracle", doc="Random search over the spaces."),
    "bayesian": TunerKind(
        "BayesianOptimizationOracle",
        {
            "num_initial_points": Field("posint", None, doc="Random trials before the Gaussian process leads."),
            "alpha": Field("float", 1e-4),
            "beta": Field("float", 2.6),
        },
        doc="Bayesian optimization with a Gaussian process.",
    ),
    "hyperband": TunerKind(
        "HyperbandOracle",
        {
            "max_epochs": Field("posint", None, doc="Most epochs a trial trains (default: fit.epochs)."),
            "factor": Field("posint", 3),
            "hyperband_iterations": Field("posint", 1),
        },
        takes_max_trials=False,
        doc="Hyperband: many short trials, the best trained longer (each from scratch).",
    ),
}

TUNE_FIELDS = {
    "tuner": Field("str", "random", choices=tuple(TUNERS)),
    "options": Field("dict", {}),
    "objective": Field("any", "val_loss", doc="A history metric (val_accuracy) or {artifact: {...}}."),
    "direction": Field("str", None, choices=("min", "max")),
    "max_trials": Field("posint", 10),
    "executions_per_trial": Field("posint", 1),
}
OBJECTIVE_FIELDS = {
    "artifact": Field("dict", doc="Say which artifact, e.g. 'artifact: {format: tflite, precision: int8}'."),
    "constraints": Field("dict", {}),
    "bench": Field("dict", None),
}
ARTIFACT_FIELDS = {
    "format": Field("str", None, choices=export.formats),
    "precision": Field("str", None, choices=export.precisions),
    "target": Field("str", None, doc="A deployment target (targets/): its format, precision, runtime, constraints."),
    "metric": Field("str", "accuracy"),
}
BENCH_FIELDS = {
    "runtime": Field("str", None, choices=tuple(RUNTIMES)),
    "threads": Field("posint", None),
    "runs": Field("posint", 50),
    "warmup": Field("int", 5),
}
# What an artifact objective can optimize -> its direction. Measured on the validation split
# (accuracy, agreement with the Keras model) and on the file and its benchmark.
ARTIFACT_METRICS = {
    "accuracy": "max",  # the artifact's accuracy (first classifier output)
    "accuracy_delta": "max",  # percentage points, artifact - Keras model
    "top1_agreement": "max",  # share of samples where artifact and model agree on the class
    "cosine": "max",  # lowest cosine similarity of an output to the Keras model's
    "max_abs_error": "min",
    "size_kb": "min",
    "p50_ms": "min",  # median latency, batch 1
}
_MIN_HINTS = ("loss", "error", "mae", "mse", "mape", "msle", "hinge", "crossentropy", "_ms", "_kb")
_MAX_HINTS = ("accuracy", "acc", "auc", "precision", "recall", "f1", "iou", "cosine", "agreement")


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by. `artifact` is None for a metric of the training history."""

    name: str  # what the tuner and the results table call the score
    metric: str  # the history's column, or an ARTIFACT_METRICS name
    direction: str  # "min" or "max"
    artifact: dict[str, Any] | None = None  # {format, precision, target}
    constraints: dict[str, Any] = field(default_factory=dict)  # targets' constraint names -> limits
    bench: dict[str, Any] | None = None  # how latency is measured; None: not measured

    @property
    def better(self) -> Any:
        return max if self.direction == "max" else min


@dataclass(frozen=True)
class TuneSettings:
    """The checked `tune:` section."""

    tuner: str
    options: dict[str, Any]
    objective: Objective
    max_trials: int | None  # None: the tuner decides (hyperband)
    executions_per_trial: int


def check_tune_section(section: Any) -> dict[str, Any]:
    """The `tune:` section checked, defaults filled (for the Recipe); errors name the key."""
    checked = check_section(section, TUNE_FIELDS, "tune")
    kind = TUNERS[checked["tuner"]]
    if not kind.takes_max_trials and "max_trials" in (section or {}):
        raise InputError(
            f"Expected no 'tune.max_trials' with tuner '{checked['tuner']}': it decides the number of trials "
            "from 'tune.options' (max_epochs, factor, hyperband_iterations). Received: max_trials "
            f"{section['max_trials']}. Remove it, or use tuner random or bayesian."
        )
    checked["options"] = check_section(checked["options"], kind.options, "tune.options")
    if checked["tuner"] == "hyperband" and checked["options"]["factor"] < 2:
        raise InputError(f"Expected 'tune.options.factor' >= 2. Received: {checked['options']['factor']}.")
    parse_objective(checked["objective"], checked["direction"])  # checked now; built again when tuning
    return checked


def tune_settings(section: dict[str, Any], epochs: int) -> TuneSettings:
    """`TuneSettings` from a checked `tune:` section; `epochs` is the recipe's fit.epochs."""
    options = {k: v for k, v in section["options"].items() if v is not None}
    if section["tuner"] == "hyperband":
        options.setdefault("max_epochs", epochs)
    kind = TUNERS[section["tuner"]]
    return TuneSettings(
        tuner=section["tuner"],
        options=options,
        objective=parse_objective(section["objective"], section["direction"]),
        max_trials=section["max_trials"] if kind.takes_max_trials else None,
        executions_per_trial=section["executions_per_trial"],
    )


def parse_objective(spec: Any, direction: str | None) -> Objective:
    """An `Objective` from `tune.objective` (a metric name or {artifact: ...}) and `tune.direction`."""
    if isinstance(spec, str):
        return Objective(spec, spec, direction or _infer_direction(spec))
    if not isinstance(spec, dict):
        raise InputError(
            "Expected 'tune.objective' to be a metric name (e.g. val_accuracy) or {artifact: {format, precision, "
            f"metric}}. Received: {spec!r}."
        )
    checked = check_section(spec, OBJECTIVE_FIELDS, "tune.objective")
    artifact = check_section(checked["artifact"], ARTIFACT_FIELDS, "tune.objective.artifact")
    constraints = check_section(checked["constraints"], CONSTRAINT_FIELDS, "tune.objective.constraints")
    constraints = {k: v for k, v in constraints.items() if v not in (None, False)}
    if artifact["target"] is not None:
        target = get_target(artifact["target"])
        implied = target.conversion_options(artifact["format"], artifact["precision"])
        artifact["format"], artifact["precision"] = implied["formats"][0], implied["precisions"][0]
        constraints = {**{k: v for k, v in target.constraints.items() if v not in (None, False)}, **constraints}
    for key in ("format", "precision"):
        if artifact[key] is None:
            raise InputError(
                f"Expected 'tune.objective.artifact.{key}' (or a 'target' that implies it). Received: neither."
            )
    if not export.exists(artifact["format"], artifact["precision"]):
        raise InputError(
            f"Expected a format and precision edgekeras converts to. Received: {artifact['format']} "
            f"{artifact['precision']}, which has no exporter."
        )
    metric = artifact.pop("metric")
    if metric not in ARTIFACT_METRICS:
        raise expected_one_of("'tune.objective.artifact.metric'", metric, ARTIFACT_METRICS)
    latency = checked["bench"] is not None or metric == "p50_ms" or "max_p50_ms" in constraints
    bench = check_section(checked["bench"], BENCH_FIELDS, "tune.objective.bench") if latency else None
    return Objective(
        name=f"{artifact['format']}_{artifact['precision']}_{metric}",
        metric=metric,
        direction=direction or ARTIFACT_METRICS[metric],
        artifact=artifact,
        constraints=constraints,
        bench=bench,
    )


def _infer_direction(name: str) -> str:
    base = name.lower().removeprefix("val_")
    if any(h in base for h in _MIN_HINTS):
        return "min"
    if any(h in base for h in _MAX_HINTS):
        return "max"
    raise InputError(
        f"Expected 'tune.direction' (min or max) for the objective '{name}': its direction cannot be inferred "
        "from its name. Received: no direction."
    )
