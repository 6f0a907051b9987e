"""How much memory a child process and everything it started holds, read from /proc.

The coverage runners convert each row in a child process; big keras.applications networks
need 10-25 GB during ONNX conversion, enough to run a shared machine out of memory and have
the kernel kill whatever it picks. `tree_rss` sums the resident set (VmRSS) of a process and
all its descendants, so a runner can stop a conversion above a limit and record it instead.
Linux only: elsewhere `tree_rss` returns None and no limit is enforced.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekeras.units import format_size

GB = 1024**3


def _parents():
    """{pid: parent pid} of every process visible in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def tree_pids(root):
    """`root` and every process descended from it."""
    children = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return 0


def tree_rss(root):
    """Resident bytes of process `root` and all its descendants, or None without /proc."""
    if not os.path.isdir("/proc/self"):
        return None
    return sum(_rss(pid) for pid in tree_pids(root))


def describe(nbytes):
    """'6.00 GiB', '512.00 MiB': the one size rule (`units.format_size`)."""
    return format_size(nbytes)
