"""edgekeras: from a Keras model to validated, benchmarked TFLite (LiteRT) and ONNX artifacts.

    import edgekeras as ek
    run = ek.train("recipe.yaml")
    arts = ek.convert(run.model, formats=["tflite", "onnx"], precisions=["fp32", "int8"],
                      calibration=run.data.calibration(), out="artifacts/")
    rep = ek.validate(arts[0], reference=run.model, data=run.data.test)
    res = ek.benchmark(arts[0], runtime="litert", threads=2, runs=100)

Importing edgekeras does not import TensorFlow: each function loads what it needs.
"""

from typing import TYPE_CHECKING, Any

from edgekeras.version import __version__ as __version__

if TYPE_CHECKING:  # what a type checker sees; at run time `__getattr__` imports each on first use
    from edgekeras.artifact import Artifact as Artifact
    from edgekeras.bench import benchmark as benchmark
    from edgekeras.conversion import convert as convert
    from edgekeras.conversion import convert_auto as convert_auto
    from edgekeras.demo_pipeline import demo as demo
    from edgekeras.doctor import doctor as doctor
    from edgekeras.errors import CannotValidate as CannotValidate
    from edgekeras.errors import CheckFailed as CheckFailed
    from edgekeras.errors import ConstraintViolation as ConstraintViolation
    from edgekeras.errors import EdgekerasError as EdgekerasError
    from edgekeras.errors import InputError as InputError
    from edgekeras.errors import ParityError as ParityError
    from edgekeras.errors import ValidationFailed as ValidationFailed
    from edgekeras.inference import evaluate as evaluate
    from edgekeras.inference import predict as predict
    from edgekeras.inspection import inspect as inspect
    from edgekeras.launch import launch as launch
    from edgekeras.manifest import Manifest as Manifest
    from edgekeras.model_io import save_model as save_model
    from edgekeras.pruning.prune import prune as prune
    from edgekeras.pruning.pruner import strip_pruning as strip_pruning
    from edgekeras.qat.aware import quantize_aware as quantize_aware
    from edgekeras.recipe import load_recipe as load_recipe
    from edgekeras.remote import SSHDevice as SSHDevice
    from edgekeras.reporting import write_report as report  # noqa: F401  (exported as ek.report)
    from edgekeras.run_folder import RunFolder as RunFolder
    from edgekeras.sources import load_model as load_model
    from edgekeras.split_export import export_split as export_split
    from edgekeras.training import train as train
    from edgekeras.tuning.search import TuningResult as TuningResult
    from edgekeras.tuning.search import tune as tune
    from edgekeras.validation import validate as validate

# public name -> "module:attribute", resolved on first use (keeps `import edgekeras` light)
_API = {
    "train": "edgekeras.training:train",
    "launch": "edgekeras.launch:launch",
    "doctor": "edgekeras.doctor:doctor",
    "tune": "edgekeras.tuning.search:tune",
    "TuningResult": "edgekeras.tuning.search:TuningResult",
    "convert": "edgekeras.conversion:convert",
    "convert_auto": "edgekeras.conversion:convert_auto",
    "validate": "edgekeras.validation:validate",
    "benchmark": "edgekeras.bench:benchmark",
    "demo": "edgekeras.demo_pipeline:demo",
    "inspect": "edgekeras.inspection:inspect",
    "quantize_aware": "edgekeras.qat.aware:quantize_aware",
    "prune": "edgekeras.pruning.prune:prune",
    "strip_pruning": "edgekeras.pruning.pruner:strip_pruning",
    "report": "edgekeras.reporting:write_report",
    "load_recipe": "edgekeras.recipe:load_recipe",
    "load_model": "edgekeras.sources:load_model",
    "save_model": "edgekeras.model_io:save_model",
    "evaluate": "edgekeras.inference:evaluate",
    "export_split": "edgekeras.split_export:export_split",
    "RunFolder": "edgekeras.run_folder:RunFolder",
    "Manifest": "edgekeras.manifest:Manifest",
    "predict": "edgekeras.inference:predict",
    "Artifact": "edgekeras.artifact:Artifact",
    "SSHDevice": "edgekeras.remote:SSHDevice",
    "EdgekerasError": "edgekeras.errors:EdgekerasError",
    "InputError": "edgekeras.errors:InputError",
    "CheckFailed": "edgekeras.errors:CheckFailed",
    "ParityError": "edgekeras.errors:ParityError",
    "ValidationFailed": "edgekeras.errors:ValidationFailed",
    "CannotValidate": "edgekeras.errors:CannotValidate",
    "ConstraintViolation": "edgekeras.errors:ConstraintViolation",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'edgekeras' has no attribute {name!r}")
    import importlib

    module, attr = _API[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
