"""The standalone on-device runner: one file, numpy + one runtime, no TensorFlow, the bench schema.

Real runtimes and real processes throughout. The fast tests run the runner with this venv's
Python under `-I` and an import hook that records (and refuses) any TensorFlow/Keras/edgekeras
import, and in a venv that physically lacks TensorFlow (its site-packages link only numpy and
the runtimes). Slow tests pip-install fresh venvs: the pinned stack, and tflite-runtime 2.14
with numpy<2 (the path older boards take).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import REPO

ROOT = REPO
RUNNER = ROOT / "edgekeras" / "devices" / "edgekeras_runner.py"
SCHEMA = json.loads((ROOT / "edgekeras" / "schemas" / "bench.schema.json").read_text())
SITE = Path(np.__file__).resolve().parent.parent  # this venv's site-packages

# Runs the runner as __main__ under an import hook that refuses TensorFlow, Keras and edgekeras
# and writes what was attempted and what got imported to the file named by argv[1].
GUARD = """
import atexit, importlib.abc, json, runpy, sys
FORBIDDEN = ("tensorflow", "keras", "tf_keras", "edgekeras")
attempts = []
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            attempts.append(name)
            raise ImportError("forbidden in the on-device runner: " + name)
        return None
sys.meta_path.insert(0, Guard())
report, runner = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(report, "w").write(json.dumps(
    {"attempts": attempts, "modules": sorted({m.split(".")[0] for m in sys.modules})})))
