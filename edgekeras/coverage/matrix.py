"""The coverage matrix: every family × every (format, precision) exporter, one child process
per family, results collected into one JSON-able document.

Each family runs in `python -m edgekeras.coverage.cell` (see `cell.py`). The child reports
each `convert` call before making it, so when a converter or runtime kills the child, the
pairs it was working on are known: a call covering several pairs is retried one pair per
call, and the pair that still kills its child becomes an "error: converter crashed (signal
SIGSEGV)" cell while the family's other pairs run on. A family that overruns `timeout`
has its unfinished cells marked as timed out. With a `memory_limit`, the child's process tree
is stopped when its resident memory passes the limit; the pairs it was converting are tried
again one per `convert` call, and a pair that still passes the limit alone becomes a "not
converted: needed more than N GB" cell (status "memory"); the others run on in a fresh child.
This module imports no TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from edgekeras import quiet
from edgekeras.coverage import memory
from edgekeras.coverage.cell import pair_key
from edgekeras.coverage.families import FAMILIES, get_family
from edgekeras.errors import InputError, expected_one_of
from edgekeras.export import EXPORTERS, _load_all, formats, get_exporter
from edgekeras.precisions import get_precision
from edgekeras.progress import Progress

FAMILY_TIMEOUT = 1800  # seconds; the slowest family (recurrent, every pair) takes ~2 minutes on 2 cores
POLL_SECONDS = 0.5
VERSIONED = ("edgekeras", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


def all_pairs():
    """Every registered (format, precision) exporter, formats in registry order. A precision
    built on another (auto: a search over int8 mixes) is no cell of its own."""
    _load_all()
    return [(f, p) for f in formats() for (ef, p) in EXPORTERS if ef == f and get_precision(p).base is None]


def select(families=None, formats=None, precisions=None):
    """(families, pairs) to run: the named ones (checked, case-insensitive), or all of them."""
    chosen = [get_family(n) for n in families] if families else list(FAMILIES.values())
    chosen = list({f.name: f for f in chosen}.values())
    return chosen, select_pairs(formats, precisions)


def select_pairs(formats=None, precisions=None, pairs=None):
    """The (format, precision) pairs of `pairs` (default: every exporter) that `formats` and
    `precisions` allow; unknown names, and choices that leave nothing, are InputErrors."""
    exporters = all_pairs()
    pairs = exporters if pairs is None else pairs
    for f in formats or []:
        get_exporter(f, "fp32")  # an unknown format is an error naming the valid ones
    for p in precisions or []:
        if not any(p == pp for _, pp in exporters):
            raise expected_one_of("--precision", p, sorted({pp for _, pp in exporters}))
    chosen = [(f, p) for f, p in pairs if (not formats or f in formats) and (not precisions or p in precisions)]
    if not chosen:
        raise InputError(
            f"Expected --format and --precision that name at least one exporter. Received: "
            f"formats {list(formats or [])}, precisions {list(precisions or [])}, which no "
            f"exporter combines (exporters: {', '.join(pair_key(*p) for p in pairs)})."
        )
    return chosen


def run_matrix(families, pairs, timeout=FAMILY_TIMEOUT, progress=True):
    """Runs every family × pair; returns the coverage document (see `table.py` for its form)."""
    started = time.perf_counter()
    rows = []
    total = len(families) * len(pairs)
    bar = Progress("Coverage", total, " cells") if progress else None
    try:
        for family in families:
            if bar:
                bar.update(0, status=family.name)
            rows.append(run_family_isolated(family, pairs, timeout, bar))
    finally:
        if bar:
            bar.close()
    return {
        "generated_by": "edgekeras coverage",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "versions": versions(),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "columns": [pair_key(*p) for p in pairs],
        "tolerances": tolerances(pairs),
        "families": rows,
    }


def run_family_isolated(family, pairs, timeout=FAMILY_TIMEOUT, bar=None, memory_limit=None, niceness=0):
    """One family's row, its cells converted in child processes (see the module docstring).

    `memory_limit`: bytes the child's process tree may hold (None: no limit); `niceness`: the
    children's nice value (19: run only when nothing else wants the CPU).
    """
    row = {
        "name": family.name,
        "group": family.group,
        "description": family.description,
        "seed": family.seed,
        "output_std": None,
        "inputs": None,
        "params": None,
        "seconds": 0.0,
        "peak_rss_bytes": None,
        "cells": {},
    }
    remaining, one_at_a_time = list(pairs), False
    deadline = time.monotonic() + timeout
    limits = {"deadline": deadline, "memory": memory_limit, "niceness": niceness}
    with tempfile.TemporaryDirectory(prefix="edgekeras-coverage-") as tmp:
        attempt = 0
        while remaining:
            attempt += 1
            job = Path(tmp) / f"attempt-{attempt}"
            job.mkdir()
            events, code = _run_child(family, remaining, one_at_a_time, job, limits, row, bar)
            started = None
            for event in events:
                if event["event"] == "family":
                    row["output_std"] = event.get("output_std")
                    row["inputs"] = event.get("inputs")
                    row["params"] = event.get("params")
                elif event["event"] == "start":
                    started = [tuple(p) for p in event["pairs"]]
            before, remaining = remaining, [p for p in remaining if pair_key(*p) not in row["cells"]]
            if code == 0 or not remaining:
                _give_up(row, remaining, "the cell runner reported no result", bar, family)
                break
            if code == "memory":  # the pairs being converted needed too much; the others may not
                stopped = [p for p in started if p in remaining] if started else list(remaining)
                if len(stopped) > 1 and started and not one_at_a_time:
                    one_at_a_time = True  # converted one at a time, some of them may fit
                    continue
                for pair in stopped:
                    row["cells"][pair_key(*pair)] = _over_memory(pair, memory_limit, building=started is None)
                    _advance(bar, pair, family)
                remaining = [p for p in remaining if p not in stopped]
                continue
            if code == "timeout" or attempt > len(pairs):
                _give_up(
                    row,
                    remaining,
                    f"timed out (the family's {timeout} s ran out)"
                    if code == "timeout"
                    else f"the process kept crashing ({_describe_exit(code)})",
                    bar,
                    family,
                )
                break
            cause = _describe_exit(code)
            unfinished = [p for p in (started or []) if p in remaining]
            if len(unfinished) == 1:  # the crash is pinned on one pair; the others run on
                pair = unfinished[0]
                row["cells"][pair_key(*pair)] = _error(pair, f"converter crashed ({cause})")
                _advance(bar, pair, family)
                remaining.remove(pair)
            elif not unfinished and len(remaining) == len(before):  # nothing to retry differently
                where = "building the model" if started is None else "between conversions"
                _give_up(row, remaining, f"the process crashed {where} ({cause})", bar, family)
                break
            one_at_a_time = True  # retry the rest one pair per convert call, so a crash names its pair
    row["cells"] = {pair_key(*p): row["cells"][pair_key(*p)] for p in pairs}
    return row


def _run_child(family, pairs, one_at_a_time, job, limits, row, bar):
    """Runs the child for `pairs`; returns (events, exit code, 'timeout' or 'memory'), filling
    row['cells'] and row['peak_rss_bytes'] (the child's process tree, sampled every poll)."""
    (job / "job.json").write_text(
        json.dumps({"family": family.ref or family.name, "pairs": pairs, "one_at_a_time": one_at_a_time})
    )
    env = {**os.environ, "EDGEKERAS_PROGRESS": "0", "EDGEKERAS_VERBOSE": "1" if quiet.VERBOSE else ""}
    niceness = limits.get("niceness") or 0
    with open(job / "stderr.log", "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "edgekeras.coverage.cell", str(job)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=quiet.real_stderr_fd() if quiet.VERBOSE else log,
            env=env,
            start_new_session=True,  # its own process group: stopping it stops what it started
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
        events, offset, code = [], 0, None
        started = time.perf_counter()
        try:
            while code is None:
                try:
                    code = child.wait(timeout=POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    code = _check_limits(child, limits, row)
                offset = _read_events(job / "events.jsonl", offset, events, row, bar, family)
        finally:
            if child.poll() is None:  # interrupted (Ctrl-C): stop the child this call started
                _stop(child)
        row["seconds"] = round(row["seconds"] + time.perf_counter() - started, 1)
    return events, code


def _check_limits(child, limits, row):
    """None while `child` may run on; 'timeout' or 'memory' once it has been stopped."""
    rss = memory.tree_rss(child.pid)
    if rss is not None:
        row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, rss)
    if limits.get("memory") and rss is not None and rss > limits["memory"]:
        _stop(child)
        return "memory"
    if time.monotonic() > limits["deadline"]:
        _stop(child)
        return "timeout"
    return None


def _stop(child):
    """Kills `child` and every process in its group (a converter child it started)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def _read_events(path, offset, events, row, bar, family):
    """Reads the complete lines appended to `path` since `offset`; records cells as they come."""
    if not path.exists():
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        event = json.loads(line)
        events.append(event)
        if event["event"] == "cell":
            pair = (event["format"], event["precision"])
            row["cells"][pair_key(*pair)] = {k: v for k, v in event.items() if k != "event"}
            _advance(bar, pair, family)
    return offset + end


def _give_up(row, pairs, reason, bar, family):
    for pair in pairs:
        row["cells"][pair_key(*pair)] = _error(pair, reason)
        _advance(bar, pair, family)


def _advance(bar, pair, family):
    if bar:
        bar.update(1, status=f"{family.name} {pair_key(*pair)}")


def _describe_exit(code):
    if isinstance(code, int) and code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _over_memory(pair, limit, building=False):
    where = "building the model" if building else f"converting to {pair_key(*pair)}"
    return {
        "format": pair[0],
        "precision": pair[1],
        "status": "memory",
        "max_abs_error": None,
        "cosine": None,
        "memory_limit_bytes": limit,
        "reason": (
            f"not converted: needed more than {memory.describe(limit)} (the process tree passed the memory "
            f"limit while {where} and was stopped; rerun with a higher --memory-limit where memory allows)"
        ),
    }


def _error(pair, reason):
    return {
        "format": pair[0],
        "precision": pair[1],
        "status": "error",
        "max_abs_error": None,
        "cosine": None,
        "reason": reason,
    }


def tolerances(pairs):
    """{precision: the default tolerance its cells were validated against}."""
    return {p: get_precision(p).tolerance.to_dict() for p in dict.fromkeys(p for _, p in pairs)}


def versions():
    """Versions of the packages the results depend on (absent ones left out)."""
    from importlib import metadata

    found = {}
    for dist in VERSIONED:
        for name in (dist, f"{dist}-cpu"):
            try:
                found[dist] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def machine():
    """The CPU the table was measured on: int8 kernels (and their accuracy) depend on it."""
    flags, model = set(), platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "neon", "asimd") if f in flags]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "simd": simd,
        "system": platform.system(),
        "architecture": platform.machine(),
    }


def merge(old, new):
    """`old` with `new`'s cells (and family facts) put in: an update of part of the table."""
    merged = {**old, **{k: v for k, v in new.items() if k not in ("families", "columns", "seconds")}}
    columns = list(old.get("columns", []))
    columns += [c for c in new["columns"] if c not in columns]
    order = [pair_key(*p) for p in all_pairs()]
    merged["columns"] = sorted(columns, key=lambda c: order.index(c) if c in order else len(order))
    rows = {r["name"]: r for r in old.get("families", [])}
    for row in new["families"]:
        if row["name"] in rows:
            kept = rows[row["name"]]
            rows[row["name"]] = {
                **kept,
                **{k: v for k, v in row.items() if k != "cells"},
                "cells": {**kept["cells"], **row["cells"]},
            }
        else:
            rows[row["name"]] = row
    names = list(FAMILIES)
    merged["families"] = sorted(
        rows.values(), key=lambda r: names.index(r["name"]) if r["name"] in names else len(names)
    )
    merged["tolerances"] = {**old.get("tolerances", {}), **new.get("tolerances", {})}
    merged["seconds"] = None  # a merged table has no single run time
    return merged


def regressions(old, new):
    """'family: column' for every cell that passed in `old` and does not pass in `new`."""
    before = {(r["name"], c): e["status"] for r in (old or {}).get("families", []) for c, e in r["cells"].items()}
    return [
        f"{r['name']}: {c} ({e['status']})"
        for r in new["families"]
        for c, e in r["cells"].items()
        if before.get((r["name"], c)) == "pass" and e["status"] != "pass"
    ]
