"""The standalone on-device runner (`edgekeras_runner.py`), shipped inside the package so that
`edgekeras bench --device` can copy it to a board; `devices/edgekeras_runner.py` in the
repository is a symlink to it. Keep this folder free of other modules: running the runner as
a script puts this folder first on `sys.path`, where a module named like a runtime would
shadow the real one.
"""

from pathlib import Path

RUNNER_PATH = Path(__file__).resolve().with_name("edgekeras_runner.py")
