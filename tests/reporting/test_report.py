"""The run report: report.md and a self-contained report.html, rendered in real headless Chromium.

The data is the shared trained digits run (conftest `digits_run`), copied so that its
manifests can gain benchmarks, stricter validations and target constraints here.
"""

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, run_without_tensorflow

import edgekeras as ek
from edgekeras.artifact import Artifact
from edgekeras.reporting import find_artifacts
from edgekeras.reporting.plots import pareto_front, tradeoff_figures
from edgekeras.reporting.summary import ArtifactSummary

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _copy_run(digits_run, dest):
    """A copy of the trained run whose manifests have no benchmarks yet (other tests add some)."""
    shutil.copytree(digits_run.path, dest)
    paths = find_artifacts(dest / "artifacts")
    for path in paths:
        art = Artifact.load(path)
        art.manifest.forget("benchmarks")
    return {p.stem.split("-", 2)[-1]: p for p in paths}  # "tflite-int8" -> path


@pytest.fixture(scope="module")
def bench_run(digits_run, tmp_path_factory):
    """Every artifact benchmarked at 2 threads, the ONNX ones also at 1 thread; report written."""
    root = tmp_path_factory.mktemp("report") / "run"
    arts = _copy_run(digits_run, root)
    for key, path in arts.items():
        ek.benchmark(path, threads=2, runs=20, warmup=2, progress=False)
        if key.startswith("onnx"):
            ek.benchmark(path, threads=1, runs=20, warmup=2, progress=False)
    return root, ek.report(root)


@pytest.fixture(scope="module")
def edge_run(digits_run, tmp_path_factory):
    """The awkward cases: a genuine parity failure, no accuracy, no benchmarks, constraints."""
    root = tmp_path_factory.mktemp("report-edge") / "run"
    arts = _copy_run(digits_run, root)
    for key in ("tflite-fp32", "onnx-fp32", "onnx-int8"):
        ek.benchmark(arts[key], threads=2, runs=20, warmup=2, progress=False)
    # a real validation failure: int8 cannot reach a cosine of 0.99999 against fp32 Keras
    failed = ek.validate(
        arts["onnx-int8"],
        reference=root / "model.keras",
        data=digits_run.data.test,
        tolerance={"min_cosine": 0.99999},
        raise_on_failure=False,
    )
    assert not failed.passed
    # validated on generated inputs: parity, but no labels, so no accuracy
    ek.validate(arts["tflite-int8"], reference=root / "model.keras", raise_on_failure=False)
    for key, constraints in (
        ("tflite-fp32", [{"name": "max_size_kb", "value": 153.6, "limit": 100, "passed": False}]),
        (
            "tflite-int8",
            [
                {"name": "max_size_kb", "value": 45.5, "limit": 100, "passed": True},
                {
                    "name": "ops_allow",
                    "value": ["CONV_2D", "FULLY_CONNECTED"],
                    "limit": ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"],
                    "passed": True,
                },
            ],
        ),
    ):
        art = Artifact.load(arts[key])
        art.manifest.record_constraints("x86-64-litert", constraints)
    return root, arts, ek.report(root)


def test_pareto_front_keeps_undominated_points_and_ties():
    # (latency, accuracy): lower x and higher y win
    points = [(1.0, 90.0), (2.0, 95.0), (3.0, 94.0), (1.0, 90.0), (0.5, 80.0), (2.0, 93.0)]
    assert pareto_front(points) == [0, 1, 3, 4]
    assert pareto_front([(5.0, 50.0)]) == [0]
    assert pareto_front([]) == []


def test_sparsity_plot_only_for_a_pruned_model_and_sparser_is_better(tmp_path):
    def summary(origin, sparsity, accuracy):
        return ArtifactSummary("m.tflite", "tflite", "int8", 1000, accuracy=accuracy, sparsity=sparsity, origin=origin)

    dense = [summary("", 0.0, 0.95)]
    assert "sparsity_vs_accuracy" not in [f.key for f in tradeoff_figures(dense, tmp_path)]
    points = [summary("unpruned", 0.0, 0.95), summary("", 0.8, 0.94), summary("", 0.5, 0.93)]
    (figure,) = [f for f in tradeoff_figures(points, tmp_path) if f.key == "sparsity_vs_accuracy"]
    assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 50 % at 93 % is dominated by 80 % at 94 %; the dense model is the most accurate
    assert figure.front == ["unpruned tflite-int8", "tflite-int8"]


def test_training_writes_both_reports(digits_run):
    assert (digits_run.path / "report.md").exists()
    html = (digits_run.path / "report.html").read_text()
    for art in digits_run.artifacts:
        assert art.path.name in html


