"""Where the YAML folders shipped with edgekeras live (targets/, quantize/).

In a source checkout they sit at the repository root; in an installed wheel they are package
data under `edgekeras/_shipped/NAME` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from edgekeras.errors import InputError

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name):
    for candidate in (_PACKAGE / "_shipped" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate

    raise InputError(
        f"Expected the shipped '{name}/' folder next to the edgekeras package. Received: none "
        "found; reinstall edgekeras."
    )
