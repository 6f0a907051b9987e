"""The README's "short tour" runs as written, in order, from a fresh folder.

Every `edgekeras ...` line of the tour's code block is run verbatim (continuation lines
joined); only the line that needs a board over SSH (`--device ssh://...`) is left out — the
remote path is tested against a real sshd in test_remote.py.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

ROOT = REPO
EXE = str(Path(sys.executable).parent / "edgekeras")


def tour_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## A short tour\s+```bash\n(.*?)```", text, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("edgekeras ")]


def test_the_tour_has_every_step():
    verbs = [c.split()[1] for c in tour_commands()]
    assert verbs == ["train", "convert", "data", "validate", "inspect", "bench", "bench", "report"]


@pytest.mark.slow
def test_the_readme_tour_runs_verbatim(tmp_path):
    (tmp_path / "edgekeras").symlink_to(ROOT / "edgekeras")  # the tour's recipe path, relative to a clone
    env = {**os.environ, "EDGEKERAS_PROGRESS": "0"}
    for command in tour_commands():
        if "--device ssh://" in command:
            continue
        args = shlex.split(command)
        r = subprocess.run([EXE, *args[1:]], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"{command}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"
    report = (tmp_path / "runs/digits/report.md").read_text()
    assert "p50" in report and "digits-cnn-tflite-int8.tflite" in report
    # bench wrote its latencies into the run's manifests, which the report then shows
    assert re.search(r"digits-cnn-tflite-int8\.tflite.*\d+\.\d+", report)
