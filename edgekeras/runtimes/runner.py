"""Runs the on-device runner as a process -- here or on a device through ssh -- and reads its JSON.

The runner's command line is built once (`runner_args`) for both places. While it runs, its
progress lines on stderr drive edgekeras' progress bar; when it fails, its one
`edgekeras_runner: error: ...` line (exit 2), or the signal that killed it, becomes an
`InputError` naming the artifact.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading

from edgekeras import quiet
from edgekeras.devices import RUNNER_PATH
from edgekeras.devices.edgekeras_runner import ERROR_PREFIX, PROGRESS_PREFIX
from edgekeras.errors import InputError
from edgekeras.progress import Progress

# runtime option -> how the runner's command line spells it (None: leave it out)
_OPTION_FLAGS = {
    "provider": lambda v: ["--provider", str(v)],
    "delegate": lambda v: ["--delegate", str(v)],
    "xnnpack": lambda v: [] if v else ["--no-xnnpack"],
}


def runner_args(
    model,
    runtime=None,
    threads=None,
    runs=100,
    warmup=10,
    batch_size=1,
    inputs=None,
    inputs_label=None,
    options=None,
    outputs=None,
):
    """The runner's arguments (after the script path) for one benchmark, JSON and progress on;
    with `outputs` (a .npz path) for running every row of `inputs` instead, saving the outputs."""
    args = [
        str(model),
        "--json",
        "--progress-lines",
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        "--batch-size",
        str(batch_size),
    ]
    if runtime:
        args += ["--runtime", runtime]
    if threads:
        args += ["--threads", str(threads)]
    if inputs:
        args += ["--inputs", str(inputs)] + (["--inputs-label", str(inputs_label)] if inputs_label else [])
    for name, value in (options or {}).items():
        if value is not None:
            args += _OPTION_FLAGS[name](value)
    return args + (["--outputs", str(outputs)] if outputs else [])


def local_command(args):
    """This Python running the runner file: the child has the same packages as edgekeras."""
    return [sys.executable, str(RUNNER_PATH), *args]


def run_runner(command, label, runs, progress=True, where="", explain=None):
    """Runs `command` (which starts the runner) and returns the JSON document it prints.

    `label` names the benchmark in the progress bar and in errors; `where` prefixes error
    messages (e.g. "On ssh://pi@board:22: "); `explain(returncode, stderr_lines)` may turn a
    failure of the transport (ssh) into an error first.
    """
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    lines = []
    try:
        with contextlib.ExitStack() as stack:
            bar = None  # opened at the first timed run, so a model that fails to load shows no bar
            for line in proc.stderr:
                if line.startswith(PROGRESS_PREFIX):
                    if bar is None:
                        bar = stack.enter_context(Progress(f"Benchmarking {label}", runs) if progress else NoBar())
                    bar.update(int(line[len(PROGRESS_PREFIX) :].split("/")[0]) - bar.count)
                    continue
                lines.append(line.rstrip("\n"))
                if quiet.VERBOSE:
                    os.write(quiet.real_stderr_fd(), line.encode("utf-8", "replace"))
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not leave the runner (or ssh) behind
            proc.kill()
            proc.wait()
    reader.join()
    if returncode != 0:
        raise (explain and explain(returncode, lines)) or _failure(returncode, lines, label, where)
    try:
        return json.loads(out[0] if out else "")
    except json.JSONDecodeError:
        raise InputError(
            f"{where}Expected the runner to print a JSON document for {label}. Received: "
            f"{(out[0] if out else '')[:200]!r}."
        ) from None


def _failure(returncode, lines, label, where):
    errors = [line[len(ERROR_PREFIX) :] for line in lines if line.startswith(ERROR_PREFIX)]
    if errors:
        return InputError(where + errors[-1])
    crash = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else None
    if crash:
        try:
            name = signal.Signals(crash).name
        except ValueError:
            name = f"signal {crash}"
        return InputError(
            f"{where}The runtime crashed ({name}) while benchmarking {label}. Expected an artifact this "
            "runtime can run; try --no-xnnpack, another precision or runtime, or --verbose for the runtime's log."
        )
    tail = " / ".join(line.strip() for line in lines if line.strip())[-500:]
    return InputError(
        f"{where}The runner failed (exit code {returncode}) while benchmarking {label}: {tail or 'no message'}."
    )


class NoBar:
    """A progress bar that shows nothing (progress=False)."""

    count = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def update(self, n=1, status=""):
        self.count += n