def test_report_table_has_a_column_group_per_benchmark(bench_run):
    root, report = bench_run
    assert report.markdown == root / "report.md" and report.html == root / "report.html"
    text = report.markdown.read_text()
    for group in ("litert · 2 threads", "onnxruntime · 2 threads", "onnxruntime · 1 thread"):
        assert f"{group} p50 ms" in text and f"{group} p99 ms" in text
    rows = {r["artifact"]: r for r in report.rows}
    assert sorted(rows) == sorted(p.name for p in find_artifacts(root / "artifacts"))
    onnx = rows["digits-cnn-onnx-fp32.onnx"]
    assert set(onnx["latency_ms"]) == {"onnxruntime · 2 threads", "onnxruntime · 1 thread"}
    assert onnx["latency_ms"]["onnxruntime · 1 thread"]["p50"] > 0
    manifest = json.loads((root / "artifacts" / "digits-cnn-onnx-fp32.json").read_text())
    assert onnx["cosine"] == pytest.approx(min(o["cosine"] for o in manifest["validation"]["outputs"]))
    # the markdown row shows the same p50 the manifest holds, in the onnxruntime 1-thread columns
    bench = next(b for b in manifest["benchmarks"] if b["threads"] == 1)
    line = next(line for line in text.splitlines() if line.startswith("| digits-cnn-onnx-fp32.onnx"))
    assert f"{bench['latency_ms']['p50']:.3f}" in [cell.strip() for cell in line.split("|")]
    assert " pass " in line and "| — |" in line  # no constraints in these manifests
    assert "training_curves.png" in text and "latency_vs_accuracy.png" in text and "size_vs_accuracy.png" in text
    assert not any(p.name.startswith(".report") for p in root.iterdir())  # atomic: no temporaries left


def test_report_plots_are_real_pngs_with_the_pareto_front(bench_run):
    _root, report = bench_run
    assert set(report.plots) == {"latency_vs_accuracy", "size_vs_accuracy"}
    for path in report.plots.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    text = report.markdown.read_text()
    # int8 TFLite is the smallest artifact and at least as accurate as fp32 here: on the size front
    sizes = {r["artifact"]: (r["size_bytes"], r["accuracy"]) for r in report.rows}
    smallest = min(sizes, key=lambda a: sizes[a][0])
    front_line = text.split("### Size vs accuracy")[1].split("Pareto front: ")[1].splitlines()[0]
    assert smallest.split("-", 2)[-1].rsplit(".", 1)[0] in front_line


def test_html_is_self_contained(bench_run):
    _root, report = bench_run
    html = report.html.read_text()
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for src in sources:  # every embedded image decodes to a PNG
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert not re.search(r"url\(|https?://", html.split("<body>")[0])


def test_edge_cases_are_said_not_skipped(edge_run):
    _root, _arts, report = edge_run
    text = report.markdown.read_text()
    assert "Parity FAILED: digits-cnn-onnx-int8.onnx" in text
    assert "cosine" in text.split("## Validation failures")[1]
    assert "Not benchmarked: digits-cnn-onnx-int8.onnx" not in text  # it was benchmarked
    assert "Not benchmarked: digits-cnn-tflite-int8.tflite" in text
    assert "No accuracy for digits-cnn-tflite-int8.tflite (validated on generated inputs, without labels)" in text
    line = next(line for line in text.splitlines() if line.startswith("| digits-cnn-tflite-fp32.tflite"))
    assert "FAIL: max_size_kb" in line
    line = next(line for line in text.splitlines() if line.startswith("| digits-cnn-tflite-int8.tflite"))
    assert "met (2/2)" in line and "| — |" in line  # accuracy missing, shown as —
    # generated inputs for an int8 artifact: flagged in the table and in a note
    assert "| generated (weak) |" in line
    assert "Validated on generated inputs only: digits-cnn-tflite-int8.tflite" in text
    line = next(line for line in text.splitlines() if line.startswith("| digits-cnn-onnx-int8.onnx"))
    assert "| labelled |" in line and "accuracy 0.9" in line and " pts |" in line
    assert "Target constraints NOT met: digits-cnn-tflite-fp32.tflite" in text
    rows = {r["artifact"]: r for r in report.rows}
    assert rows["digits-cnn-onnx-int8.onnx"]["parity_passed"] is False
    assert rows["digits-cnn-tflite-int8.tflite"]["accuracy"] is None
    # the failed artifact is plotted (marked) but never on the Pareto front
    assert set(report.plots) == {"latency_vs_accuracy", "size_vs_accuracy"}
    for section in text.split("Pareto front: ")[1:]:
        assert "onnx-int8" not in section.splitlines()[0]
    html = report.html.read_text()
    assert 'data-artifact="digits-cnn-onnx-int8.onnx" class="failed"' in html
    assert '<span class="badge fail">FAIL</span>' in html


def test_report_without_benchmarks_or_labels_says_so(digits_run, tmp_path):
    root = tmp_path / "run"
    arts = _copy_run(digits_run, root)
    for path in arts.values():
        ek.validate(path, reference=root / "model.keras", raise_on_failure=False)  # no labelled data
    report = ek.report(root)
    text = report.markdown.read_text()
    assert "No benchmark results" in text and "No accuracy was measured" in text
    assert report.plots == {}
    assert "Latency vs accuracy: nothing to plot." in text and "Size vs accuracy: nothing to plot." in text
    assert all(r["accuracy"] is None and r["latency_ms"] == {} for r in report.rows)


