"""Loads and runs an artifact once in a child process, so a runtime that crashes on it
(XNNPACK aborts on some unrolled, masked recurrent int8 models) is found at conversion time
instead of killing validation or a benchmark later.

`python -m edgekeras.export.probe PATH [--no-xnnpack]` exits 0 when one inference on zeros
works. No TensorFlow is imported: only numpy and the runtime.
"""

from __future__ import annotations

import subprocess
import sys

from edgekeras.runtimes import open_session


def runs(path, **options):
    """True if `path` loads and runs once in a child process with these runtime options."""
    args = [sys.executable, "-m", "edgekeras.export.probe", str(path)]
    if options.get("xnnpack") is False:
        args.append("--no-xnnpack")
    result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result.returncode == 0


def main(argv):
    import numpy as np

    options = {"xnnpack": False} if "--no-xnnpack" in argv else {}
    session = open_session(argv[0], **options)
    session.run({s.name: np.zeros([d or 1 for d in s.shape], s.dtype) for s in session.inputs})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
