"""Shared fixtures and helpers.

Layout: tests/<area>/test_*.py mirrors the package (cli, conversion, validation, inspection,
runtimes, training, models, reporting, coverage, architecture, end_to_end). The folders are not
packages (no __init__.py): pytest puts each test file's folder and this one on sys.path, so
`from conftest import ...` works everywhere and every test file's name must be unique across
folders (pytest stops with "import file mismatch" otherwise). No other conftest.py: this one
is the only module named `conftest`.

CLI helpers (import them: `from conftest import invoke, assert_bad_input`):
- `invoke(*args)`: `edgekeras ARGS` in-process through click's CliRunner (TensorFlow is
  imported once per test process);
- `run_script(*args, cwd=...)`: the installed `edgekeras` console script in a subprocess (the
  real process boundary: exit status, stderr, C++ log noise);
  both return an `Outcome` (exit code, stdout, stderr);
- `run_python(code)`: `code` in a fresh Python of this venv, its stdout (fails on a non-zero exit);
  `run_without_tensorflow(code)` also fails if the child imported TensorFlow or Keras (or any
  of `heavy`); in both, `run_cli(*args)` runs the CLI in-process in the child;
- `assert_bad_input(outcome, *names)`: exit 2, one `Error: ...` naming each of `names`, no traceback;
- `snapshot(root)` / `assert_unchanged(before, root)`: nothing added, removed or modified under
  `root` (no half-written artifact, no hidden temporary file);
- the `ws` fixture: an empty folder that is also the current directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("EDGEKERAS_CHECK_MANIFESTS", "1")  # every manifest written is checked against its schema

REPO = Path(__file__).resolve().parent.parent  # the checkout under test (tests/ mirrors its package)
FIXTURES = REPO / "tests" / "fixtures"  # files tests read as they are
EDGEKERAS = Path(sys.executable).parent / "edgekeras"  # the console script of this venv
CLI_ENV = {"EDGEKERAS_PROGRESS": "0"}  # no progress bars in captured output


@dataclasses.dataclass
class Outcome:
    """What one CLI call did, the same for in-process and subprocess calls."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None
    exc_info: tuple | None = None

    @property
    def output(self):
        return self.stdout + self.stderr

    def json(self):
        """stdout as the one JSON document a `--json` command prints."""
        return json.loads(self.stdout)

    def describe(self):
        text = f"exit code {self.exit_code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        if self.exc_info and not isinstance(self.exception, SystemExit):
            text += "\n--- uncaught exception ---\n" + "".join(traceback.format_exception(*self.exc_info))
        return text


def invoke(*args, env=None):
    """Runs `edgekeras ARGS` in-process (in the current directory)."""
    from edgekeras.cli import cli  # not at the top: edgekeras reads EDGEKERAS_PROGRESS, set above, at import

    result = CliRunner(env={**CLI_ENV, **(env or {})}).invoke(cli, [str(a) for a in args], prog_name="edgekeras")
    return Outcome(result.exit_code, result.stdout, result.stderr, result.exception, result.exc_info)


def run_script(*args, cwd=None, env=None, timeout=300):
    """Runs the installed `edgekeras` console script in a subprocess; `env` is added to this
    process's environment (which carries PYTHONPATH to the code under test)."""
    proc = subprocess.run(
        [str(EDGEKERAS), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **CLI_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


# What a fresh Python runs before a test's code: the CLI in-process, as `invoke` does here.
CHILD_PRELUDE = """\
import sys
from click.testing import CliRunner
from edgekeras.cli import cli


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])

"""
HEAVY_MODULES = ("tensorflow", "keras", "tf2onnx", "onnxruntime", "ai_edge_litert")  # what light modules must not load
_LOADED = "--- heavy modules loaded ---"


def run_python(code, *, timeout=300):
    """Runs `code` in a fresh Python of this venv (environment as here: PYTHONPATH reaches the code
    under test, progress off) after `CHILD_PRELUDE`; fails the test unless it exits 0. Its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + code],
        env={**os.environ, **CLI_ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"the child Python exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def run_without_tensorflow(code, *, heavy=("tensorflow", "keras"), timeout=300):
    """`run_python(code)`, failing the test if the child imported any of `heavy`; its stdout."""
    out = run_python(
        f"{code}\nprint({_LOADED!r}, *sorted(m for m in {tuple(heavy)!r} if m in sys.modules))", timeout=timeout
    )
    printed, _, loaded = out.rpartition(_LOADED)
    assert loaded.split() == [], f"the child imported {loaded.split()}:\n{printed}"
    return printed


def assert_bad_input(outcome, *names, suggestion=None):
    """Exit 2, one 'Error: ...' on stderr naming every `names`, the suggestion, no traceback."""
    info = outcome.describe()
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (
        f"an exception escaped the CLI (a bug, not an input error):\n{info}"
    )
    assert "Traceback" not in outcome.output, f"a traceback reached the user:\n{info}"
    assert outcome.exit_code == 2, f"expected exit code 2 (bad input):\n{info}"
    assert "Error: " in outcome.stderr, f"expected 'Error: ...' on stderr:\n{info}"
    for name in names:
        assert str(name) in outcome.stderr, f"expected the message to name {str(name)!r}:\n{info}"
    if suggestion is not None:
        assert f"Did you mean '{suggestion}'?" in outcome.stderr, (
            f"expected the suggestion \"Did you mean '{suggestion}'?\":\n{info}"
        )


def snapshot(root):
    """{relative path: content hash, or 'dir'} of everything under `root`, hidden files included."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_unchanged(before, root):
    """Nothing under `root` differs from the `snapshot` `before`."""
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), (
        f"files changed under {root}: added {added}, removed {removed}, modified {changed}"
    )


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """An empty workspace that is also the current directory (default outputs land here)."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def digits_recipe(**overrides):
    """The shipped demo recipe with fewer epochs, as a dict."""
    from edgekeras.recipe import load_recipe

    recipe = load_recipe("digits-cnn").to_dict()
    recipe["fit"]["epochs"] = 12
    for section, values in overrides.items():
        if isinstance(values, dict):
            recipe[section].update(values)
        else:
            recipe[section] = values
    return recipe


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One trained digits run with TFLite and ONNX artifacts at fp32 and int8, shared by tests."""
    import edgekeras as ek

    out = tmp_path_factory.mktemp("digits") / "run"
    return ek.train(digits_recipe(), out=out)


@pytest.fixture(scope="session")
def digits_artifacts(digits_run, tmp_path_factory):
    """{(format, precision): Artifact}: the trained digits CNN in every (format, precision) pair,
    each with its default recipe, validated on its test split. Converted once; copy to modify."""
    import edgekeras as ek

    out = tmp_path_factory.mktemp("every-pair")
    common = dict(calibration=digits_run.data.calibration(), data=digits_run.data.test, out=out)
    arts = ek.convert(
        digits_run.model, formats=["tflite"], precisions=["fp32", "fp16", "dynamic", "int8", "int16x8"], **common
    )
    arts += ek.convert(digits_run.model, formats=["onnx"], precisions=["fp32", "fp16", "dynamic", "int8"], **common)
    return {(a.format, a.precision): a for a in arts}
