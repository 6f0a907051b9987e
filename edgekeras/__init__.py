"""edgekeras: from a Keras model to validated, benchmarked TFLite (LiteRT) and ONNX artifacts.

    import edgekeras as ek
    run = ek.train("recipe.yaml")
    arts = ek.convert(run.model, formats=["tflite", "onnx"], precisions=["fp32", "int8"],
                      calibration=run.data.calibration(), out="artifacts/")
    rep = ek.validate(arts[0], reference=run.model, data=run.data.test)
    res = ek.benchmark(arts[0], runtime="litert", threads=2, runs=100)

Importing edgekeras does not import TensorFlow: each function loads what it needs.
"""

from edgekeras.version import __version__ as __version__

# public name -> "module:attribute", resolved on first use (keeps `import edgekeras` light)
_API = {
    "train": "edgekeras.training:train",
    "convert": "edgekeras.conversion:convert",
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


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'edgekeras' has no attribute {name!r}")
    import importlib

    module, attr = _API[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_API))
