"""Target constraints checked on an artifact after convert and bench: a registry of checks.

Each check reads one fact about the artifact (size, precision, ops, arena, latency) and
compares it with the target's limit. A violation names the constraint, the value and the
limit; the CLI exits 1. Adding a constraint is adding a field in targets.CONSTRAINT_FIELDS
and one entry here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgekeras.errors import ConstraintViolation
from edgekeras.formats import all_formats, get_format
from edgekeras.units import format_size


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


def _max(fact):
    def check(facts, limit):
        value = facts[fact]
        return value is None or value <= limit, None if value is None else round(value, 3), ""

    return check


def _max_kib(fact):
    """A size limit in KiB; the detail says both sizes the way every table prints sizes."""

    def check(facts, limit):
        passed, value, _ = _max(fact)(facts, limit)
        detail = "" if value is None else f"{format_size(value * 1024)} against {format_size(limit * 1024)}"
        return passed, value, detail

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
    "max_size_kb": ("size_kb", _max_kib("size_kb")),
    "max_arena_kb": ("arena_kb", _max_kib("arena_kb")),
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


# Facts every format's reader gives (`constraint_facts`), and what the artifact and its
# benchmark add; a constraint on any other fact applies only to formats whose record lists it.
COMMON_FACTS = {"artifact", "size_kb", "precision", "ops", "select_ops", "p50_ms"}


def formats_for(constraint):
    """Names of the formats `constraint` can be checked on (every format for a common fact)."""
    fact = CHECKS[constraint][0]
    records = all_formats().values()
    return [f.name for f in records if fact in COMMON_FACTS or fact in f.facts]


def artifact_facts(artifact):
    """Every fact the constraints read, from the file (its format's reader) and its manifest."""
    record = get_format(artifact.format)
    facts = {
        "artifact": str(artifact.path),
        "size_kb": artifact.path.stat().st_size / 1024,
        **record.load("reader").constraint_facts(artifact.path),
    }
    if artifact.precision:  # what it was converted as; the reader's guess otherwise
        facts["precision"] = artifact.precision
    return facts


def check_artifact(artifact, target, p50_ms=None, save=True):
    """Checks `artifact` against `target`; records `target` and `constraints` in its manifest.

    Returns the results; the caller decides whether a violation raises (see `raise_violations`).
    """
    facts = artifact_facts(artifact)
    if p50_ms is not None:
        facts["p50_ms"] = p50_ms
    results = check_constraints(target, facts, raise_on_failure=False)
    if save:
        artifact.manifest.record_constraints(target.name, [r.to_dict() for r in results])
    return results


def raise_violations(target, checked, artifacts=()):
    """Raises one `ConstraintViolation` for every failing [(artifact, results)], if any."""
    failing = [(str(a.path), results) for a, results in checked if any(not r.passed for r in results)]
    if failing:
        raise ConstraintViolation(target.name, failing, artifacts)
