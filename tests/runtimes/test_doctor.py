"""`edgekeras doctor`: what this machine's runtimes can actually run, probed with tiny models."""

import shutil

import pytest
from conftest import invoke

from edgekeras.doctor import parse_nvidia_smi

# nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits,
# as printed on an H200 machine (2026-12, driver 580)
H200 = "0, NVIDIA H200, 143771, 580.159.04\n"


def test_nvidia_smi_output_is_parsed():
    assert parse_nvidia_smi(H200) == [{"index": 0, "name": "NVIDIA H200", "memory_mib": 143771, "driver": "580.159.04"}]
    assert parse_nvidia_smi("") == []


def test_doctor_reports_what_each_runtime_runs_here():
    outcome = invoke("doctor", "--json")
    assert outcome.exit_code == 0, outcome.describe()
    report = outcome.json()
    assert set(report) == {"nvidia", "tensorflow", "onnxruntime", "litert", "problems"}
    assert "CPUExecutionProvider" in report["onnxruntime"]["usable"]
    assert "CPU" in report["litert"]["usable"]
    assert report["tensorflow"]["version"].startswith("2.")
    if shutil.which("nvidia-smi") is None:
        assert report["nvidia"]["gpus"] == [] and "nvidia-smi not found" in report["nvidia"]["note"]
        assert "CUDAExecutionProvider" not in report["onnxruntime"]["usable"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine may have a usable GPU")
def test_require_gpu_fails_without_one():
    outcome = invoke("doctor", "--require-gpu")
    assert outcome.exit_code == 1, outcome.describe()
    assert "Expected TensorFlow and ONNX Runtime to use a GPU" in outcome.stderr
    assert "NVIDIA GPUs:  none" in outcome.stdout