sys.argv = sys.argv[2:]
runpy.run_path(runner, run_name="__main__")
"""


# --------------------------------------------------------------------------- shared helpers


def tiny_artifacts(tmp_path_factory):
    """TFLite fp32/int8 and ONNX fp32 artifacts (with manifests) of a tiny named-input CNN.

    Converted once per test session (cached under the session's base temp folder); tests copy
    what they modify."""
    folder = tmp_path_factory.getbasetemp() / "tiny-bench-artifacts"
    names = ["tiny-tflite-fp32.tflite", "tiny-tflite-int8.tflite", "tiny-onnx-fp32.onnx"]
    if not (folder / "done").exists():
        from edgekeras.quiet import quiet_tensorflow

        quiet_tensorflow()
        import keras

        import edgekeras as ek

        inp = keras.Input((8, 8, 1), name="image")
        x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
        x = keras.layers.Flatten()(x)
        model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(x), name="tiny")
        calibration = {"image": np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")}
        ek.convert(
            model,
            formats=["tflite"],
            precisions=["fp32", "int8"],
            calibration=calibration,
            out=folder,
            validate=False,
            force=True,
        )
        ek.convert(model, formats=["onnx"], precisions=["fp32"], out=folder, validate=False, force=True)
        (folder / "done").write_text("\n".join(names))
    return {name.split(".")[0].removeprefix("tiny-"): folder / name for name in names}


def shim_python(root, packages):
    """A real venv whose site-packages links only `packages` (and their dist-info) from this one.

    It cannot import TensorFlow, or anything else not listed: a device in miniature, made in
    about a second without a download."""
    root = Path(root)
    if not (root / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
        site = next((root / "lib").glob("python*/site-packages"))
        for pattern in packages:
            for entry in SITE.glob(pattern):
                (site / entry.name).symlink_to(entry)
    return root / "bin" / "python"


def runtime_packages():
    return [
        "numpy",
        "numpy.libs",
        "numpy-*.dist-info",
        "ai_edge_litert",
        "ai_edge_litert-*.dist-info",
        "onnxruntime",
        "onnxruntime-*.dist-info",
    ]


def run_runner(python, model, *args, cwd=None, isolate=True):
    command = [str(python), *(["-I"] if isolate else []), str(RUNNER), str(model), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def validate_document(document):
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    return document["results"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A Python with numpy, ai-edge-litert and onnxruntime and nothing else (no TensorFlow)."""
    return shim_python(tmp_path_factory.mktemp("shim") / "venv", runtime_packages())


# --------------------------------------------------------------------------- tests


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("kind", ["tflite-fp32", "tflite-int8", "onnx-fp32"])
def test_runner_json_without_tensorflow(arts, tmp_path, kind):
    """This venv's Python, isolated (-I), with TensorFlow/Keras/edgekeras imports refused."""
    report = tmp_path / "imports.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            GUARD,
            str(report),
            str(RUNNER),
            str(arts[kind]),
            "--json",
            "--runs",
            "20",
            "--warmup",
            "2",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    imports = json.loads(report.read_text())
    assert imports["attempts"] == [], f"the runner tried to import {imports['attempts']}"
    assert not {"tensorflow", "keras", "edgekeras"} & set(imports["modules"])
    (result,) = validate_document(json.loads(proc.stdout))
    assert result["artifact"] == str(arts[kind]) and result["runs"] == 20 and result["threads"] == 1
    assert result["fresh_process"] is True and result["inputs"] == "generated"
    lat = result["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result["cold_start_ms"] == pytest.approx(result["load_ms"] + result["first_inference_ms"])
    assert result["peak_rss_mb"] >= result["baseline_rss_mb"] > 0
    assert result["size_bytes"] == arts[kind].stat().st_size


def test_runner_in_a_venv_without_tensorflow(arts, bare_python):
    probe = subprocess.run([str(bare_python), "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    for kind in ("tflite-int8", "onnx-fp32"):
        proc = run_runner(bare_python, arts[kind], "--json", "--runs", "10")
        assert proc.returncode == 0, proc.stderr
        (result,) = validate_document(json.loads(proc.stdout))
        assert result["runtime"] == {"tflite": "litert", "onnx": "onnxruntime"}[result["format"]]


def test_runner_through_the_repository_symlink(arts):
    """devices/edgekeras_runner.py is the package's file (one source of truth), and runs as a script."""
    link = ROOT / "devices" / "edgekeras_runner.py"
    assert link.is_symlink() and link.resolve() == RUNNER.resolve()
    proc = subprocess.run(
        [sys.executable, "-I", str(link), str(arts["tflite-fp32"]), "--runs", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"latency ms over 5 runs: mean [0-9.]+", proc.stdout) and "peak RSS" in proc.stdout


def test_runner_parses_as_python_3_7():
    """Boards run old Pythons: the runner's syntax must be 3.7's."""
    tree = ast.parse(RUNNER.read_text(), feature_version=(3, 7))  # a SyntaxError fails the test
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def test_runner_delegation_and_providers(arts):
    no_xnnpack = run_runner(sys.executable, arts["tflite-fp32"], "--json", "--runs", "5", "--no-xnnpack")
    xnnpack = run_runner(sys.executable, arts["tflite-fp32"], "--json", "--runs", "5")
    onnx = run_runner(sys.executable, arts["onnx-fp32"], "--json", "--runs", "5")
    (off,), (on,), (ort,) = (validate_document(json.loads(p.stdout)) for p in (no_xnnpack, xnnpack, onnx))
    assert off["details"]["xnnpack"] is False and off["details"]["ops_delegated"] == 0
    assert sum(off["details"]["ops_not_delegated"].values()) == off["details"]["ops_total"] > 0
    d = on["details"]
    assert d["ops_total"] == off["details"]["ops_total"]  # the same model ops, delegate kernels not counted
    assert 0 < d["ops_delegated"] <= d["ops_total"] and d["delegated_by"] == {"xnnpack": d["ops_delegated"]}
    assert d["delegate_share"] == pytest.approx(d["ops_delegated"] / d["ops_total"])
    assert "CONV_2D" not in d["ops_not_delegated"]  # XNNPACK takes float convolutions
    o = ort["details"]
    assert o["providers"] == ["CPUExecutionProvider"] and o["nodes_total"] > 0
    assert o["node_providers"] == {"CPUExecutionProvider": o["nodes_total"]}


def test_runner_inputs_files(arts, tmp_path):
    x = np.random.default_rng(1).random((4, 8, 8, 1)).astype("float32")
    np.savez(tmp_path / "named.npz", image=x, y=np.arange(4))
    np.savez(tmp_path / "alias.npz", x=x)
    np.save(tmp_path / "plain.npy", x)
    for name in ("named.npz", "alias.npz", "plain.npy"):
        proc = run_runner(
            sys.executable,
            arts["tflite-int8"],
            "--json",
            "--runs",
            "3",
            "--batch-size",
            "2",
            "--inputs",
            tmp_path / name,
        )
        assert proc.returncode == 0, proc.stderr
        (result,) = validate_document(json.loads(proc.stdout))
        assert result["inputs"] == "file" and result["batch_size"] == 2
    np.savez(tmp_path / "wrong.npz", pixels=x)
    proc = run_runner(sys.executable, arts["onnx-fp32"], "--inputs", tmp_path / "wrong.npz")
    assert proc.returncode == 2 and "['image']" in proc.stderr and "wrong.npz" in proc.stderr
    np.savez(tmp_path / "shape.npz", image=np.zeros((2, 4, 4, 1), "float32"))
    proc = run_runner(sys.executable, arts["onnx-fp32"], "--inputs", tmp_path / "shape.npz")
    assert proc.returncode == 2 and "(2, 4, 4, 1)" in proc.stderr


def test_runner_outputs_every_row_in_a_bare_venv(arts, bare_python, tmp_path):
    """--outputs: every row of --inputs run (7 rows, not a multiple of any slice), the outputs saved by
    name; the same numbers as edgekeras' own session gives (what `deploy --device` compares)."""
    from edgekeras.runtimes import open_session

    x = np.random.default_rng(2).random((7, 8, 8, 1)).astype("float32")
    np.savez(tmp_path / "in.npz", image=x, y=np.arange(7))  # labels stay on the host: ignored
    for kind in ("tflite-int8", "onnx-fp32"):
        out = tmp_path / f"{kind}.npz"
        proc = run_runner(bare_python, arts[kind], "--inputs", tmp_path / "in.npz", "--outputs", out, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["rows"] == 7
        with np.load(out) as saved:
            expected = open_session(arts[kind]).run({"image": x})
            assert sorted(saved.files) == sorted(expected) and saved["probs"].shape == (7, 10)
            np.testing.assert_allclose(saved["probs"], expected["probs"], atol=1e-6)
    proc = run_runner(sys.executable, arts["onnx-fp32"], "--outputs", tmp_path / "o.npz")
    assert proc.returncode == 2 and "Expected --inputs FILE.npz with --outputs" in proc.stderr


def _errors(arts, tmp_path):
    libm = next(
        p
        for p in (
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/aarch64-linux-gnu/libm.so.6",
            "/lib64/libm.so.6",
        )
        if Path(p).exists()
    )
    return {
        "missing model": ([tmp_path / "none.tflite"], "does not exist"),
        "not a model": ([Path(shutil.copy(arts["onnx-fp32"], tmp_path / "x.txt"))], "Expected a .tflite or .onnx"),
        "unknown runtime": ([arts["onnx-fp32"], "--runtime", "onnxruntme"], "Did you mean 'onnxruntime'?"),
        "runtime for the other format": ([arts["onnx-fp32"], "--runtime", "litert"], "Expected a runtime that runs"),
        "provider on tflite": ([arts["tflite-fp32"], "--provider", "CPUExecutionProvider"], "Received: provider"),
        "provider typo": ([arts["onnx-fp32"], "--provider", "CPUExecutionProvidr"], "CPUExecutionProvider'?"),
        "missing delegate": ([arts["tflite-fp32"], "--delegate", tmp_path / "libnone.so"], "does not exist"),
        "not a delegate": ([arts["tflite-fp32"], "--delegate", libm], "does not export tflite_plugin_create_delegate"),
        "zero runs": ([arts["tflite-fp32"], "--runs", "0"], "Expected --runs to be an integer >= 1"),
        "bad number": ([arts["tflite-fp32"], "--threads", "two"], "invalid int value: 'two'"),
    }


def test_runner_errors_are_one_line_exit_2(arts, tmp_path):
    for case, (args, expected) in _errors(arts, tmp_path).items():
        proc = run_runner(sys.executable, *args)
        assert proc.returncode == 2, f"{case}: {proc.stderr}"
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, f"{case}: {proc.stderr}"
        assert "edgekeras_runner: error: " in proc.stderr and expected in proc.stderr, f"{case}: {proc.stderr}"


def test_runner_without_a_runtime_names_the_package(arts, tmp_path):
    python = shim_python(tmp_path / "numpy-only", ["numpy", "numpy.libs", "numpy-*.dist-info"])
    for kind, package in (("tflite-fp32", "pip install ai-edge-litert"), ("onnx-fp32", "pip install onnxruntime")):
        proc = run_runner(python, arts[kind], "--json")
        assert proc.returncode == 2 and package in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- slow: pip-installed venvs


def _locked(name):
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.split("==")[0].lower().replace("_", "-") == name:
            return line.strip()
    raise AssertionError(f"{name} is not pinned in requirements.lock")


def _pip_venv(root, requirements):
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root)
    python = Path(root) / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.skip(f"pip could not install {requirements} here: {proc.stderr.strip()[-300:]}")
    return python


@pytest.mark.slow
def test_runner_in_a_fresh_pip_venv(arts, tmp_path):
    """The pinned numpy, ai-edge-litert and onnxruntime, pip-installed into a new venv: no TensorFlow."""
    python = _pip_venv(tmp_path / "venv", [_locked("numpy"), _locked("ai-edge-litert"), _locked("onnxruntime")])
    assert subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True).returncode != 0
    for kind in ("tflite-int8", "onnx-fp32"):
        proc = run_runner(python, arts[kind], "--json", "--runs", "10")
        assert proc.returncode == 0, proc.stderr
        validate_document(json.loads(proc.stdout))


@pytest.mark.slow
def test_runner_with_tflite_runtime_and_numpy_1(arts, tmp_path):
    """tflite-runtime 2.14 (the last release) with numpy<2, as on older boards."""
    python = _pip_venv(tmp_path / "venv", ["tflite-runtime==2.14.0", "numpy<2"])
    for kind in ("tflite-fp32", "tflite-int8"):
        proc = run_runner(python, arts[kind], "--json", "--runs", "10", "--threads", "1")
        assert proc.returncode == 0, proc.stderr
        (result,) = validate_document(json.loads(proc.stdout))
        assert result["runtime_package"] == "tflite-runtime" and result["runtime_version"] == "2.14.0"
        assert result["host"]["numpy"].startswith("1.")
        d = result["details"]  # 2.14's XNNPACK declines this dynamic-batch graph; the count says so
        assert d["ops_total"] > 0 and d["ops_delegated"] + sum(d["ops_not_delegated"].values()) == d["ops_total"]
