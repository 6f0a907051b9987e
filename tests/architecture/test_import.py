"""`import edgekeras` and `edgekeras --help` must not import TensorFlow."""

import subprocess
import sys
from pathlib import Path


def _modules_after(code):
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return set(out)


def test_import_does_not_load_tensorflow():
    mods = _modules_after("import edgekeras")
    assert "tensorflow" not in mods and "keras" not in mods


def test_runtimes_and_bench_do_not_load_tensorflow():
    mods = _modules_after(
        "import edgekeras.bench, edgekeras.runtimes.litert, edgekeras.runtimes.onnxruntime,"
        " edgekeras.artifact, edgekeras.reporting"
    )
    assert "tensorflow" not in mods


def test_cli_help_does_not_load_tensorflow():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom edgekeras.cli import cli\n"
        "for args in ([], ['convert'], ['train'], ['validate'], ['bench'], ['demo']):\n"
        "    r = CliRunner().invoke(cli, args + ['--help'])\n    assert r.exit_code == 0, r.output\n"
        "assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_console_script_help():
    exe = Path(sys.executable).parent / "edgekeras"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for command in ("train", "convert", "validate", "bench", "demo"):
        assert command in r.stdout
