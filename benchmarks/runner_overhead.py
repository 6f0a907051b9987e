"""Does the on-device runner, or `edgekeras bench` around it, add time to what it measures?

Prints per artifact, measured side by side in one run (interleaved rounds, so machine noise
hits all alike, each in a fresh process with the same threads, runs and inputs):
  - runner p50 / bare p50: `devices/edgekeras_runner.py --json` against a hand-written invoke
    loop on the bare runtime (target 0.98-1.02);
  - bench overhead: `ek.benchmark`'s p50 minus the bare loop's, in microseconds per run;
  - the timing loop's own floor: the runner's loop around an empty call, in ns per run.

    python benchmarks/runner_overhead.py
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS, RUNS, WARMUP, THREADS = 7, 300, 30, 2
RUNNER = Path(__file__).resolve().parent.parent / "devices" / "edgekeras_runner.py"

# What a user writes by hand: load, set the input, time invoke()/run() with perf_counter_ns.
BARE = """
import sys, time, numpy as np
path, runs, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(0).random((1, 64, 64, 3)).astype("float32")
if path.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    call = it.invoke
else:
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    names, feeds = [t.name for t in s.get_outputs()], {s.get_inputs()[0].name: x}
    call = lambda: s.run(names, feeds)
call()
for _ in range(warmup):
    call()
samples = []
for _ in range(runs):
    t = time.perf_counter_ns(); call(); samples.append(time.perf_counter_ns() - t)
print(float(np.percentile(samples, 50)) / 1e6)
"""


def build(folder):
    """A small CNN (64x64x3, three conv blocks) as fp32 TFLite and ONNX artifacts."""
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    import edgekeras as ek

    inp = keras.Input((64, 64, 3), name="image")
    x = inp
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    out = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out, name="cnn")
    return ek.convert(model, formats=["tflite", "onnx"], precisions=["fp32"], out=folder, validate=False)


def runner_p50(path):
    out = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            str(path),
            "--json",
            "--runs",
            str(RUNS),
            "--warmup",
            str(WARMUP),
            "--threads",
            str(THREADS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["results"][0]["latency_ms"]["p50"]


def bare_p50(path):
    out = subprocess.run(
        [sys.executable, "-c", BARE, str(path), str(RUNS), str(WARMUP), str(THREADS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def loop_floor_ns():
    """ns per run that the runner's timed loop itself costs (an empty call between the clock reads)."""
    sys.path.insert(0, str(RUNNER.resolve().parent))
    from edgekeras_runner import time_invocations

    samples = time_invocations(int, 200_000, 1000)  # int() is a near-free C call
    return statistics.median(samples)


def main():
    import edgekeras as ek

    with tempfile.TemporaryDirectory() as tmp:
        print("converting a small CNN to TFLite and ONNX (once) ...", file=sys.stderr)
        for art in build(Path(tmp)):
            runner, bare, bench = [], [], []
            for _ in range(ROUNDS):
                runner.append(runner_p50(art.path))
                bare.append(bare_p50(art.path))
                bench.append(
                    ek.benchmark(art, threads=THREADS, runs=RUNS, warmup=WARMUP, save=False, progress=False).latency_ms[
                        "p50"
                    ]
                )
            r, b, e = (statistics.median(v) for v in (runner, bare, bench))
            print(
                f"{art.path.name:18s} runner p50 {r * 1e3:8.1f} us   bare loop p50 {b * 1e3:8.1f} us   "
                f"runner/bare {r / b:.3f}   edgekeras bench p50 {e * 1e3:8.1f} us   "
                f"bench overhead {(e - b) * 1e3:+.1f} us/run"
            )
    print(f"timing loop floor (empty call between the two clock reads): {loop_floor_ns():.0f} ns/run")


if __name__ == "__main__":
    main()
