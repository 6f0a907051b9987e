"""Target constraints checked on an artifact after convert and bench: a registry of checks.

Each check reads one fact about the artifact (size, precision, ops, arena, latency) and
compares it with the target's limit. A violation names the constraint, the value and the
limit; the CLI exits 1. Adding a constraint is adding a field in targets.CONSTRAINT_FIELDS
and one entry here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgekeras.errors import CheckFailed


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
    """The artifact breaks one or more of its target's constraints (exit 1)."""

    def __init__(self, artifact, target, results):
        self.results = results
        lines = "\n".join(f"  - {r}" for r in results if not r.passed)
        super().__init__(f"Artifact '{artifact}' does not meet target '{target}':\n{lines}")


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
        raise ConstraintViolation(facts.get("artifact", "?"), target.name, results)
    return results
