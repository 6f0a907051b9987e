"""Atomic writes: every file edgekeras produces appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgekeras.errors import OutputExistsError


def check_writable(path, force=False):
    """Raises `OutputExistsError` if `path` exists and `force` is false."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    return path


@contextlib.contextmanager
def atomic_path(path, force=False, suffix=None):
    """Yields a temporary path beside `path`; renames it onto `path` only on success.

    Works for files and directories (the caller creates whichever it needs at the
    temporary path). On error the temporary is removed and `path` is untouched.
    """
    path = check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_file_set(path, force=False):
    """Yields `path`'s name inside a temporary folder beside it; on success every file written
    in that folder moves beside `path`, `path` itself last (so a reader that finds it finds its
    companions, e.g. an ONNX model's external data file). On error nothing is moved.

    The files are named as they will be, so a file may refer to a companion by name.
    """
    path = check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield folder / path.name
        written = sorted(folder.iterdir(), key=lambda p: p.name == path.name)
        for file in written[:-1]:
            check_writable(path.parent / file.name, force)
        for file in written:
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_bytes(path, data, force=False):
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text, force=False):
    return write_bytes(path, text.encode("utf-8"), force)


def copy_path(source, path, force=False):
    """Copies a file or a folder to `path`; it appears whole or not at all."""
    with atomic_path(path, force) as tmp:
        if Path(source).is_dir():
            shutil.copytree(source, tmp)
        else:
            shutil.copy2(source, tmp)
    return Path(path)
