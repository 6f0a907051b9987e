"""`import edgekeras` and `edgekeras --help` must not import TensorFlow."""

import subprocess
import sys
from pathlib import Path

from conftest import run_without_tensorflow

import edgekeras


def test_import_does_not_load_tensorflow():
    out = run_without_tensorflow("import edgekeras\nprint(edgekeras.__version__, callable(edgekeras.convert))")
    assert out.split() == [edgekeras.__version__, "True"], out


def test_runtimes_and_bench_do_not_load_tensorflow():
    out = run_without_tensorflow(
        "import edgekeras.bench, edgekeras.runtimes.litert, edgekeras.runtimes.onnxruntime,"
        " edgekeras.artifact, edgekeras.reporting\n"
        "print(edgekeras.bench.benchmark.__name__, edgekeras.reporting.write_report.__name__)"
    )
    assert out.split() == ["benchmark", "write_report"], out


def test_cli_help_does_not_load_tensorflow():
    code = (
        "for args in ([], ['convert'], ['train'], ['validate'], ['bench'], ['demo']):\n"
        "    r = run_cli(*args, '--help')\n    assert r.exit_code == 0, r.output\n"
    )
    run_without_tensorflow(code)


def test_console_script_help():
    exe = Path(sys.executable).parent / "edgekeras"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for command in ("train", "convert", "validate", "bench", "demo"):
        assert command in r.stdout
