"""`ek.benchmark` / `edgekeras bench`: the schema, the manifest, honest memory, delegation, errors.

Everything runs for real: the runner in child processes, LiteRT and ONNX Runtime, the CLI
through click and through the console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from conftest import EDGEKERAS, assert_bad_input, invoke, run_without_tensorflow
from test_runner import SCHEMA, tiny_artifacts, validate_document

import edgekeras as ek
from edgekeras.bench import BenchResult
from edgekeras.errors import InputError


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture
def copies(arts, tmp_path):
    """The artifacts and their manifests copied into a folder of this test's own."""
    out = {}
    for kind, path in arts.items():
        shutil.copy(path.with_suffix(".json"), tmp_path / path.with_suffix(".json").name)
        out[kind] = Path(shutil.copy(path, tmp_path / path.name))
    return out


def test_result_type_matches_the_schema():
    """BenchResult's fields are exactly the schema's result properties (one definition each side)."""
    assert {f.name for f in fields(BenchResult)} == set(SCHEMA["$defs"]["result"]["properties"])
    assert set(SCHEMA["$defs"]["result"]["required"]) == set(SCHEMA["$defs"]["result"]["properties"])


def test_benchmark_api_fills_schema_and_manifest(copies):
    art = copies["tflite-int8"]
    res = ek.benchmark(art, threads=1, runs=25, warmup=2)
    validate_document({"schema_version": 1, "results": [res.to_dict()]})
    assert res.artifact == str(art) and res.device is None and res.fresh_process and res.runs == 25
    assert 0 < res.latency_ms["min"] <= res.p50 <= res.latency_ms["p99"] <= res.latency_ms["max"]
    ek.benchmark(art, threads=1, runs=10, warmup=0)  # same setting: replaces the first
    ek.benchmark(art, threads=2, runs=10, warmup=0)  # another setting: kept beside it
    ek.benchmark(art, threads=1, runs=10, warmup=0, xnnpack=False)
    stored = json.loads(art.with_suffix(".json").read_text())["benchmarks"]
    settings = sorted((b["threads"], b["details"]["xnnpack"], b["runs"]) for b in stored)
    assert settings == [(1, False, 10), (1, True, 10), (2, True, 10)]
    validate_document({"schema_version": 1, "results": stored})


def test_peak_rss_is_the_benchmark_process_not_ours(copies):
    """This pytest process holds TensorFlow (hundreds of MB); the figure must not include it."""
    with open("/proc/self/status") as f:
        ours = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    res = ek.benchmark(copies["onnx-fp32"], runs=10, warmup=0, save=False)
    assert ours > 400, "the premise: TensorFlow is loaded in this process"
    assert 0 < res.baseline_rss_mb <= res.peak_rss_mb < ours / 2
    assert res.model_rss_mb == pytest.approx(res.peak_rss_mb - res.baseline_rss_mb)
    assert res.memory_scope == "since_load" and res.fresh_process is True
    here = ek.benchmark(copies["onnx-fp32"], runs=10, warmup=0, save=False, isolate=False)
    validate_document({"schema_version": 1, "results": [here.to_dict()]})
    assert here.fresh_process is False and here.baseline_rss_mb > res.baseline_rss_mb


def test_inputs_given_as_arrays_and_files(copies, tmp_path):
    x = np.random.default_rng(3).random((5, 8, 8, 1)).astype("float32")
    res = ek.benchmark(copies["onnx-fp32"], inputs={"image": x}, batch_size=4, runs=5, warmup=0, save=False)
    assert res.inputs == "file" and res.batch_size == 4
    np.savez(tmp_path / "data.npz", image=x, y=np.zeros(5))
    res = invoke("bench", copies["tflite-fp32"], "--inputs", tmp_path / "data.npz", "--runs", 5, "--json")
    assert res.exit_code == 0, res.output
    assert validate_document(json.loads(res.stdout))[0]["inputs"] == "file"
    with pytest.raises(InputError, match=r"Expected arrays named \['image'\] in the given inputs"):
        ek.benchmark(copies["onnx-fp32"], inputs={"pixels": x}, runs=2, save=False)
    np.savez(tmp_path / "bad.npz", pixels=x)
    assert_bad_input(invoke("bench", copies["onnx-fp32"], "--inputs", tmp_path / "bad.npz"), "bad.npz", "'image'")


