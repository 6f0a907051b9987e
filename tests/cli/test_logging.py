"""Messages go through `logging`: a Python caller captures or silences them, and the CLI shows
them on stderr at the level -v/--verbose or -q/--quiet chooses, before or after the command name."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import invoke, run_script

import edgekeras as ek
from edgekeras import progress, quiet
from edgekeras.cli import messages

# Dynamic-range quantization skips weight tensors under 1024 elements, and edgekeras warns
# that the artifact is float32 in all but name: a warning every conversion of a small model gives.
NOTHING_QUANTIZED = "float32 in all but name"
CONVERTING = "Converting tflite dynamic"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, name="out")], name="small")
    path = tmp_path_factory.mktemp("small") / "small.keras"
    model.save(path)
    return model, path


def _convert_dynamic(model, out):
    return ek.convert(model, formats=["tflite"], precisions=["dynamic"], out=out, validate=False)


def test_a_python_caller_captures_notes_and_warnings(small_model, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edgekeras")
    _convert_dynamic(small_model[0], tmp_path)
    found = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(n == "edgekeras.conversion" and lv == logging.INFO and CONVERTING in m for n, lv, m in found), found
    assert any(n == "edgekeras.conversion" and lv == logging.WARNING and NOTHING_QUANTIZED in m for n, lv, m in found)


def test_a_python_caller_silences_them(small_model, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # anything edgekeras logged would reach the root's capture
    caplog.set_level(logging.ERROR, logger="edgekeras")
    _convert_dynamic(small_model[0], tmp_path)
    assert not [r for r in caplog.records if r.name.startswith("edgekeras")]


def test_note_and_notice_log_on_the_calling_modules_logger(caplog):
    caplog.set_level(logging.INFO, logger="edgekeras")
    exec(
        "from edgekeras.progress import note, notice\nnote('a note')\nnotice('a notice')",
        {"__name__": "edgekeras.somewhere"},
    )
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("edgekeras.somewhere", logging.INFO, "a note"),
        ("edgekeras.somewhere", logging.INFO, "a notice"),
    ]


def test_the_cli_shows_notes_and_warnings_and_quiet_keeps_only_warnings(small_model, ws):
    convert = ["convert", small_model[1], "--format", "tflite", "--precision", "dynamic", "--no-validate", "--force"]
    shown = invoke(*convert)
    assert shown.exit_code == 0, shown.describe()
    assert CONVERTING in shown.stderr and shown.stderr.count(NOTHING_QUANTIZED) == 1, shown.describe()
    assert "Warning: tflite dynamic: the converter quantized no weights" in shown.stderr  # a warning says so
    for args in ([*convert, "--quiet"], ["-q", *convert], [*convert, "-q"]):
        quieted = invoke(*args)
        assert quieted.exit_code == 0, quieted.describe()
        assert CONVERTING not in quieted.stderr and NOTHING_QUANTIZED in quieted.stderr, quieted.describe()
    assert CONVERTING in invoke(*convert).stderr  # one run's --quiet does not carry over to the next


def test_verbose_after_the_command_shows_debug_messages(small_model, ws):
    """-v after the command name as before it: DEBUG messages (here: how the model loaded)."""
    level, verbose = logging.getLogger("edgekeras").level, quiet.VERBOSE
    convert = ["convert", small_model[1], "--format", "tflite", "--no-validate", "--force"]
    assert "Loading '" not in invoke(*convert).stderr
    for args in ([*convert, "--verbose"], ["-v", *convert], [*convert, "-v"], ["-q", *convert, "-v"]):
        r = invoke(*args)
        assert r.exit_code == 0 and "Loading '" in r.stderr and "custom objects: none" in r.stderr, r.describe()
    assert "Loading '" not in invoke(*convert, "-v", "-q").stderr  # the last one given wins
    assert (logging.getLogger("edgekeras").level, quiet.VERBOSE) == (level, verbose)  # restored after each run


def test_verbose_shows_the_converters_output_on_stderr_and_json_stays_alone_on_stdout(small_model, ws):
    """The TFLite converter prints 'fully_quantize: ...' to fd 1 from C++: with --verbose it is
    shown, on stderr, and stdout is still exactly one JSON document."""
    np.savez(ws / "calibration.npz", x=np.random.default_rng(0).random((32, 4), dtype=np.float32))
    r = run_script(
        "convert",
        small_model[1],
        "--format",
        "tflite",
        "--precision",
        "int8",
        "--calibration",
        "calibration.npz",
        "--no-validate",
        "--json",
        "--verbose",
        cwd=ws,
    )
    assert r.exit_code == 0, r.describe()
    assert r.json()["artifacts"][0]["precision"] == "int8"
    assert "fully_quantize" in r.stderr, r.describe()


def test_messages_reach_the_terminal_while_converter_output_is_captured():
    """A message logged while `quiet.captured_output` holds fds 1 and 2 is shown, not swallowed."""
    code = (
        "import logging\nfrom edgekeras import quiet\nfrom edgekeras.cli import messages\n"
        "with messages.terminal():\n"
        "    with quiet.captured_output() as captured:\n"
        "        print('converter chatter', flush=True)\n"
        "        logging.getLogger('edgekeras.somewhere').warning('shown')\n"
        "print('captured:', repr(captured.text))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stderr == "Warning: shown\n", proc
    assert proc.stdout == "captured: 'converter chatter\\n'\n", proc


def test_quiet_turns_progress_bars_off_for_the_run_only():
    enabled = progress.ENABLED
    progress.ENABLED = True
    try:
        with messages.terminal():
            messages.set_verbosity("quiet")
            assert progress.ENABLED is False and logging.getLogger("edgekeras").level == logging.WARNING
        assert progress.ENABLED is True
    finally:
        progress.ENABLED = enabled
