"""Without a terminal (CI logs), `edgekeras train` prints one line per epoch as it ends."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

EXE = str(Path(sys.executable).parent / "edgekeras")
EPOCHS = 3
LINE = re.compile(rf"^Epoch (\d+)/{EPOCHS} loss=\S+ accuracy=\S+ val_loss=\S+ val_accuracy=\S+ \d+\.\ds$")


def test_piped_stderr_gets_one_line_per_epoch_while_training(tmp_path):
    recipe = {
        "name": "lines",
        "data": {"source": "digits", "flatten": True},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [{"Dense": {"units": 10, "activation": "softmax"}}],
        },
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": EPOCHS},
        "export": {"formats": []},
    }
    path = tmp_path / "lines.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "EDGEKERAS_PROGRESS": "1"}  # the suite turns progress off
    cmd = [EXE, "train", str(path), "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines, running_at_first = [], None
    for line in proc.stderr:
        if LINE.match(line.rstrip("\n")) and running_at_first is None:
            running_at_first = proc.poll() is None
        lines.append(line.rstrip("\n"))
    assert proc.wait() == 0, "\n".join(lines)
    epochs = [int(m.group(1)) for m in map(LINE.match, lines) if m]
    assert epochs == [1, 2, 3], "\n".join(lines)
    assert running_at_first, "the first epoch's line must reach the log while training goes on"
    assert not any("\r" in line or "\x1b[" in line for line in lines)  # no bar redraws in a log
