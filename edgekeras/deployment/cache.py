"""What an earlier `deploy` into the same folder already built and measured (`deploy-cache.json`).

Two tables, so a second run redoes only what changed:
- artifacts, keyed by (source model sha256, candidate: format, precision, recipe, model,
  batch; converter versions) -> the artifact file and its sha256, or why the conversion failed
  (a converter that cannot do it now cannot do it the next time either);
- measurements, keyed by (artifact sha256, runtime, threads, runtime options, host or
  device, the validation data's sha256, runs, warmup) -> its validation and benchmark results.

A hit counts only while the file it names still has that sha256. The budget is not part of
any key: verdicts are recomputed from the cached numbers on every run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from edgekeras.atomic import write_text
from edgekeras.model_io import sha256_file

FILE = "deploy-cache.json"
VERSION = 1


def digest(value: Any) -> str:
    """sha256 of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def arrays_digest(arrays: dict[str, Any]) -> str:
    """sha256 of {name: array} (names, dtypes, shapes and bytes), e.g. the validation data."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


class DeployCache:
    """The cache file of one deploy folder; thread-safe (device workers record into it)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / FILE
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {"artifacts": {}, "measurements": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = {}  # a damaged cache costs a re-measurement, never a wrong answer
            if isinstance(data, dict) and data.get("version") == VERSION:
                self._data = {k: dict(data.get(k) or {}) for k in ("artifacts", "measurements")}

    def artifact(self, key: str) -> Path | None:
        """The cached artifact for a conversion key, if its file is unchanged."""
        with self._lock:
            entry = self._data["artifacts"].get(key)
        if not entry or "path" not in entry:
            return None
        path = self.root / entry["path"]
        if path.is_file() and path.with_suffix(".json").is_file() and sha256_file(path) == entry["sha256"]:
            return path
        return None

    def record_artifact(self, key: str, path: Path) -> None:
        with self._lock:
            self._data["artifacts"][key] = {
                "path": str(Path(path).relative_to(self.root)),
                "sha256": sha256_file(path),
            }

    def failure(self, key: str) -> str | None:
        """Why converting this key failed in an earlier run, if it did."""
        with self._lock:
            return (self._data["artifacts"].get(key) or {}).get("error")

    def record_failure(self, key: str, error: str) -> None:
        with self._lock:
            self._data["artifacts"][key] = {"error": error}

    def measurement(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._data["measurements"].get(key)

    def record_measurement(self, key: str, measured: dict[str, Any]) -> None:
        with self._lock:
            self._data["measurements"][key] = measured

    def save(self) -> None:
        with self._lock:
            text = json.dumps({"version": VERSION, **self._data}, indent=1, sort_keys=True) + "\n"
        write_text(self.path, text, force=True)
