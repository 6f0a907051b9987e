"""`edgekeras deploy --device ssh://...` against the real loopback sshd of test_remote.py.

The "device" is a Python with numpy and the runtimes and nothing else (no TensorFlow): it
computes the candidates' outputs on the labelled inputs and benchmarks them; this host
compares the outputs with the Keras model's and picks from the device's measurements.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_bad_input, invoke
from test_remote import SSHD, Server
from test_runner import runtime_packages, shim_python

pytestmark = pytest.mark.skipif(not os.path.exists(SSHD), reason="OpenSSH server not installed (scripts/sysdeps.sh)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("sshd-deploy"))
    yield srv
    srv.stop()


@pytest.mark.slow  # ~20 s: two candidates, each validated and benchmarked over a dozen ssh sessions
def test_a_remote_deploy_picks_from_the_devices_measurements(server, digits_run, ws):
    device_python = shim_python(ws.parent / "device-venv", runtime_packages())
    res = invoke(
        "deploy", digits_run.path, "--target", "x86-64-litert", "--accuracy-budget", "0.5",
        *server.args(python=device_python), "--max-candidates", "2", "--runs", "10", "--out", "dep", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.describe()
    (site,) = res.json()["sites"]
    assert site["device"] == server.url and site["site"] == f"x86-64-litert on {server.url}"
    measured = [r for r in site["rows"] if r["p50_ms"] is not None]
    assert len(measured) == 2
    for row in measured:  # outputs computed on the device, compared here; timed there
        assert row["validated_on"] == server.url and row["benchmarked_on"] == server.url
        manifest = json.loads(Path(row["artifact"]).with_suffix(".json").read_text())
        assert manifest["validation"]["measured_on"] == server.url
        assert [b["device"] for b in manifest["benchmarks"]] == [server.url]
        assert manifest["deployment"]["device"] == server.url
    eligible = [r for r in measured if r["status"] in ("chosen", "eligible")]
    assert site["chosen"] == min(eligible, key=lambda r: r["p50_ms"])["candidate"]
    chosen = json.loads(Path(site["chosen_artifact"]).with_suffix(".json").read_text())
    assert chosen["chosen"] is True and chosen["benchmarks"][0]["device"] == server.url
    assert server.leftovers() == []  # every temporary folder on the device is gone


def test_a_device_without_the_targets_runtime_is_bad_input(server, ws):
    numpy_only = shim_python(ws.parent / "numpy-only", ["numpy", "numpy.libs", "numpy-*.dist-info"])
    model = ws / "model.keras"
    model.write_bytes(b"never loaded: the device is checked first")
    res = invoke("deploy", model, "--target", "x86-64-litert", "--min-cosine", "0.99", *server.args(python=numpy_only))
    assert_bad_input(res, f"On {server.url}", "litert", "pip install ai-edge-litert", str(numpy_only))
    assert not (ws / "deploy").exists()  # nothing written


@pytest.mark.slow  # ~40 s: two candidates on each of two devices
def test_a_fleet_of_two_devices_measures_each_candidate_on_each_device(server, tmp_path_factory, digits_run, ws):
    """One target on two devices (two sshd on loopback, one key trusted by both): a table and a
    choice per device, every row validated and timed on its own device."""
    second = Server(tmp_path_factory.mktemp("sshd-fleet"))
    try:
        (second.root / "authorized_keys").write_text((server.root / "client_key.pub").read_text())
        known = ws / "fleet_known_hosts"
        known.write_text((server.root / "known_hosts").read_text() + (second.root / "known_hosts").read_text())
        device_python = shim_python(ws.parent / "device-venv", runtime_packages())
        res = invoke(
            "deploy", digits_run.path, "--target", "x86-64-litert", "--accuracy-budget", "0.5",
            "--device", server.url, "--device", second.url, "--identity", server.root / "client_key",
            "--known-hosts", known, "--remote-python", device_python,
            "--max-candidates", "2", "--runs", "10", "--out", "fleet", "--json",
        )  # fmt: skip
        assert res.exit_code == 0, res.describe()
        sites = {site["device"]: site for site in res.json()["sites"]}
        assert set(sites) == {server.url, second.url}
        for url, site in sites.items():
            measured = [r for r in site["rows"] if r["p50_ms"] is not None]
            assert len(measured) == 2 and {r["benchmarked_on"] for r in measured} == {url}
            assert {r["validated_on"] for r in measured} == {url}
            chosen = json.loads(Path(site["chosen_artifact"]).with_suffix(".json").read_text())
            assert chosen["chosen"] is True and chosen["deployment"]["device"] == url
        assert server.leftovers() == [] and second.leftovers() == []
    finally:
        second.stop()
