"""Does `edgekeras bench` add overhead? Prints, per artifact, our reported p50 divided by the
p50 of a bare invoke loop on the same interpreter, same artifact, same inputs, measured side by
side (interleaved rounds, alternating which goes first, so machine noise hits both alike).
Should be 0.98-1.02. `edgekeras bench` runs the runner in a fresh process, and at ~10 us per
invoke the process alone moves a p50 by ~2 us (measured: the same bare loop gave 7.4 us in a
long-lived process that had trained the model, 9.7 us in a fresh one), so the bare loop runs
in a fresh Python process too, as a user's script would. The figure is the median of 25
rounds, with the spread of the per-round ratios (quartiles) beside it.

    python benchmarks/bench_overhead.py
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS, RUNS, THREADS = 25, 300, 2


def bare_loop_p50(artifact, feeds):
    """What a user writes by hand: load the interpreter, set inputs, time invoke()."""
    if artifact.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(artifact), num_threads=THREADS)
        it.allocate_tensors()
        runner = it.get_signature_runner()
        details = runner.get_input_details()
        del runner
        for name, arr in feeds.items():
            it.resize_tensor_input(details[name]["index"], arr.shape)
        it.allocate_tensors()
        for name, arr in feeds.items():
            it.set_tensor(details[name]["index"], arr)
        call = it.invoke
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(artifact), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]

        def call():
            sess.run(names, feeds)

    for _ in range(20):
        call()
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t)
    return float(np.percentile(samples, 50)) / 1e6


def bare_loop_in_child(artifact, feeds_path):
    """`bare_loop_p50` in a fresh Python process (no TensorFlow, nothing of edgekeras)."""
    out = subprocess.run(
        [sys.executable, __file__, "--bare", str(artifact), str(feeds_path)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    import edgekeras as ek

    with tempfile.TemporaryDirectory() as tmp:
        print("training the digits model and converting it (once) ...", file=sys.stderr)
        run = ek.train("digits-cnn", out=Path(tmp) / "run")
        x = run.data.test.take(1).x
        for art in run.artifacts:
            feeds = {art.manifest["inputs"][0]["name"]: x.astype("float32")}
            feeds_path = Path(tmp) / "feeds.npz"
            np.savez(feeds_path, **feeds)
            ours, bare = [], []
            for i in range(ROUNDS):
                measure = [
                    lambda art=art, feeds=feeds, ours=ours: ours.append(
                        ek.benchmark(
                            art, threads=THREADS, runs=RUNS, warmup=20, inputs=feeds, save=False, progress=False
                        ).latency_ms["p50"]
                    ),
                    lambda art=art, bare=bare, feeds_path=feeds_path: bare.append(
                        bare_loop_in_child(art.path, feeds_path)
                    ),
                ]
                for step in measure if i % 2 == 0 else reversed(measure):
                    step()
            o, b = statistics.median(ours), statistics.median(bare)
            q1, _, q3 = statistics.quantiles([a / c for a, c in zip(ours, bare)], n=4)
            print(
                f"{art.path.name:32s} edgekeras p50 {o * 1e3:8.2f} us   bare loop p50 {b * 1e3:8.2f} us"
                f"   ratio {o / b:.3f} (per-round quartiles {q1:.2f}-{q3:.2f})   overhead {(o - b) * 1e3:+.2f} us/run"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        with np.load(sys.argv[3], allow_pickle=False) as data:
            print(bare_loop_p50(Path(sys.argv[2]), {k: data[k] for k in data.files}))
    else:
        main()
