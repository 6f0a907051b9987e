"""An exported file and its `NAME.json` manifest (`edgekeras.manifest.Manifest`)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.errors import InputError
from edgekeras.formats import format_of_path
from edgekeras.manifest import Manifest

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict, PathLike


@dataclass
class Artifact:
    """A `.tflite`/`.onnx` file plus its manifest (format, precision, hashes, results)."""

    path: Path
    manifest: Manifest = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.manifest is None:
            self.manifest = Manifest.read(self.path)

    @property
    def manifest_path(self) -> Path:
        return self.manifest.path

    @property
    def format(self) -> str:
        """The manifest's format, else the one the file's suffix names."""
        return self.manifest.get("format") or format_of_path(self.path)

    @property
    def precision(self) -> str | None:
        return self.manifest.get("precision")

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @classmethod
    def load(cls, path: PathLike) -> Artifact:
        """Opens an artifact file; its manifest is read when it sits beside it."""
        path = Path(path)
        if path.suffix == ".json":
            raise InputError(f"Expected an artifact file (.tflite, .onnx). Received: the manifest '{path}'.")
        if not path.exists():
            raise InputError(f"Expected an artifact file. Received: '{path}', which does not exist.")
        format_of_path(path)  # an unknown suffix is an InputError naming the known ones
        return cls(path, Manifest.read(path))

    def to_dict(self) -> JSONDict:
        return {"path": str(self.path), **self.manifest.to_dict(), "format": self.format}


def gzip_size(path: str | Path, level: int = 9, chunk: int = 1 << 20) -> int:
    """Bytes of `gzip -9` of the file (what a download or an app bundle stores), streamed in
    `chunk`-sized pieces so memory stays bounded, without writing anything."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            size += len(compressor.compress(block))
    return size + len(compressor.flush())


def as_artifact(value: Artifact | PathLike) -> Artifact:
    """`value` itself when it is an `Artifact`, else the artifact file it names."""
    return value if isinstance(value, Artifact) else Artifact.load(value)