def test_report_does_not_import_tensorflow(bench_run):
    root, _ = bench_run
    code = (
        "r = run_cli('report', '--help')\nassert r.exit_code == 0, r.output\n"
        f"import edgekeras as ek\nek.report({str(root)!r})\n"
    )
    run_without_tensorflow(code)


def test_cli_json_prints_paths_and_rows(bench_run):
    root, _ = bench_run
    res = invoke("report", root, "--json")
    assert res.exit_code == 0, res.describe()
    doc = res.json()
    assert doc["markdown"] == str(root / "report.md") and doc["html"] == str(root / "report.html")
    assert Path(doc["plots"]["latency_vs_accuracy"]).exists()
    assert {r["artifact"] for r in doc["rows"]} == {p.name for p in find_artifacts(root / "artifacts")}
    res = invoke("report", root)
    assert res.exit_code == 0 and "digits-cnn-tflite-int8.tflite" in res.output and "Wrote" in res.output


def test_cli_reports_on_a_folder_of_artifacts(bench_run, tmp_path):
    root, _ = bench_run
    folder = tmp_path / "arts"
    shutil.copytree(root / "artifacts", folder)
    res = invoke("report", folder, "--json")
    assert res.exit_code == 0, res.describe()
    assert len(res.json()["rows"]) == 4 and (folder / "report.html").exists()


def test_cli_rejects_what_is_not_a_run_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    res = invoke("report", tmp_path)
    assert res.exit_code == 2
    assert "Expected a run folder" in res.output and str(tmp_path) in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.html").exists()
    res = invoke("report", tmp_path / "missing")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = invoke("report", tmp_path / "notes.txt")
    assert res.exit_code == 2 and "Pass its folder instead" in res.output


def test_bad_manifest_or_state_is_exit_2_and_keeps_the_old_report(bench_run, tmp_path):
    root, _ = bench_run
    run = tmp_path / "run"
    shutil.copytree(root, run)
    before = {name: (run / name).read_bytes() for name in ("report.md", "report.html")}
    (run / "artifacts" / "digits-cnn-onnx-int8.json").write_text('{"format": "onnx", ')
    res = invoke("report", run)
    assert res.exit_code == 2 and "digits-cnn-onnx-int8.json" in res.output and "not valid JSON" in res.output
    (run / "artifacts" / "digits-cnn-onnx-int8.json").write_text('{"format": "onnx", "benchmarks": {"p50": 1}}')
    res = invoke("report", run)
    assert res.exit_code == 2 and "'benchmarks'" in res.output and "Expected" in res.output
    (run / "run.json").write_text("{not json")
    res = invoke("report", run)
    assert res.exit_code == 2 and "run.json" in res.output
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not any(p.name.startswith(".report") for p in run.iterdir())


# --- headless Chromium over the DevTools protocol (--remote-debugging-pipe: no extra packages) ---


class DevTools:
    """Chromium driven through CDP messages on fds 3/4 (NUL-separated JSON)."""

    def __init__(self, profile):
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # the shell moves our pipe ends onto the fds Chromium expects (3: commands in, 4: replies out)
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}', CHROMIUM, *args],
            pass_fds=(to_chrome, from_chrome),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self.messages, self.events, self._id = queue.Queue(), [], 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buffer = b""
        while chunk := os.read(self._read, 1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for message in complete:
                self.messages.put(json.loads(message))
        self.messages.put(None)

    def _next(self, deadline):
        message = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
        if message is None:
            raise RuntimeError("chromium exited")
        return message

    def send(self, method, params=None, session=None, timeout=30):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (reply := self._next(deadline)).get("id") != self._id:
            self.events.append(reply)
        assert "error" not in reply, (method, reply["error"])
        return reply["result"]

    def wait_for(self, event, timeout=30):
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._next(deadline))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._write)


def _render(html_path, profile, screenshot):
    """Loads the page; returns (artifact names in the table, images loaded, errors, request URLs)."""
    browser = DevTools(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1800, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": html_path.as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")

        def evaluate(expression):
            return browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)[
                "result"
            ]["value"]

        rows = evaluate("[...document.querySelectorAll('#artifacts tbody tr')].map(r => r.cells[0].textContent)")
        images = evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        height = evaluate("document.documentElement.scrollHeight")
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1},
            },
            session=session,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
    errors, urls = [], []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert", "warning"):
            errors.append(f"console.{params['type']}: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            errors.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
    return rows, images, errors, urls


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/sysdeps.sh installs it)")
@pytest.mark.parametrize("which", ["bench_run", "edge_run"])
def test_html_renders_in_chromium_without_errors(which, request, tmp_path):
    root = request.getfixturevalue(which)[0]
    screenshot = tmp_path / "report.png"
    rows, images, errors, urls = _render(root / "report.html", tmp_path / "profile", screenshot)
    assert errors == []
    assert sorted(rows) == sorted(p.name for p in find_artifacts(root / "artifacts"))
    assert len(images) == 3 and all(images)  # latency, size, training curves
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1400 and height > 1000
    import matplotlib.image

    pixels = matplotlib.image.imread(str(screenshot))
    assert pixels.std() > 0.05  # not a blank page
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1])[::97], axis=0)) > 50
