"""`NAME.json`, the manifest beside every artifact: the one place that writes it.

A `Manifest` reads like a mapping (`manifest["precision"]`, `manifest.get("validation")`) and
changes only through its `record_*` methods, each owning one section:

- `Manifest.create(...)`: what conversion knows (format, precision, hashes, signatures,
  quantization, exporter notes) — written once, when the artifact is;
- `record_validation` / `record_validation_skipped`: the `validation` section;
- `record_benchmark`: one entry of `benchmarks` per setting (runtime, threads, device...);
- `record_constraints`: `target` and its `constraints` results;
- `record_deployment`: `chosen` and the `deployment` section (`edgekeras deploy`'s verdict).

The layout is fixed by `schemas/manifest.schema.json` (`SCHEMA_VERSION`), which ships with
the package; with `EDGEKERAS_CHECK_MANIFESTS=1` (the test suite sets it) every write is
checked against it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgekeras.atomic import write_text
from edgekeras.errors import InputError

SCHEMA_VERSION = 1
SCHEMA_FILE = "manifest.schema.json"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / SCHEMA_FILE
CHECK_ENV = "EDGEKERAS_CHECK_MANIFESTS"
RECORDED_SECTIONS = ("validation", "benchmarks", "target", "constraints", "chosen", "deployment")


def manifest_path(artifact_path: str | Path) -> Path:
    """Where the manifest of `artifact_path` lives (same stem, `.json`)."""
    return Path(artifact_path).with_suffix(".json")


def schema() -> dict:
    """The manifest's JSON Schema (draft 2020-12), as shipped in the package."""
    return json.loads(SCHEMA_PATH.read_text())


class Manifest(Mapping):
    """The manifest of one artifact: read as a mapping, written through `record_*`."""

    def __init__(self, path: str | Path, data: dict | None = None) -> None:
        self.path = Path(path)
        self._data: dict = dict(data or {})

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def read(cls, artifact_path: str | Path) -> Manifest:
        """The manifest beside `artifact_path`; empty (and not `exists`) when there is none."""
        path = manifest_path(artifact_path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(
                f"Expected the manifest '{path}' to be JSON. Received: not valid JSON ({e}). Delete it or re-export."
            ) from None
        if not isinstance(data, dict):
            raise InputError(f"Expected the manifest '{path}' to hold a JSON object. Received: {type(data).__name__}.")
        return cls(path, data)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict:
        """A deep copy of the manifest's data (JSON types)."""
        return json.loads(json.dumps(self._data, default=jsonable))

    def __repr__(self) -> str:
        return f"Manifest('{self.path}', {len(self._data)} keys)"

    # -- writing ---------------------------------------------------------------------------
    @classmethod
    def create(cls, artifact_path: str | Path, fields: dict, force: bool = False) -> Manifest:
        """Writes a new manifest for a freshly written artifact (conversion's facts)."""
        manifest = cls(manifest_path(artifact_path), {"schema_version": SCHEMA_VERSION, **fields})
        manifest.save(force=force)
        return manifest

    def record_validation(self, result: dict) -> None:
        """Stores a validation result (`ValidationResult.to_dict()`) as the `validation` section."""
        self._update(validation=result)

    def record_validation_skipped(self, reason: str) -> None:
        """Says validation could not run here (e.g. TensorFlow select ops), neither pass nor fail."""
        self._update(validation={"status": "skipped", "reason": reason, "passed": None})

    def record_benchmark(self, result: dict) -> None:
        """Adds a benchmark result, replacing an earlier one measured with the same setting."""
        key = _bench_setting(result)
        kept = [b for b in self._data.get("benchmarks", []) if _bench_setting(b) != key]
        self._update(benchmarks=[*kept, result])

    def record_constraints(self, target: str, results: list[dict]) -> None:
        """Stores a target's constraint results, merged with earlier ones for the same target
        (convert checks size and ops, bench adds latency)."""
        same_target = self._data.get("target") == target
        merged = {c["name"]: c for c in self._data.get("constraints") or []} if same_target else {}
        merged.update({r["name"]: r for r in results})
        self._update(target=target, constraints=list(merged.values()))

    def record_deployment(self, chosen: bool, deployment: dict) -> None:
        """Stores `edgekeras deploy`'s verdict on this artifact: `chosen` (the fastest candidate
        within the budget and the target's constraints) and the `deployment` section (target,
        device, status, why it was chosen or rejected)."""
        self._update(chosen=bool(chosen), deployment=deployment)

    def forget(self, *sections: str) -> None:
        """Drops recorded sections (`validation`, `benchmarks`, `target`, `constraints`) so they
        can be measured afresh; conversion's facts cannot be dropped."""
        unknown = sorted(set(sections) - set(RECORDED_SECTIONS))
        if unknown:
            raise InputError(f"Expected sections among {list(RECORDED_SECTIONS)}. Received: {unknown}.")
        for section in sections:
            self._data.pop(section, None)
        self._update()

    def _update(self, **sections: Any) -> None:
        self._data.update(sections)
        self._data["schema_version"] = SCHEMA_VERSION
        if self.exists:  # an artifact without a manifest (a user's own file) stays without one
            self.save(force=True)

    def save(self, force: bool = True) -> None:
        """Writes the manifest atomically (checked against the schema when `CHECK_ENV` is set)."""
        data = self.to_dict()
        if os.environ.get(CHECK_ENV) == "1":
            check(data, str(self.path))
        write_text(self.path, json.dumps(data, indent=2) + "\n", force=force)


def check(data: dict, where: str = "manifest") -> None:
    """Raises `ValueError` when `data` does not follow the manifest schema (needs jsonschema)."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        lines = "\n".join(f"  - {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:10])
        raise ValueError(f"Manifest {where} does not follow {SCHEMA_FILE}:\n{lines}")


def _bench_setting(bench: dict) -> tuple:
    """What makes two benchmarks of one artifact comparable: a newer one replaces an older one."""
    details = bench.get("details") or {}
    return (
        bench.get("runtime"),
        bench.get("threads"),
        bench.get("batch_size", 1),
        bench.get("device"),
        details.get("delegate"),
        details.get("xnnpack"),
        tuple(details.get("providers_requested") or ()),
    )


def jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
