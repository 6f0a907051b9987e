"""Benchmarks on a device over SSH: copy the runner and the artifact, run it, bring the JSON back.

Uses the system `ssh` client, with key authentication only (ssh-agent or an identity file;
BatchMode, no password or keyboard-interactive prompts) and host key checking on
(StrictHostKeyChecking=yes; `accept_new_host_key` trusts a first-seen key, never a changed
one). Everything happens in a `mktemp -d` folder on the device, removed afterwards whatever
happened. Every remote path and argument is shell-quoted.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shlex
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from edgekeras.devices import RUNNER_PATH
from edgekeras.devices.edgekeras_runner import RUNTIMES as BACKENDS
from edgekeras.errors import InputError
from edgekeras.runtimes.runner import run_runner, runner_args

if TYPE_CHECKING:
    from edgekeras.hints import JSONDict, PathLike

log = logging.getLogger(__name__)
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/+-]+$")
_FORM = "ssh://user@host[:port]"

# ssh's own complaint (it exits 255) -> what to tell the user; the first match wins
_SSH_FAILURES = [
    (
        "Could not resolve hostname",
        "Could not resolve the host name '{host}'. Expected a host name or address "
        "this machine can reach; check --device.",
    ),
    (
        "Connection refused",
        "Could not connect to {hostport}: connection refused. Expected an SSH server "
        "listening there; check the host and port in --device and that sshd runs on the device.",
    ),
    (
        "timed out",
        "Could not connect to {hostport}: the connection timed out. Expected a reachable device; "
        "check that it is on and on this network, and the port in --device.",
    ),
    ("No route to host", "Could not connect to {hostport}: no route to host. Check the address in --device."),
    ("Network is unreachable", "Could not connect to {hostport}: the network is unreachable."),
    (
        "UNPROTECTED PRIVATE KEY FILE",
        "ssh ignored the identity file '{identity}' because others can read it. "
        "Run 'chmod 600 {identity}' and try again.",
    ),
    (
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "The host key of {hostport} changed since it was recorded in "
        "known_hosts. Expected the recorded key; if the device was reinstalled, remove the old key with "
        "'ssh-keygen -R {known_host}' (this is also what a man-in-the-middle looks like).",
    ),
    (
        "Host key verification failed",
        "Could not verify the host key of {hostport}: it is not in known_hosts{kh}. "
        "Expected a known host: connect once with 'ssh -p {port} {dest}' and check the fingerprint, or pass "
        "--accept-new-host-key to trust the key on first use.",
    ),
    (
        "Permission denied",
        "{dest} on port {port} refused the key{with_identity}. Expected a key listed in "
        "the device's ~/.ssh/authorized_keys (install it with 'ssh-copy-id -p {port} {dest}'), loaded in ssh-agent "
        "or passed with --identity FILE. Password login is off on purpose.",
    ),
]


def parse_ssh_url(url: object) -> tuple[str | None, str, int | None]:
    """(user or None, host, port or None) from `ssh://user@host[:port]`; `InputError` when malformed.

    What the URL leaves out (user, port) is left to ssh and its ~/.ssh/config (Host aliases,
    User, Port, ProxyJump keep working)."""
    text = str(url)
    bad = f"Expected --device as {_FORM}. Received: {text!r}"
    if not text.startswith("ssh://"):
        hint = f" Did you mean 'ssh://{text}'?" if "://" not in text and text else ""
        raise InputError(f"{bad}, which is not an ssh:// URL.{hint}")
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
        if port == 0:
            raise ValueError(port)
    except ValueError:
        raise InputError(f"{bad}: the port must be a number from 1 to 65535.") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"{bad}: it has a path, query or fragment; give only the user, host and port.")
    if parts.password is not None:
        raise InputError(f"{bad}: it holds a password. Only key authentication is used; drop ':password'.")
    user, host = parts.username, parts.hostname
    if not host or not (_HOST.match(host) or _is_ip(host)):
        raise InputError(f"{bad}: '{host or ''}' is not a host name or IP address.")
    if user is not None and not _USER.match(user):
        raise InputError(f"{bad}: '{user}' is not a user name (letters, digits, '.', '_', '-').")
    return user, host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class SSHDevice:
    """A device reached with `ssh://user@host[:port]`, and how to log in and run Python there."""

    url: str
    identity: str | None = None  # private key file; None: ssh-agent and ssh's defaults
    known_hosts: str | None = None  # known_hosts file; None: ssh's default (~/.ssh/known_hosts)
    accept_new_host_key: bool = False  # StrictHostKeyChecking=accept-new instead of yes
    python: str = "python3"  # the device's Python (a name on its PATH or a path)
    connect_timeout: int = 10
    user: str | None = field(init=False, default=None)
    host: str = field(init=False, default="")
    port: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        user, host, port = parse_ssh_url(self.url)
        for name, value in (
            ("user", user),
            ("host", host),
            ("port", port),
            ("url", f"ssh://{user + '@' if user else ''}{_bracket(host)}{f':{port}' if port else ''}"),
        ):
            object.__setattr__(self, name, value)
        for flag, value in (("--identity", self.identity), ("--known-hosts", self.known_hosts)):
            if value is not None and ('"' in str(value) or "\n" in str(value)):
                raise InputError(
                    f"Expected {flag} to be a file path without double quotes or newlines. Received: {str(value)!r}."
                )
        if self.identity is not None and not Path(self.identity).expanduser().is_file():
            raise InputError(
                f"Expected --identity to be a private key file. Received: '{self.identity}', which does not exist."
            )
        if not self.python or "\n" in self.python:
            raise InputError(f"Expected --remote-python to name the device's Python. Received: {self.python!r}.")

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _options(self) -> list[str]:
        checking = "accept-new" if self.accept_new_host_key else "yes"
        opts = [
            "-o",
            "BatchMode=yes",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            f"StrictHostKeyChecking={checking}",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.known_hosts:
            opts += ["-o", f'UserKnownHostsFile="{Path(self.known_hosts).expanduser()}"']
        if self.identity:
            opts += ["-i", str(Path(self.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        return opts

    def ssh_command(self, script: str) -> list[str]:
        """argv running the POSIX shell `script` on the device (quoted once more for its login shell)."""
        port = ["-p", str(self.port)] if self.port else []
        return [_binary("ssh"), *self._options(), *port, "--", self.destination, "sh -c " + shlex.quote(script)]

    def explain(self, returncode: int, lines: Sequence[str]) -> InputError | None:
        """The `InputError` for a failure of ssh itself (exit 255) or of the device's shell, or None."""
        text = "\n".join(lines)
        if returncode == 255:
            for pattern, message in _SSH_FAILURES:
                if pattern in text:
                    return InputError(message.format(**self._facts()))
            last = next((line.strip() for line in reversed(lines) if line.strip()), "no message")
            return InputError(f"ssh to {self._facts()['hostport']} failed: {last}")
        if returncode == 127 and "not found" in text and self.python.rsplit("/", 1)[-1] in text:
            return InputError(
                f"On {self.url}: Expected a Python 3 at '{self.python}' (--remote-python). Received: "
                f"'{lines[-1].strip()}'. Install python3 on the device or pass --remote-python /path/to/python."
            )
        return None

    def _facts(self) -> dict[str, Any]:
        port = self.port or 22  # ssh's default, unless ~/.ssh/config says otherwise
        known_host = self.host if port == 22 else f"[{self.host}]:{port}"
        return {
            "host": self.host,
            "port": port,
            "dest": self.destination,
            "hostport": f"{_bracket(self.host)}:{port}",
            "identity": self.identity,
            "known_host": known_host,
            "kh": f" ({self.known_hosts})" if self.known_hosts else "",
            "with_identity": f" from '{self.identity}'" if self.identity else " (ssh-agent and ssh's default keys)",
        }

    def run(self, script: str, timeout: float | None = 120) -> str:
        """Runs `script` on the device; returns its stdout, raises `InputError` when it fails."""
        proc = _run(self.ssh_command(script), timeout, self)
        if proc.returncode != 0:
            lines = proc.stderr.splitlines()
            raise self.explain(proc.returncode, lines) or InputError(
                f"On {self.url}: '{script}' failed (exit code {proc.returncode}): {proc.stderr.strip()[-300:]}"
            )
        return proc.stdout

    def make_temp_dir(self) -> str:
        out = self.run('mktemp -d "${TMPDIR:-/tmp}/edgekeras-bench.XXXXXX"').strip()
        if not _REMOTE_DIR.match(out):
            raise InputError(f"On {self.url}: Expected 'mktemp -d' to print a plain absolute path. Received: {out!r}.")
        return out

    def copy(self, files: Iterable[PathLike], remote_dir: str) -> None:
        """Copies local `files` into `remote_dir` under their own names.

        Streamed through ssh into `cat` rather than scp: scp needs the device's SFTP server,
        which minimal boards (dropbear) often lack; a shell and `cat` they all have.
        """
        for path in map(Path, files):
            target = shlex.quote(f"{remote_dir}/{path.name}")
            with path.open("rb") as stream:
                proc = _run(self.ssh_command(f"cat > {target}"), None, self, stdin=stream)
            if proc.returncode != 0:
                raise self.explain(proc.returncode, proc.stderr.splitlines()) or InputError(
                    f"On {self.url}: Expected to copy '{path.name}' to {remote_dir}. Received: "
                    f"{proc.stderr.strip()[-300:] or f'exit code {proc.returncode}'}."
                )

    def fetch(self, remote_path: str, timeout: float | None = 300) -> bytes:
        """The bytes of the device file `remote_path` (streamed back through `cat`, like `copy`)."""
        command = self.ssh_command(f"cat -- {shlex.quote(remote_path)}")
        try:
            proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise InputError(f"ssh to {self.url} did not answer within {timeout} s.") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").splitlines()
            raise self.explain(proc.returncode, lines) or InputError(
                f"On {self.url}: Expected to read back '{remote_path}'. Received: {' / '.join(lines)[-300:]}."
            )
        return proc.stdout

    def check_ready(self, runtimes: Iterable[str] = ()) -> None:
        """Logs in once and asks the device's Python for numpy and each runtime's module: an
        `InputError` (exit 2) naming what failed -- the host, the key, the host key, the Python,
        what to pip install -- before any work is done for the device."""
        wanted = {"numpy": (["numpy"], "pip install numpy")}
        for name in runtimes:
            backend: Any = BACKENDS[name]  # the runner's backend class (untyped: Python 3.7 file)
            wanted[name] = ([module.split(".")[0] for module, _ in backend.MODULES], backend.INSTALL)
        code = (
            "import importlib.util as u, json, sys; w = json.loads(sys.argv[1]); "
            "print(json.dumps([k for k, m in w.items() if not any(u.find_spec(n) for n in m)]))"
        )
        modules = json.dumps({k: v[0] for k, v in wanted.items()})
        out = self.run(f"{device_word(self.python)} -c {shlex.quote(code)} {shlex.quote(modules)}", timeout=60)
        try:
            missing = json.loads(out.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise InputError(
                f"On {self.url}: Expected '{self.python}' to be a Python 3. Received: {out[-200:]!r}."
            ) from None
        if missing:
            raise InputError(
                f"On {self.url}: Expected {', '.join(missing)} in the device's Python ('{self.python}', "
                f"--remote-python). Received: no such module. Install: {'; '.join(wanted[m][1] for m in missing)}."
            )

    def remove(self, remote_dir: str) -> None:
        """Removes the temporary folder; a failure is reported, not raised (the benchmark's error wins)."""
        try:
            self.run(f"rm -rf -- {shlex.quote(remote_dir)}")
        except InputError as e:
            log.warning(f"Could not remove {remote_dir} on {self.url}: {e}")


def as_device(device: str | SSHDevice | None) -> SSHDevice | None:
    """`device` as an `SSHDevice` (a URL gets ssh's defaults), or None for this machine."""
    if device is None or isinstance(device, SSHDevice):
        return device
    return SSHDevice(str(device))


def device_word(path: str) -> str:
    """`path` as one word of a device shell command; a leading `~/` is the device user's home
    (a quoted `~` would not expand)."""
    return '"$HOME"/' + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InputError(
            f"Expected the OpenSSH client ('{name}') on this machine for --device. Received: no "
            f"'{name}' on PATH. Install it (Debian/Ubuntu: apt-get install openssh-client)."
        )
    return path


def _run(
    command: list[str], timeout: float | None, device: SSHDevice, stdin: int | IO[Any] = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, stdin=stdin, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InputError(f"ssh to {device.url} did not answer within {timeout} s.") from None


def _check_names(device: SSHDevice, paths: Iterable[Path]) -> None:
    for path in paths:
        if "\n" in path.name or "\r" in path.name:
            raise InputError(
                f"Expected a file name without line breaks to copy to {device.url}. Received: {path.name!r}."
            )


def _runner_script(device: SSHDevice, remote_dir: str, args: Sequence[str]) -> str:
    return f"cd {shlex.quote(remote_dir)} && {device_word(device.python)} {shlex.quote(RUNNER_PATH.name)} " + " ".join(
        shlex.quote(a) for a in args
    )


def outputs_on_device(
    device: SSHDevice,
    artifact_path: PathLike,
    feeds: Mapping[str, Any],
    runtime: str | None = None,
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """{output name: array}: the artifact run by the on-device runner on every row of `feeds`
    ({input name: array}) on `device`, brought back for this host to compare with its reference."""
    import tempfile

    import numpy as np

    artifact_path = Path(artifact_path)
    _check_names(device, [artifact_path])
    with tempfile.TemporaryDirectory(prefix="edgekeras-outputs-") as local:
        inputs = Path(local) / "inputs.npz"
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in feeds.items()}  # Any: numpy's savez stubs
        np.savez(inputs, **arrays)
        remote_dir = device.make_temp_dir()
        try:
            device.copy([RUNNER_PATH, artifact_path, inputs], remote_dir)
            args = runner_args(
                f"./{artifact_path.name}",
                runtime=runtime,
                threads=threads,
                inputs="./inputs.npz",
                options=options,
                outputs="./outputs.npz",
            )
            label = f"{artifact_path.name} ({runtime or 'default runtime'}) on {device.host}"
            run_runner(
                device.ssh_command(_runner_script(device, remote_dir, args)),
                label,
                0,
                progress=False,
                where=f"On {device.url}: ",
                explain=device.explain,
            )
            fetched = Path(local) / "outputs.npz"
            fetched.write_bytes(device.fetch(f"{remote_dir}/outputs.npz"))
        finally:
            device.remove(remote_dir)
        with np.load(fetched, allow_pickle=False) as loaded:
            return {k: loaded[k] for k in loaded.files}


def benchmark_on_device(
    device: SSHDevice,
    artifact_path: PathLike,
    args: Mapping[str, Any],
    options: Mapping[str, Any],
    inputs: PathLike | None,
    inputs_label: str | None,
    progress: bool = True,
    companions: Sequence[PathLike] = (),
) -> JSONDict:
    """Runs the on-device runner on `device` for one artifact; returns its `result` dict.

    `args` are the runner's runtime/threads/runs/warmup/batch_size; `inputs` a local .npz/.npy
    path or None; `companions` files the artifact needs beside it (ONNX external data). The
    device needs Python 3, numpy and the runtime; nothing else is installed.
    """
    artifact_path = Path(artifact_path)
    _check_names(device, [artifact_path] + ([Path(inputs)] if inputs else []))
    remote_dir = device.make_temp_dir()
    try:
        device.copy([RUNNER_PATH, artifact_path, *companions] + ([inputs] if inputs else []), remote_dir)
        remote_args = runner_args(
            f"./{artifact_path.name}",
            inputs=f"./{Path(inputs).name}" if inputs else None,
            inputs_label=inputs_label,
            options=options,
            **args,
        )
        document = run_runner(
            device.ssh_command(_runner_script(device, remote_dir, remote_args)),
            f"{artifact_path.name} ({args['runtime']}) on {device.host}",
            args["runs"],
            progress,
            where=f"On {device.url}: ",
            explain=device.explain,
        )
    finally:
        device.remove(remote_dir)
    return document["results"][0]
