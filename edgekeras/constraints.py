"""Target constraints checked on an artifact after convert and bench: a registry of checks.

Each check reads one fact about the artifact (size, precision, ops, arena, latency) and
compares it with the target's limit. A violation names the constraint, the value and the
limit; the CLI exits 1. Adding a constraint is adding a field in targets.CONSTRAINT_FIELDS
and one entry here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgekeras.errors import CheckFailed
from edgekeras.readers import tflite as tflite_reader


@dataclass
class ConstraintResult:
    name: str
    value: object
    limit: object
    passed: bool
    detail: str = ""

    def __str__(self):
        verdict = "ok" if self.passed else "VIOLATED"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {self.value} (limit {self.limit}) {verdict}{extra}"

    def to_dict(self):
        return asdict(self)


class ConstraintViolation(CheckFailed):
    """Artifacts break their target's constraints (exit 1); every violation is listed."""

    def __init__(self, target, violations, artifacts=()):
        self.violations, self.artifacts = violations, list(artifacts)  # [(artifact path, [results])]
        lines = "\n".join(f"  - {path}: {r}" for path, results in violations for r in results if not r.passed)
        super().__init__(f"Not within the constraints of target '{target}':\n{lines}")


def _max(fact):
    def check(facts, limit):
        value = facts[fact]
        return value is None or value <= limit, None if value is None else round(value, 3), ""

    return check


def _allowed_precisions(facts, limit):
    return facts["precision"] in limit, facts["precision"], ""


def _ops_allow(facts, limit):
    extra = sorted(set(facts["ops"]) - set(limit))
    return not extra, sorted(facts["ops"]), f"not allowed: {', '.join(extra)}" if extra else ""


def _ops_deny(facts, limit):
    found = sorted(set(facts["ops"]) & set(limit))
    return not found, found, f"denied ops present: {', '.join(found)}" if found else ""


def _no_select_ops(facts, limit):
    found = facts["select_ops"]
    return (not limit) or not found, found, "needs TensorFlow select ops" if found else ""


def _int8_only(facts, limit):
    found = facts["float_ops"]
    return (not limit) or not found, found, "ops computing in float" if found else ""


# constraint name -> (fact it needs, check(facts, limit) -> (passed, value, detail))
CHECKS = {
    "max_size_kb": ("size_kb", _max("size_kb")),
    "max_arena_kb": ("arena_kb", _max("arena_kb")),
    "max_p50_ms": ("p50_ms", _max("p50_ms")),
    "allowed_precisions": ("precision", _allowed_precisions),
    "ops_allow": ("ops", _ops_allow),
    "ops_deny": ("ops", _ops_deny),
    "no_select_ops": ("select_ops", _no_select_ops),
    "int8_only": ("float_ops", _int8_only),
}


def check_constraints(target, facts, raise_on_failure=True, only=None):
    """Checks every constraint `target` sets whose fact is known; returns the results.

    `facts` maps fact names (size_kb, precision, ops, select_ops, float_ops, arena_kb, p50_ms)
    to values; a constraint whose fact is missing is skipped (e.g. latency before bench).
    """
    results = []
    for name, limit in target.constraints.items():
        if limit in (None, False) or name not in CHECKS or (only and name not in only):
            continue
        fact, check = CHECKS[name]
        if fact not in facts:
            continue
        passed, value, detail = check(facts, limit)
        results.append(ConstraintResult(name, value, limit, bool(passed), detail))
    if raise_on_failure and any(not r.passed for r in results):
        raise ConstraintViolation(target.name, [(facts.get("artifact", "?"), results)])
    return results


# Facts only one format's reader knows (checked when a target is loaded).
FORMAT_ONLY = {"int8_only": "tflite", "max_arena_kb": "tflite"}


def _tflite_facts(path):
    """Ops computing in float and the peak activation arena, from the flatbuffer (no interpreter).

    Float ops follow the reader's one rule, QUANTIZE/DEQUANTIZE edges included: an int8-only
    device runs neither. The arena estimate is the peak, over the ops in execution order, of
    the bytes of every non-constant tensor that is live (produced and still to be consumed),
    batch taken as 1: what TFLite Micro's greedy planner needs at least.
    """
    import numpy as np

    graph = tflite_reader.read(path)
    tensors = graph.tensors
    float_ops = sorted({op.name for op in tflite_reader.float_ops(graph)})
    last_use, first_def = {}, dict.fromkeys(graph.inputs.values(), -1)
    for step, op in enumerate(graph.ops):
        for i in op.inputs:
            last_use[i] = step
        for i in op.outputs:
            first_def.setdefault(i, step)
    for i in graph.outputs.values():
        last_use[i] = len(graph.ops)

    def nbytes(t):
        dims = [1 if d is None or d < 0 else d for d in t.shape]
        return int(np.prod(dims)) * (np.dtype(t.dtype).itemsize if t.dtype != "unknown" else 4)

    peak = 0
    for step in range(len(graph.ops)):
        live = sum(
            nbytes(tensors[i])
            for i, start in first_def.items()
            if not tensors[i].constant and start <= step <= last_use.get(i, start)
        )
        peak = max(peak, live)
    return {"float_ops": float_ops, "arena_kb": peak / 1024}


_FORMAT_FACTS = {"tflite": _tflite_facts}


def artifact_facts(artifact):
    """Every fact the constraints read, from the file, its manifest and its benchmarks."""
    from edgekeras.inspection import inspect

    info = inspect(artifact.path)
    facts = {
        "artifact": str(artifact.path),
        "size_kb": info.size_bytes / 1024,
        "precision": info.precision,
        "ops": sorted(info.ops),
        "select_ops": list(info.summary.select_ops),
    }
    if info.format in _FORMAT_FACTS:
        facts.update(_FORMAT_FACTS[info.format](artifact.path))
    return facts


def check_artifact(artifact, target, p50_ms=None, save=True):
    """Checks `artifact` against `target`; records `target` and `constraints` in its manifest.

    Returns the results; the caller decides whether a violation raises (see `raise_violations`).
    """
    facts = artifact_facts(artifact)
    if p50_ms is not None:
        facts["p50_ms"] = p50_ms
    results = check_constraints(target, facts, raise_on_failure=False)
    if save and artifact.manifest_path.exists():
        same_target = artifact.manifest.get("target") == target.name  # convert's checks + bench's latency
        merged = {c["name"]: c for c in artifact.manifest.get("constraints") or []} if same_target else {}
        merged.update({r.name: r.to_dict() for r in results})
        artifact.manifest["target"] = target.name
        artifact.manifest["constraints"] = list(merged.values())
        artifact.save()
    return results


def raise_violations(target, checked, artifacts=()):
    """Raises one `ConstraintViolation` for every failing [(artifact, results)], if any."""
    failing = [(str(a.path), results) for a, results in checked if any(not r.passed for r in results)]
    if failing:
        raise ConstraintViolation(target.name, failing, artifacts)
