"""Where does an artifact's time go, operator by operator? Two artifacts side by side (unpruned, pruned).

    python benchmarks/op_profile.py A.tflite B.tflite [--threads 1] [--runs 100]
    python benchmarks/op_profile.py A.onnx B.onnx [--threads 1] [--runs 100]

LiteRT (XNNPACK runs the whole graph as one delegate node, so the interpreter cannot time its
operators): every operator is cut out of the flatbuffer as a one-operator model (its weights
kept, its other inputs made graph inputs) and timed in process, the median of --runs invokes;
the sum is printed beside the whole model's median, so what the cut adds (a few us an operator)
shows. ONNX Runtime: its own per-node profile (`SessionOptions.enable_profiling`), the median
of each node's kernel time over --runs runs (its whole-model figure is with profiling on,
which costs far more than the kernels: compare the sums). Operators pair up by position, so A and B must be
the same graph with other channel counts (what `prune_channels` makes). No TensorFlow import.
channel_pruning.py's docstring quotes figures from this script.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_us(invoke, runs):
    for _ in range(10):
        invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        invoke()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def _litert_time(content, threads, runs):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return _median_us(interpreter.invoke, runs)


def litert_ops(path, threads, runs):
    """(whole model us, [(operator, weight shape, output shape, us)])."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(path)
    graph = model.subgraphs[0]

    def constant(tensor):
        data = model.buffers[graph.tensors[tensor].buffer].data
        return data is not None and len(data) > 0

    def shape(tensor):
        return tuple(int(d) for d in graph.tensors[tensor].shape) if tensor >= 0 else ()

    rows = []
    for op in graph.operators:
        one, sub = copy.copy(model), copy.copy(graph)
        sub.operators, sub.outputs = [op], list(op.outputs)
        sub.inputs = [t for t in op.inputs if t >= 0 and not constant(t)]
        one.subgraphs, one.signatureDefs = [sub], []
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        weights = shape(op.inputs[1]) if len(op.inputs) > 1 else ()
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(one))
        rows.append((name, weights, shape(op.outputs[0]), _litert_time(content, threads, runs)))
    whole = _litert_time(Path(path).read_bytes(), threads, runs)
    return whole, rows


def onnx_ops(path, threads, runs):
    """(whole model us, [(op type, node name, output shape: unknown, us)]) from ORT's profile."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs()}
    whole = _median_us(lambda: session.run(None, feeds), runs)
    profile = session.end_profiling()
    with open(profile) as f:
        events = json.load(f)
    os.remove(profile)
    kernel = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kernel[event["name"][: -len("_kernel_time")], event["args"]["op_name"]].append(event["dur"])
    rows = [(op, node, (), statistics.median(times[10:] or times)) for (node, op), times in kernel.items()]
    return whole, rows


PROFILERS = {".tflite": litert_ops, ".onnx": onnx_ops}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    profile = PROFILERS[os.path.splitext(args.artifacts[0])[1]]
    (whole_a, rows_a), (whole_b, rows_b) = (profile(p, args.threads, args.runs) for p in args.artifacts)
    sum_a, sum_b = sum(r[-1] for r in rows_a), sum(r[-1] for r in rows_b)
    print(
        f"whole model {whole_a:.0f} -> {whole_b:.0f} us ({whole_b / whole_a:.2f}); operators summed {sum_a:.0f} -> {sum_b:.0f} us"
    )
    by_type = collections.defaultdict(lambda: [0.0, 0.0])
    for i, (a, b) in enumerate(zip(rows_a, rows_b)):
        by_type[a[0]][0] += a[-1]
        by_type[a[0]][1] += b[-1]
        print(
            f"{i:3} {a[0]:18} {a[1]!s:22} -> {b[1]!s:22} {a[2]!s:18} {a[-1]:8.1f} -> {b[-1]:8.1f} us ({b[-1] / a[-1]:.2f})"
        )
    for name, (a, b) in sorted(by_type.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:18} {a:8.0f} -> {b:8.0f} us ({b / a:.2f})")


if __name__ == "__main__":
    main()
