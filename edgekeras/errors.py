"""The errors edgekeras raises on purpose, each with the CLI exit code it maps to.

Two families: `InputError` (the user gave something wrong: exit 2) and `CheckFailed`
(the input was fine but an artifact failed a check, or the toolchain cannot convert the model:
`ConversionError`; exit 1). Anything else escaping the CLI is a bug in edgekeras.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path


# Every module imports this one, so the classes these errors carry are named by their shape.
class ArtifactRef(Protocol):
    """An artifact a failed check carries (`edgekeras.artifact.Artifact`)."""

    @property
    def path(self) -> Path: ...


class Verdict(Protocol):
    """One checked limit (`edgekeras.constraints.ConstraintResult`); printed when it failed."""

    @property
    def passed(self) -> bool: ...


class EdgekerasError(Exception):
    """Base class of every error edgekeras raises deliberately."""

    exit_code = 2


class InputError(EdgekerasError, ValueError):
    """Bad input: a file, a recipe key, an option value. CLI exit code 2."""

    exit_code = 2


class OutputExistsError(InputError):
    """An output path exists and `force` was not given."""

    def __init__(self, path: object) -> None:
        super().__init__(
            f"Expected a path that does not exist yet. Received: '{path}', which exists. "
            "Pass --force (force=True) to overwrite it, or choose another output path."
        )
        self.path = path

    def __reduce__(self):  # pickled from the path, not the message (a child process raises it)
        return type(self), (self.path,)


class CheckFailed(EdgekerasError):
    """An artifact failed a parity, accuracy or constraint check, or the toolchain cannot make it.
    CLI exit code 1."""

    exit_code = 1


class ConversionError(CheckFailed):
    """The toolchain cannot convert the model: an op no route lowers, a converter that refused
    or crashed. The model and the options were valid, so this is a failed check (exit 1), not
    bad input (exit 2); the message names the ops and layers at fault and what to try."""

    @classmethod
    def from_log(cls, format: str, exc: BaseException, log: str) -> ConversionError:
        """From a converter's exception and its captured log: the ops it could not lower (MLIR's
        "'tf.X' op" errors, tf2onnx's "Tensorflow op [node: X] is not supported")."""
        text = f"{exc}\n{log}"
        ops = set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op", text))
        ops |= set(re.findall(r"Tensorflow op \[[^\]]*: ([A-Za-z0-9_]+)\] is not supported", text))
        detail = f" Ops the converter could not lower: {', '.join(sorted(ops))}." if ops else ""
        first = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        return cls(
            f"The {format} converter failed: {first}.{detail} Try {_other_route(format)}; run with "
            "--verbose to see the converter's full log."
        )


def _other_route(format: str) -> str:
    """What to try when `format` ('onnx int8', 'tflite fp32', ...) cannot convert a model."""
    other = "tflite" if str(format).startswith("onnx") else "onnx"
    return f"--format {other}, another --precision, or replacing the layers that use those ops"


@dataclass
class OutputMismatch:
    """One artifact output whose numbers fall outside the tolerance."""

    output: str
    metric: str
    value: float
    limit: float
    comparison: str  # "<=" or ">="

    def __str__(self) -> str:
        return f"output '{self.output}': {self.metric} = {self.value:.6g}, expected {self.comparison} {self.limit:.6g}"


@dataclass
class ParityError(CheckFailed):
    """Raised once per artifact with every output/metric that failed, not just the first."""

    artifact: str
    failures: list[OutputMismatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(f"Artifact '{self.artifact}' failed validation:\n{lines}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):  # pickled from the fields, not the message (a child process returns it)
        return type(self), (self.artifact, self.failures)


class ValidationFailed(CheckFailed):
    """One or more artifacts failed validation; all artifacts and manifests are written.

    `errors` holds one `ParityError` per failing artifact; `advice` what to try, per precision.
    """

    def __init__(
        self, artifacts: Iterable[ArtifactRef], errors: Iterable[ParityError], advice: Iterable[str] = ()
    ) -> None:
        self.artifacts, self.errors = list(artifacts), list(errors)
        super().__init__("\n".join([str(e) for e in self.errors] + list(advice)))


class WorkerFailed(EdgekerasError):
    """A training worker started by `launch` failed; the others were stopped. The exit code is
    the worker's own (2 for its bad input, 1 otherwise); the message names the worker and
    ends with its last lines on stderr."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code if exit_code in (1, 2) else 1


class NotEnoughMemory(CheckFailed):
    """A conversion would need more memory than this machine has (checked before it starts),
    or an artifact larger than its format can hold. Exit code 1."""


class NotEnoughDisk(CheckFailed):
    """The destination (or the temporary folder) lacks room for what a conversion writes;
    checked before anything is written. Exit code 1."""


class CannotValidate(CheckFailed):
    """The artifact cannot run here (e.g. it needs TensorFlow select ops): neither pass nor fail."""


class ConstraintViolation(CheckFailed):
    """Artifacts break their target's constraints (exit 1); every violation is listed."""

    def __init__(
        self,
        target: str,
        violations: Sequence[tuple[str, Sequence[Verdict]]],
        artifacts: Iterable[ArtifactRef] = (),
    ) -> None:
        self.violations, self.artifacts = violations, list(artifacts)  # [(artifact path, [results])]
        lines = "\n".join(f"  - {path}: {r}" for path, results in violations for r in results if not r.passed)
        super().__init__(f"Not within the constraints of target '{target}':\n{lines}")


class BudgetNotMet(CheckFailed):
    """`deploy` found no candidate within the accuracy budget and the constraints of a target
    (exit 1); everything measured is written, and the message names the closest candidate.
    `deployment` is the `edgekeras.deployment.Deployment` with every table."""

    def __init__(self, message: str, deployment: Any = None) -> None:
        self.deployment = deployment
        super().__init__(message)


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: a swap of two letters ('Adma'/'Adam') costs 1."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def closest(name: object, candidates: Iterable[Any]) -> str | None:
    """The candidate a typo most likely meant, or None."""
    text = str(name)
    best: str | None = None
    best_key: tuple[int, float] | None = None
    for cand in map(str, candidates):
        dist = _edit_distance(text.lower(), cand.lower())
        ratio = difflib.SequenceMatcher(None, text.lower(), cand.lower()).ratio()
        if dist <= max(2, len(text) // 3) or ratio >= 0.75:
            key = (dist, -ratio)
            if best_key is None or key < best_key:
                best, best_key = cand, key
    return best


def suggest(name: object, candidates: Iterable[Any]) -> str:
    """Returns " Did you mean 'x'?" for the closest candidate, or ''."""
    match = closest(name, candidates)
    return f" Did you mean '{match}'?" if match else ""


def expected_one_of(what: str, received: object, valid: Iterable[Any]) -> InputError:
    """The Keras-style message for a value outside a fixed set, with a suggestion."""
    valid = sorted(valid)
    return InputError(
        f"Expected {what} to be one of {', '.join(repr(v) for v in valid)}. "
        f"Received: {received!r}.{suggest(received, valid)}"
    )
