"""`edgekeras coverage --applications`: runs keras.applications rows and keeps the table current.

Results are cached per architecture in the JSON beside the markdown: a run resumes where the
last one stopped (architectures without a result for every chosen column run; the others are
kept), `only` reruns the named ones, and both files are rewritten after every row, so an
interrupted run loses one row at most. One architecture at a time, each in its own child
process at nice 19 under a memory limit (`matrix.run_family_isolated`); rows run smallest
first where an earlier run recorded their size. This module imports no TensorFlow: even the
list of architectures comes from a child (`python -m edgekeras.coverage.applications`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from edgekeras.coverage import applications, applications_table, matrix, table
from edgekeras.coverage.cell import pair_key
from edgekeras.coverage.memory import GB
from edgekeras.errors import InputError, expected_one_of
from edgekeras.progress import Progress

DEFAULT_OUT = "docs/applications.md"
DEFAULT_MEMORY_LIMIT_GB = 6.0
TIMEOUT = 3600  # seconds per architecture; EfficientNetB7 and the ConvNeXt models take tens of minutes on 2 cores
NICENESS = 19


def discover_in_child():
    """`applications.discover()` from a child process: [{name, module, min_size}]."""
    result = subprocess.run(
        [sys.executable, "-m", "edgekeras.coverage.applications"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "EDGEKERAS_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"Listing keras.applications failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def application_pairs(formats=None, precisions=None):
    """The columns: every exporter of the table's precisions, narrowed by the user's choice."""
    ours = [(f, p) for f, p in matrix.all_pairs() if p in applications.PRECISIONS]
    return matrix.select_pairs(formats, precisions, pairs=ours)


def _chosen(names, discovered):
    """The architectures `names` means (case-insensitive), checked against what Keras ships."""
    by_lower = {d["name"].lower(): d["name"] for d in discovered}
    chosen = []
    for name in names:
        if str(name).lower() not in by_lower:
            raise expected_one_of("--only", name, [d["name"] for d in discovered])
        chosen.append(by_lower[str(name).lower()])
    return list(dict.fromkeys(chosen))


def _complete(row, columns):
    return row is not None and all(c in row["cells"] for c in columns)


def plan(document, discovered, columns, only=None):
    """The architectures to run, in order: `only` as given, else those without a result for
    every column, smallest first where an earlier run recorded the parameter count."""
    if only:
        return _chosen(only, discovered)
    rows = {row["name"]: row for row in (document or {}).get("applications", [])}
    todo = [d["name"] for d in discovered if not _complete(rows.get(d["name"]), columns)]
    known = {n: rows[n]["params"] for n in todo if n in rows and rows[n].get("params")}
    return sorted(todo, key=lambda n: (n not in known, known.get(n, 0)))


def _new_document(discovered, columns):
    return {"generated_by": applications_table.GENERATED_BY, "discovered": discovered, "columns": columns}


def _merge_row(document, row):
    """`row` put into `document` (cells of columns not run this time are kept)."""
    rows = {r["name"]: r for r in document.get("applications", [])}
    kept = rows.get(row["name"])
    if kept is not None:
        row = {**row, "cells": {**kept["cells"], **row["cells"]}}
    rows[row["name"]] = row
    order = [d["name"] for d in document["discovered"]]
    document["applications"] = sorted(rows.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else 0)


def run_applications(
    out=DEFAULT_OUT,
    only=None,
    formats=None,
    precisions=None,
    memory_limit_gb=DEFAULT_MEMORY_LIMIT_GB,
    timeout=TIMEOUT,
    force=False,
    progress=True,
):
    """Runs the planned architectures (see `plan`) and rewrites `out` and its JSON after each.

    Returns (document, ran, regressions): the document as written, the names run, and
    'name: column (status)' for every cell that passed before and does not pass now.
    """
    if not memory_limit_gb or memory_limit_gb <= 0:
        raise InputError(f"Expected --memory-limit to be a positive number of GB. Received: {memory_limit_gb!r}.")
    table.check_replaceable(out, force)
    pairs = application_pairs(formats, precisions)
    previous = table.load_document(table.json_path(out))
    if previous is not None and previous.get("generated_by") != applications_table.GENERATED_BY:
        raise InputError(
            f"Expected --out to be the applications table. Received: '{out}', whose JSON holds another "
            "table (`edgekeras coverage` without --applications). Choose another --out."
        )
    discovered = discover_in_child()
    columns = [pair_key(*p) for p in pairs]
    names = plan(previous, discovered, columns, only)
    document = json.loads(json.dumps(previous)) if previous else _new_document(discovered, columns)
    order = [pair_key(*p) for p in matrix.all_pairs()]
    document.update(
        discovered=discovered,
        columns=sorted(set(document.get("columns", [])) | set(columns), key=order.index),
        memory_limit_bytes=int(memory_limit_gb * GB),
        niceness=NICENESS,
        tolerances={**document.get("tolerances", {}), **matrix.tolerances(pairs)},
    )
    info = {d["name"]: d for d in discovered}
    before = {r["name"]: r for r in document.get("applications", [])}
    bar = Progress("Applications", len(names) * len(pairs), " cells") if progress else None
    try:
        for name in names:
            if bar:
                bar.update(0, status=name)
            row = matrix.run_family_isolated(
                applications.family(name, info[name]),
                pairs,
                timeout=timeout,
                bar=bar,
                memory_limit=document["memory_limit_bytes"],
                niceness=NICENESS,
            )
            row.update(input_size=info[name]["min_size"], date=_today())
            _merge_row(document, row)
            document.update(date=_today(), versions=matrix.versions(), machine=matrix.machine())
            table.write(document, out, render=applications_table.render_markdown)
    finally:
        if bar:
            bar.close()
    if not names and previous is not None:  # nothing to run: the markdown is re-rendered all the same
        table.write(document, out, render=applications_table.render_markdown)
    return document, names, _regressions(before, document, names)


def _regressions(before, document, names):
    found = []
    for row in document.get("applications", []):
        if row["name"] not in names or row["name"] not in before:
            continue
        for column, entry in row["cells"].items():
            was = before[row["name"]]["cells"].get(column, {}).get("status")
            if was == "pass" and entry["status"] != "pass":
                found.append(f"{row['name']}: {column} ({entry['status']})")
    return found


def _today():
    return datetime.now(UTC).strftime("%Y-%m-%d")
