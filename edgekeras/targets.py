"""Deployment targets: one YAML file each in `targets/`, validated against a strict schema.

A target implies a format, precision, runtime (with delegate/provider and threads) and the
constraints an artifact must meet on it. Adding a target is adding a YAML file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgekeras.constraints import formats_for
from edgekeras.errors import InputError, suggest
from edgekeras.formats import names as format_names
from edgekeras.precisions import PRECISIONS, check_tolerance
from edgekeras.recipe.schema import Field, check_section
from edgekeras.resources import shipped_dir
from edgekeras.runtimes import RUNTIMES, runtimes_for


def _formats():
    return format_names()


def _precisions():
    return sorted(PRECISIONS)


def _runtimes():
    return list(RUNTIMES)


CONSTRAINT_FIELDS = {
    "max_size_kb": Field("float", None, doc="Largest artifact size in KiB (1024 bytes)."),
    "max_p50_ms": Field("float", None, doc="Slowest acceptable median latency (batch 1), ms."),
    "allowed_precisions": Field("strlist", None, choices=_precisions),
    "ops_allow": Field("strlist", None, doc="Only these ops may appear (TFLite builtin / ONNX op types)."),
    "ops_deny": Field("strlist", None, doc="None of these ops may appear."),
    "no_select_ops": Field("bool", False, doc="Refuse TensorFlow select (Flex) ops."),
    "int8_only": Field("bool", False, doc="Every compute op runs in int8 (no float fallback)."),
    "max_arena_kb": Field("float", None, doc="Largest activation arena (peak live tensors), KiB."),
}

TARGET_FIELDS = {
    "description": Field("str", doc="Give a one-line 'description'."),
    "format": Field("str", choices=_formats),
    "precision": Field("str", choices=_precisions),
    "io_dtype": Field("str", "float32", choices=("float32", "int8")),
    "recipe": Field("str", None, doc="Quantization recipe name from quantize/."),
    "runtime": Field("str", choices=_runtimes),
    "provider": Field("str", None, doc="ONNX Runtime execution provider."),
    "delegate": Field("str", None, doc="LiteRT external delegate library path."),
    "xnnpack": Field("bool", None),
    "threads": Field("posint", None),
    "fixed_batch": Field("posint", None),
    "tolerances": Field(
        "dict", None, doc="Per precision, overrides of its tolerance: {int8: {max_metric_ratio: 1.05}}."
    ),
    "constraints": Field("dict", {}),
}


@dataclass(frozen=True)
class Target:
    """A deployment target as its YAML file describes it."""

    name: str
    description: str
    format: str
    precision: str
    runtime: str
    io_dtype: str = "float32"
    recipe: str | None = None
    provider: str | None = None
    delegate: str | None = None
    xnnpack: bool | None = None
    threads: int | None = None
    fixed_batch: int | None = None
    tolerances: dict | None = None
    constraints: dict = field(default_factory=dict)
    path: Path | None = None

    def conversion_options(
        self,
        formats: str | Iterable[str] | None = None,
        precisions: str | Iterable[str] | None = None,
        recipe: Any = None,
        int8_io: bool = False,
        fixed_batch: int | None = None,
    ) -> dict[str, Any]:
        """What `convert` does for this target; explicit choices must agree with it."""

        def agree(option, given, implied):
            if given is not None and given != implied:
                raise InputError(
                    f"Expected {option} {implied!r} for target '{self.name}' (it implies it). Received: "
                    f"{given!r}. Drop {option} or choose another target."
                )
            return implied

        # one name or a list of them, as plan_conversion takes them
        formats = [formats] if isinstance(formats, str) else formats if formats is None else list(formats)
        precisions = (
            [precisions] if isinstance(precisions, str) else precisions if precisions is None else list(precisions)
        )
        agree("--format", formats if formats else None, [self.format])
        agree("--precision", precisions if precisions else None, [self.precision])
        if self.recipe:
            agree("--recipe", recipe, self.recipe)
        if fixed_batch is not None and self.fixed_batch is not None:
            agree("--batch-size", fixed_batch, self.fixed_batch)
        return {
            "formats": [self.format],
            "precisions": [self.precision],
            "recipe": self.recipe or recipe,
            "int8_io": int8_io or self.io_dtype == "int8",
            "fixed_batch": fixed_batch if fixed_batch is not None else self.fixed_batch,
        }

    def bench_options(self, runtime: str | None = None, threads: int | None = None, **options: Any) -> dict[str, Any]:
        """Runtime, threads and runtime options for `benchmark` on this target."""
        if runtime is not None and runtime != self.runtime:
            raise InputError(f"Expected --runtime '{self.runtime}' for target '{self.name}'. Received: '{runtime}'.")
        given = {k: v for k, v in options.items() if v is not None}
        return {
            "runtime": self.runtime,
            "threads": threads if threads is not None else self.threads,
            **self.runtime_options(),
            **given,
        }

    def runtime_options(self) -> dict[str, Any]:
        """Keyword options for `runtimes.open_session` that this target sets."""
        return {
            k: v
            for k, v in (("provider", self.provider), ("delegate", self.delegate), ("xnnpack", self.xnnpack))
            if v is not None
        }

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def targets_dir():
    """The shipped targets folder (repo root in a checkout, package data when installed)."""
    return shipped_dir("targets")


@functools.cache
def _load(path):
    try:
        mapping = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise InputError(f"Target file '{path}' is not valid YAML: {e}") from None
    try:
        checked = check_section(mapping, TARGET_FIELDS, "")
        checked["constraints"] = check_section(checked["constraints"], CONSTRAINT_FIELDS, "constraints")
        if checked["tolerances"] is not None:
            checked["tolerances"] = _tolerances(checked["tolerances"])
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    format_runtimes = _runtimes_for(checked["format"])
    if checked["runtime"] not in format_runtimes:
        raise InputError(
            f"{path}: Expected a runtime that runs {checked['format']} artifacts "
            f"({', '.join(format_runtimes)}). Received: runtime '{checked['runtime']}'."
        )

    for key, value in checked["constraints"].items():
        allowed = formats_for(key) if value not in (None, False) else None
        if allowed is not None and checked["format"] not in allowed:
            raise InputError(
                f"{path}: Expected 'constraints.{key}' only on {' or '.join(allowed)} targets. "
                f"Received: it on a {checked['format']} target."
            )
    return Target(name=Path(path).stem, path=Path(path), **checked)


def _tolerances(mapping):
    """{precision: {tolerance key: number}}, every key checked (precisions.check_tolerance)."""
    for precision in mapping:
        if precision not in PRECISIONS:
            raise InputError(
                f"Expected 'tolerances' keyed by precision ({', '.join(PRECISIONS)}). Received: "
                f"'{precision}'.{suggest(precision, PRECISIONS)}"
            )
    return {p: check_tolerance(t, f"tolerances.{p}") for p, t in mapping.items()}


def _runtimes_for(format):
    return runtimes_for(format)


def list_targets():
    """Every shipped target, by name."""
    return [_load(str(p)) for p in sorted(targets_dir().glob("*.yaml"))]


def get_target(name):
    """A target by name or by path to a YAML file; unknown names get the closest suggestion."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return _load(str(path.resolve()))
    candidate = targets_dir() / f"{name}.yaml"
    if candidate.exists():
        return _load(str(candidate))
    names = [p.stem for p in targets_dir().glob("*.yaml")]
    raise InputError(
        f"Unknown target '{name}'. Expected one of: {', '.join(sorted(names))}.{suggest(name, names)} "
        "A new target is a new YAML file in targets/ (or pass a path to one)."
    )
