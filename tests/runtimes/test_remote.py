"""`edgekeras bench --device ssh://...` against a real OpenSSH server on 127.0.0.1.

The test starts `sshd` on a free port with throwaway host and client keys, key-only login and
TMPDIR pointed at a folder of the test's, so every remote temporary folder is visible and the
tests can check it is gone afterwards. The "device" Python is one the test chooses with
--remote-python: this venv's, or a venv that has numpy and nothing else. Nothing is mocked.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bad_input, invoke
from test_runner import shim_python, tiny_artifacts, validate_document

import edgekeras as ek
from edgekeras.errors import InputError
from edgekeras.remote import SSHDevice, device_word, parse_ssh_url

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")),
    reason="OpenSSH server/client not installed (scripts/sysdeps.sh installs openssh-server, openssh-client)",
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running sshd and what a client needs to reach it."""

    def __init__(self, root):
        self.root, self.port, self.user = root, _free_port(), getpass.getuser()
        self.remote_tmp = root / "device-tmp"
        self.remote_tmp.mkdir()
        for name in ("host_key", "client_key", "stranger_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)], check=True
            )
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        host_pub = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    f"PidFile {root / 'sshd.pid'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    f"SetEnv TMPDIR={self.remote_tmp}",
                    "",
                ]
            )
        )
        try:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        except OSError as e:
            pytest.skip(f"sshd needs /run/sshd, which cannot be created here: {e}")
        self.log = open(root / "sshd.log", "w")  # noqa: SIM115  (kept open for the server's lifetime)
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip(f"sshd did not start: {(root / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.skip("sshd did not listen within 15 s")

    @property
    def url(self):
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def args(self, python=sys.executable, key="client_key", known_hosts="known_hosts"):
        return [
            "--device",
            self.url,
            "--identity",
            str(self.root / key),
            "--known-hosts",
            str(self.root / known_hosts),
            "--remote-python",
            str(python),
        ]

    def leftovers(self):
        """edgekeras' folders left in the device's TMPDIR (onnxruntime 1.32 itself leaves a '.ses' file)."""
        return sorted(p.name for p in self.remote_tmp.iterdir() if p.name.startswith("edgekeras-"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture
def odd(arts, tmp_path):
    """The int8 TFLite artifact and its manifest under a name with spaces and both quotes."""
    src = arts["tflite-int8"]
    target = tmp_path / 'my "odd" model\'s.tflite'
    shutil.copy(src.with_suffix(".json"), target.with_suffix(".json"))
    return Path(shutil.copy(src, target))


def test_remote_bench_of_an_odd_file_name(server, odd):
    res = invoke("bench", odd, *server.args(), "--runs", 20, "--threads", 1, "--json")
    assert res.exit_code == 0, res.output
    (result,) = validate_document(json.loads(res.stdout))
    assert result["device"] == server.url and result["artifact"] == str(odd)
    assert result["runtime"] == "litert" and result["runs"] == 20 and result["fresh_process"] is True
    assert result["sha256"] == __import__("hashlib").sha256(odd.read_bytes()).hexdigest()
    stored = json.loads(odd.with_suffix(".json").read_text())["benchmarks"]
    assert [b["device"] for b in stored] == [server.url]
    assert server.leftovers() == []  # the device's temporary folder is gone


def test_remote_bench_api_with_inputs_and_onnx(server, arts, tmp_path):
    art = Path(shutil.copy(arts["onnx-fp32"], tmp_path / "net.onnx"))
    device = SSHDevice(
        server.url,
        identity=str(server.root / "client_key"),
        known_hosts=str(server.root / "known_hosts"),
        python=sys.executable,
    )
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    res = ek.benchmark(art, device=device, inputs={"image": x}, batch_size=2, runs=10, warmup=1)
    validate_document({"schema_version": 1, "results": [res.to_dict()]})
    assert res.device == server.url and res.inputs == "file" and res.batch_size == 2
    assert res.details["node_providers"] == {"CPUExecutionProvider": res.details["nodes_total"]}
    assert server.leftovers() == []


def test_unreachable_device_names_host_and_port(arts):
    port = _free_port()  # nothing listens there
    res = invoke("bench", arts["tflite-fp32"], "--device", f"ssh://nobody@127.0.0.1:{port}")
    assert_bad_input(res, f"127.0.0.1:{port}", "connection refused")


def test_refused_key(server, arts):
    res = invoke("bench", arts["tflite-fp32"], *server.args(key="stranger_key"))
    assert_bad_input(res, "refused the key", "stranger_key", "authorized_keys")
    assert server.leftovers() == []


def test_unknown_host_key_then_accept_new(server, arts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    args = server.args()
    args[args.index("--known-hosts") + 1] = str(empty)
    assert_bad_input(invoke("bench", arts["tflite-fp32"], *args), "--accept-new-host-key", f"127.0.0.1:{server.port}")
    assert empty.read_text() == ""  # strict checking recorded nothing
    res = invoke("bench", arts["tflite-fp32"], *args, "--accept-new-host-key", "--runs", 5)
    assert res.exit_code == 0, res.output
    assert (server.root / "host_key.pub").read_text().split()[1] in empty.read_text()


def test_changed_host_key_is_refused_even_with_accept_new(server, arts, tmp_path):
    forged = tmp_path / "known_hosts"
    other = (server.root / "stranger_key.pub").read_text().split()
    forged.write_text(f"[127.0.0.1]:{server.port} {other[0]} {other[1]}\n")
    args = server.args()
    args[args.index("--known-hosts") + 1] = str(forged)
    assert_bad_input(invoke("bench", arts["tflite-fp32"], *args, "--accept-new-host-key"), "changed", "ssh-keygen -R")


def test_device_without_a_runtime(server, arts, tmp_path):
    numpy_only = shim_python(tmp_path / "numpy-only", ["numpy", "numpy.libs", "numpy-*.dist-info"])
    res = invoke("bench", arts["tflite-fp32"], *server.args(python=numpy_only))
    assert_bad_input(res, f"On {server.url}", "pip install ai-edge-litert", str(numpy_only))
    res = invoke("bench", arts["onnx-fp32"], *server.args(python=numpy_only))
    assert_bad_input(res, "pip install onnxruntime")
    assert server.leftovers() == []  # cleaned up after a failure too


def test_device_without_that_python(server, arts):
    res = invoke("bench", arts["onnx-fp32"], *server.args(python="/nonexistent/python3"))
    assert_bad_input(res, "'/nonexistent/python3'", "--remote-python")
    assert server.leftovers() == []


@pytest.mark.parametrize(
    "url, names",
    [
        ("user@host", ["not an ssh:// URL", "Did you mean 'ssh://user@host'?"]),
        ("http://user@host", ["not an ssh:// URL"]),
        ("ssh://user@host:port", ["port must be a number"]),
        ("ssh://user@host:70000", ["port must be a number"]),
        ("ssh://user@host:0", ["port must be a number"]),
        ("ssh://user@", ["is not a host name"]),
        ("ssh://user@-oProxyCommand=touch", ["is not a host name"]),
        ("ssh://us er@host", ["is not a user name"]),
        ("ssh://user:secret@host", ["password"]),
        ("ssh://user@host/models", ["path"]),
    ],
)
def test_malformed_ssh_url(arts, url, names):
    assert_bad_input(invoke("bench", arts["tflite-fp32"], "--device", url), "--device", *names)


def test_url_forms():
    assert parse_ssh_url("ssh://pi@raspberrypi.local") == ("pi", "raspberrypi.local", None)
    assert parse_ssh_url("ssh://root@10.0.0.7:2222") == ("root", "10.0.0.7", 2222)
    assert parse_ssh_url("ssh://[fe80::1]:22") == (None, "fe80::1", 22)
    assert SSHDevice("ssh://pi@board").url == "ssh://pi@board"  # the port is left to ~/.ssh/config
    assert "-p" not in SSHDevice("ssh://pi@board").ssh_command("true")
    with pytest.raises(InputError, match="Expected --identity to be a private key file"):
        SSHDevice("ssh://pi@board", identity="/no/such/key")


def test_temp_folder_lives_in_the_device_tmpdir(server):
    """The leftover checks above look where the runner's folder really goes."""
    device = SSHDevice(
        server.url, identity=str(server.root / "client_key"), known_hosts=str(server.root / "known_hosts")
    )
    folder = device.make_temp_dir()
    assert Path(folder).parent == server.remote_tmp and server.leftovers() == [Path(folder).name]
    device.remove(folder)
    assert server.leftovers() == []


def test_remote_command_quotes_everything(server):
    """What the device's shell receives runs only `sh -c` with one quoted script."""
    device = SSHDevice(
        server.url, identity=str(server.root / "client_key"), known_hosts=str(server.root / "known_hosts")
    )
    out = device.run("printf '%s\\n' \"$0\" ; echo done", timeout=60)
    assert out.splitlines() == ["sh", "done"]
    home = device.run("echo $HOME", timeout=60).strip()
    assert device.run("printf '%s\\n' " + device_word("~/my 'odd' dir"), timeout=60).strip() == home + "/my 'odd' dir"
    argv = device.ssh_command("echo 'a b'")
    assert argv[-1] == "sh -c 'echo '\"'\"'a b'\"'\"''" and argv[-3] == "--"
    assert {"BatchMode=yes", "PasswordAuthentication=no", "StrictHostKeyChecking=yes"} <= set(argv)
