"""What a run folder records about its data, for inference and reports (no TensorFlow).

`data.json` holds the source, split sizes and what maps model numbers back to meaning:
`class_names` (label index -> name), feature names, categories, and the names of asset
files written beside it (e.g. `vectorizer.json`, the text vocabulary that turns raw strings
into the token ids the exported models take).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekeras.atomic import write_text
from edgekeras.errors import InputError

DATA_FILE = "data.json"


def write_assets(root, metadata, files=None):
    """Writes `metadata` to ROOT/data.json and each {name: text} in `files`, atomically."""
    root = Path(root)
    for name, text in (files or {}).items():
        write_text(root / name, text, force=True)
    return write_text(root / DATA_FILE, json.dumps(metadata, indent=2, default=str) + "\n", force=True)


def asset_path(path, name):
    """`path` itself if it is a file, else `path/name` (a run folder); must exist."""
    path = Path(path)
    target = path / name if path.is_dir() else path
    if not target.exists():
        raise InputError(
            f"Expected '{name}' in a run folder (or its path). Received: '{path}', where "
            f"'{target}' does not exist. Train with a recipe whose data section writes it."
        )
    return target


def read_data_info(path):
    """The `data.json` of a run folder (or the file itself) as a dict."""
    target = asset_path(path, DATA_FILE)
    try:
        return json.loads(target.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"Expected JSON in '{target}'. Received: a file that does not parse ({e}).") from None


def class_names(path):
    """Label index -> class name for a run folder, or None where the labels have no names."""
    return read_data_info(path).get("class_names")
