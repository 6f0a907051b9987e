"""An exported file and its `NAME.json` manifest (`edgekeras.manifest.Manifest`)."""

from __future__ import annotations

import hashlib
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

    @property
    def external_files(self) -> list[Path]:
        """Files beside the artifact it needs (ONNX external data), as its manifest lists them."""
        return [self.path.parent / entry["file"] for entry in self.manifest.get("external_data") or []]

    def check_external_data(self) -> None:
        """Raises `InputError` when a file the manifest lists beside the artifact is missing or
        is not the one written with it (sha256): the runtime would fail, or run other weights."""
        for entry in self.manifest.get("external_data") or []:
            file = self.path.parent / entry["file"]
            if not file.exists():
                raise InputError(
                    f"Expected the external data file '{file}' beside '{self.path}' (its weights; listed in "
                    f"{self.manifest.path.name}). Received: no such file. Copy it along with the .onnx file, "
                    "or convert again."
                )
            digest = file_sha256(file)
            if digest != entry["sha256"]:
                raise InputError(
                    f"Expected the external data file '{file}' to be the one written with '{self.path.name}' "
                    f"(sha256 {entry['sha256'][:12]}...). Received: sha256 {digest[:12]}... ({file.stat().st_size} "
                    "bytes): altered or from another conversion. Copy the matching file, or convert again."
                )


def external_entry(path: str | Path) -> JSONDict:
    """The manifest's record of one external data file: name, sha256 and size."""
    path = Path(path)
    return {"file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, read in `chunk`-sized pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


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
