"""Recipes: the YAML file that says what to train and what to export.

Loading is strict: unknown keys are errors naming the key path with the closest valid key,
and each concept module (data sources, model types) owns the schema of its own keys.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from edgekeras import export
from edgekeras.distribute.strategies import STRATEGIES
from edgekeras.errors import InputError, closest, suggest
from edgekeras.recipe.schema import Field, check_section
from edgekeras.recipe.spaces import reject_spaces

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict

# A recipe as `load_recipe` takes it: a YAML path, a shipped recipe name, a dict or a `Recipe`.
RecipeSource: TypeAlias = "str | Path | dict[str, Any] | Recipe"

COMPILE_FIELDS = {
    "optimizer": Field("keras", "adam", doc="An optimizer: identifier or {ClassName: config}."),
    "loss": Field("any", doc="Give a loss, e.g. 'compile.loss: sparse_categorical_crossentropy'."),
    "metrics": Field("any", []),
    "loss_weights": Field("any", None),
    "weighted_metrics": Field("any", None),
    "run_eagerly": Field("bool", False),
    "jit_compile": Field("any", "auto"),
    "steps_per_execution": Field("posint", 1),
}
FIT_FIELDS = {
    "epochs": Field("posint", 10),
    "callbacks": Field("list", []),
    "shuffle": Field("bool", True),
    "class_weight": Field("dict", None),
    "validation_freq": Field("posint", 1),
    "save": Field(
        "strlist",
        ["keras"],
        choices=("keras", "h5", "saved_model", "weights"),
        doc="Forms the trained model is saved in: model.keras, model.h5, saved_model/, "
        "model.weights.h5 (+ model.json, its architecture).",
    ),
}


def _formats():
    return export.formats()


def _precisions():
    return export.precisions()


EXPORT_FIELDS = {
    "formats": Field("strlist", ["tflite", "onnx"], choices=_formats),
    "precisions": Field("strlist", ["fp32"], choices=_precisions),
    "calibration_samples": Field("posint", 200),
    "validate": Field("bool", True),
}


@dataclass
class Recipe:
    """A validated recipe: every section filled with its defaults."""

    name: str
    seed: int
    data: dict
    model: dict
    compile: dict
    fit: dict
    export: dict
    path: Path | None = None
    precision: str = "float32"  # the training dtype policy (mixed_float16, mixed_bfloat16)
    qat: dict | None = None  # quantization-aware fine-tuning after training (None: none)
    prune: dict | None = None  # pruning while training (None: none)
    strategy: str = "default"  # the tf.distribute strategy training runs under (edgekeras.distribute)
    tune: dict | None = None  # hyperparameter search settings, used by `edgekeras tune` (None: none)
    kfold: dict | None = None  # k-fold cross-validation by `edgekeras train` (None: none)

    def to_dict(self) -> JSONDict:
        keys = ("name", "seed", "data", "model", "compile", "fit", "precision", "export")
        out = {k: copy.deepcopy(getattr(self, k)) for k in keys}
        for key in ("qat", "prune", "tune", "kfold"):
            if getattr(self, key) is not None:
                out[key] = copy.deepcopy(getattr(self, key))
        if self.strategy != "default":
            out["strategy"] = self.strategy
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _top_fields():
    return {
        "name": Field("str", doc="Give the run a name, e.g. 'name: digits-cnn'."),
        "seed": Field("int", 0),
        "data": Field("dict", {"source": "digits"}),
        "model": Field("dict", doc="Describe the model, e.g. 'model: {type: sequential, ...}'."),
        "compile": Field("dict", doc="Give at least 'compile.loss'."),
        "fit": Field("dict", {}),
        "export": Field("dict", {}),
        "qat": Field("dict", None, doc="Quantization-aware fine-tuning after training, e.g. 'qat: {epochs: 4}'."),
        "prune": Field("dict", None, doc="Pruning while training, e.g. 'prune: {sparsity: 0.8}'."),
        "tune": Field("dict", None, doc="Hyperparameter search by `edgekeras tune`, e.g. 'tune: {max_trials: 8}'."),
        "kfold": Field("dict", None, doc="K-fold cross-validation, e.g. 'kfold: {k: 5, stratified: true}'."),
        "precision": Field(
            "str",
            "float32",
            choices=("float32", "mixed_float16", "mixed_bfloat16"),
            doc="The training dtype policy; the saved model stays float32 at its inputs/outputs.",
        ),
        "strategy": Field(
            "str",
            "default",
            choices=tuple(STRATEGIES),
            doc="The tf.distribute strategy: default, mirrored (GPUs), multi_worker (TF_CONFIG), tpu.",
        ),
    }


def _suggest_misplaced_keys(mapping):
    """An unknown top-level key that belongs in a section (e.g. `epochs`) says which one."""
    top = _top_fields()
    sections = {"compile": COMPILE_FIELDS, "fit": FIT_FIELDS, "export": EXPORT_FIELDS}
    for key in mapping:
        if key in top or closest(key, top):
            continue
        qualified = {f"{name}.{k}": k for name, fields in sections.items() for k in fields}
        match = closest(key, qualified.values())
        if match:
            where = next(q for q, k in qualified.items() if k == match)
            raise InputError(
                f"Unknown key '{key}' at the top of the recipe. Expected one of: "
                f"{', '.join(sorted(top))}. Did you mean '{where}'?"
            )


def parse_recipe(mapping: Any, path: Path | None = None) -> Recipe:
    """Validates a recipe mapping (already parsed from YAML) and returns a `Recipe`.

    A search space in place of a value is refused: only `edgekeras tune` samples them."""
    # Here, not at the top: data, models and qat import recipe.schema, which runs this __init__.
    from edgekeras.data import check_data_section
    from edgekeras.kfold import check_kfold_section
    from edgekeras.models import check_model_section
    from edgekeras.pruning import FIELDS as PRUNE_FIELDS
    from edgekeras.pruning import check_section as check_prune_section
    from edgekeras.qat import FIELDS as QAT_FIELDS
    from edgekeras.tuning.settings import check_tune_section

    if not isinstance(mapping, dict):
        raise InputError(f"Expected a recipe mapping at the top of '{path}'. Received: {type(mapping).__name__}.")
    _suggest_misplaced_keys(mapping)
    reject_spaces(mapping)
    top = check_section(mapping, _top_fields(), "")
    return Recipe(
        name=top["name"],
        seed=top["seed"],
        data=check_data_section(top["data"]),
        model=check_model_section(top["model"]),
        compile=check_section(top["compile"], COMPILE_FIELDS, "compile"),
        fit=check_section(top["fit"], FIT_FIELDS, "fit"),
        export=check_section(top["export"], EXPORT_FIELDS, "export"),
        path=Path(path) if path else None,
        precision=top["precision"],
        qat=None if top["qat"] is None else check_section(top["qat"], QAT_FIELDS, "qat"),
        prune=None if top["prune"] is None else check_prune_section(check_section(top["prune"], PRUNE_FIELDS, "prune")),
        strategy=top["strategy"],
        tune=None if top["tune"] is None else check_tune_section(top["tune"]),
        kfold=None if top["kfold"] is None else check_kfold_section(top["kfold"]),
    )


def load_recipe(source: RecipeSource) -> Recipe:
    """Loads a recipe from a YAML path, a shipped recipe name (e.g. 'digits-cnn'), or a dict."""
    if isinstance(source, Recipe):
        return source
    mapping, path = read_recipe(source)
    try:
        return parse_recipe(mapping, path)
    except InputError as e:
        raise InputError(f"{path}: {e}" if path else str(e)) from None


def read_recipe(source: str | Path | dict[str, Any]) -> tuple[Any, Path | None]:
    """(the recipe mapping as written, its file or None): YAML read, nothing checked yet."""
    if isinstance(source, dict):
        return source, None
    path = Path(source)
    if not path.exists():
        shipped = Path(__file__).resolve().parent.parent / "recipes" / f"{source}.yaml"
        if shipped.exists():
            path = shipped
        else:
            names = sorted(p.stem for p in shipped.parent.glob("*.yaml"))
            raise InputError(
                f"Expected a recipe file or a shipped recipe name ({', '.join(names)}). Received: "
                f"'{source}', which does not exist.{suggest(source, names)}"
            )
    try:
        return yaml.safe_load(path.read_text()), path
    except yaml.YAMLError as e:
        raise InputError(f"Recipe '{path}' is not valid YAML: {e}") from None
