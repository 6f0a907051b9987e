"""An exported file and its `NAME.json` manifest, which records everything known about it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgekeras.errors import InputError


@dataclass
class Artifact:
    """A `.tflite`/`.onnx` file plus its manifest (format, precision, hashes, results)."""

    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def manifest_path(self):
        return self.path.with_suffix(".json")

    @property
    def format(self):
        return self.manifest.get("format")

    @property
    def precision(self):
        return self.manifest.get("precision")

    @property
    def name(self):
        return self.path.stem

    @property
    def size_bytes(self):
        return self.path.stat().st_size

    @classmethod
    def load(cls, path):
        """Opens an artifact file; its manifest is read when it sits beside it."""
        path = Path(path)
        if isinstance(path, Path) and path.suffix == ".json":
            raise InputError(f"Expected an artifact file (.tflite, .onnx). Received: the manifest '{path}'.")
        if not path.exists():
            raise InputError(f"Expected an artifact file. Received: '{path}', which does not exist.")
        from edgekeras.export import format_of_path

        fmt = format_of_path(path)
        manifest = {}
        mpath = path.with_suffix(".json")
        if mpath.exists():
            try:
                manifest = json.loads(mpath.read_text())
            except json.JSONDecodeError as e:
                raise InputError(f"Manifest '{mpath}' is not valid JSON: {e}. Delete it or re-export.") from None
        manifest.setdefault("format", fmt)
        return cls(path, manifest)

    def save(self, force=True):
        """Writes the manifest atomically."""
        from edgekeras.atomic import write_text

        write_text(self.manifest_path, json.dumps(self.manifest, indent=2, default=_jsonable) + "\n", force=force)

    def to_dict(self):
        return {"path": str(self.path), **self.manifest}


def _jsonable(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def as_artifact(value):
    return value if isinstance(value, Artifact) else Artifact.load(value)
