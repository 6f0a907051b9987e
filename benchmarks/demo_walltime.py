"""Prints the wall time of the whole demo (train, convert x4, validate, benchmark) in a fresh
process, as a user runs it: `edgekeras demo`. Set-up (venv, pip) is excluded.

    python benchmarks/demo_walltime.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    exe = Path(sys.executable).parent / "edgekeras"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [str(exe), "demo", "--out", str(Path(tmp) / "run")],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "EDGEKERAS_PROGRESS": "0"},
        )
        elapsed = time.perf_counter() - start
    print(f"demo wall time: {elapsed:.1f} s on {os.cpu_count()} CPU cores (target: <= 180 s)")


if __name__ == "__main__":
    main()
