"""Does `edgekeras bench` add overhead? Prints, per artifact, our reported p50 divided by the
p50 of a bare invoke loop on the same interpreter, same artifact, same inputs, measured side by
side (interleaved rounds, so machine noise hits both alike). Should be 0.98-1.02.

    python benchmarks/bench_overhead.py
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS, RUNS, THREADS = 7, 300, 2


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


def main():
    import edgekeras as ek

    with tempfile.TemporaryDirectory() as tmp:
        print("training the digits model and converting it (once) ...", file=sys.stderr)
        run = ek.train("digits-cnn", out=Path(tmp) / "run")
        x = run.data.test.take(1).x
        for art in run.artifacts:
            feeds = {art.manifest["inputs"][0]["name"]: x.astype("float32")}
            ours, bare = [], []
            for _ in range(ROUNDS):
                ours.append(ek.benchmark(art, threads=THREADS, runs=RUNS, warmup=20, inputs=feeds,
                                         save=False, progress=False).latency_ms["p50"])
                bare.append(bare_loop_p50(art.path, feeds))
            o, b = statistics.median(ours), statistics.median(bare)
            print(f"{art.path.name:32s} edgekeras p50 {o * 1e3:8.2f} us   bare loop p50 {b * 1e3:8.2f} us"
                  f"   ratio {o / b:.3f}   overhead {(o - b) * 1e3:+.2f} us/run")


if __name__ == "__main__":
    main()