def test_cli_folder_json_and_table(copies):
    folder = copies["onnx-fp32"].parent
    res = invoke("bench", folder, "--runs", 10, "--warmup", 1, "--threads", 1, "--json")
    assert res.exit_code == 0, res.output
    results = validate_document(json.loads(res.stdout))
    assert sorted(Path(r["artifact"]).name for r in results) == sorted(p.name for p in copies.values())
    res = invoke("bench", copies["tflite-fp32"], "--runs", 10)
    assert res.exit_code == 0, res.output
    assert "p50 ms" in res.stdout and "cold start ms" in res.stdout and "xnnpack" in res.stdout


def test_cli_shows_progress_and_keeps_tensorflow_out(copies, tmp_path):
    """Through the console script: the bar on stderr, and no TensorFlow in bench's process."""
    probe = (
        "import sys, runpy; sys.argv = ['edgekeras'] + sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv.pop(1), run_name='__main__')\n"
        "finally:\n    sys.stderr.write('TF loaded: %s\\n' % ('tensorflow' in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(EDGEKERAS), "bench", str(copies["tflite-int8"]), "--runs", "50"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EDGEKERAS_PROGRESS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Benchmarking tiny-tflite-int8.tflite (litert)" in proc.stderr and "50/50" in proc.stderr
    assert "TF loaded: False" in proc.stderr


@pytest.mark.parametrize(
    "args, names",
    [
        (["--runtime", "tflite"], ["--runtime", "'litert'"]),
        (["--provider", "CPUExecutionProvider"], ["litert", "provider"]),
        (["--delegate", "/no/such/libdelegate.so"], ["/no/such/libdelegate.so", "does not exist"]),
        (["--runs", "0"], ["--runs", ">= 1"]),
        (["--threads", "0"], ["--threads", ">= 1"]),
        (["--identity", "key"], ["--device"]),
    ],
)
def test_cli_bad_tflite_options(copies, args, names):
    before = copies["tflite-fp32"].with_suffix(".json").read_text()
    assert_bad_input(invoke("bench", copies["tflite-fp32"], *args), *names)
    assert copies["tflite-fp32"].with_suffix(".json").read_text() == before  # no benchmark recorded


def test_unavailable_provider_lists_the_available_ones(copies):
    import onnxruntime as ort

    res = invoke("bench", copies["onnx-fp32"], "--provider", "CUDAExecutionProvider")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert res.exit_code == 0, res.output
        return
    assert_bad_input(res, "'CUDAExecutionProvider'", *ort.get_available_providers())


def _cuda_reason():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime ({ort.__version__}) has no CUDAExecutionProvider (install onnxruntime-gpu)"
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi"], capture_output=True).returncode:
        return "no NVIDIA GPU here (nvidia-smi fails)"
    return None


@pytest.mark.skipif(_cuda_reason() is not None, reason=str(_cuda_reason()))
def test_cuda_provider_for_real(copies):
    res = ek.benchmark(copies["onnx-fp32"], provider="CUDAExecutionProvider", runs=20, save=False)
    validate_document({"schema_version": 1, "results": [res.to_dict()]})
    assert res.details["providers"][0] == "CUDAExecutionProvider"
    assert res.details["node_providers"].get("CUDAExecutionProvider", 0) > 0


def test_a_crashing_runtime_is_an_input_error():
    """A runner process killed by a signal (as a runtime segfault kills it) is a clear error."""
    from edgekeras.runtimes.runner import run_runner

    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(InputError, match=r"crashed \(SIGSEGV\) while benchmarking m\.tflite"):
        run_runner(crash, "m.tflite", runs=1, progress=False)
    silent = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    with pytest.raises(InputError, match=r"exit code 3.*boom"):
        run_runner(silent, "m.tflite", runs=1, progress=False)


def test_bench_remote_and_runner_modules_keep_tensorflow_out():
    code = (
        "import edgekeras.bench, edgekeras.remote, edgekeras.runtimes.runner, edgekeras.runtimes.litert, "
        "edgekeras.runtimes.onnxruntime, edgekeras.devices.edgekeras_runner, edgekeras.cli.bench\n"
        "assert run_cli('bench', '--help').exit_code == 0\n"
    )
    run_without_tensorflow(code)


@pytest.mark.slow
def test_sessions_keep_the_runtime_chatter_off_stderr(arts):
    """Validation and predict open sessions in edgekeras' own process: no 'INFO: Created ... XNNPACK'."""
    code = (
        "import numpy as np\nfrom edgekeras.runtimes import open_session\n"
        f"s = open_session({str(arts['tflite-fp32'])!r})\n"
        "out = s.run({'image': np.zeros((3, 8, 8, 1), 'float32')})\nprint(sorted(out), out['probs'].shape)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['probs'] (3, 10)" and "XNNPACK" not in proc.stderr, proc.stderr
