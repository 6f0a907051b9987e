"""Whether XNNPACK runs a TFLite artifact on its sparse (NCHW, SpMM) path, and if not, why.

XNNPACK's delegate hints sparse inference when a delegated op reads a sparse-stored weight
(a DENSIFY output), then XNNPACK rewrites the cluster that qualifies to NCHW with sparse
matrix kernels. Neither step is visible from Python: ai-edge-litert 2.3.0's `Interpreter`
exposes no XNNPACK flags, profiler or log of it (its release build compiles XNNPACK's
`xnn_log_info` messages out). So the verdict here is derived from the artifact with the
rules of XNNPACK's `xnn_check_nchw_compatibility` / `xnn_subgraph_rewrite_for_nchw`
(tensorflow/lite/delegates/xnnpack/README.md, "Sparse Inference"), one entry of `RULES`
each, checked in order; the first that fails is the reason. Given the measuring host, one
more rule comes first: on x86, XNNPACK's `xnn_is_chw_compatible_config` turns the sparse path
off when the CPU has AVX ("dense inference is expected to be faster"), so on such a machine
no artifact runs sparse. `benchmarks/sparse_inference.py` checks the verdict against latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekeras.readers import tflite as reader

SOURCE = (
    "derived from XNNPACK's sparse-inference rules applied to the artifact (ai-edge-litert reports nothing at run time)"
)
MIN_ZEROS_1X1 = 2 / 3  # of all 1x1 CONV_2D filter weights in the cluster
UNARY = {
    "ABS", "CEIL", "ELU", "FLOOR", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "NEG", "RELU", "RELU6",
    "RELU_N1_TO_1", "ROUND", "SQUARE",
}  # fmt: skip
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL")
FLOAT_PRECISIONS = ("fp32", "fp16")  # fp16 weights are unpacked to float32 at load time


@dataclass
class Graph:
    """The serving subgraph with what the rules look up."""

    model: object  # readers.tflite.TFLiteModel
    producers: dict
    consumers: dict
    first: int | None = None  # index of the first conv in model.ops
    mean: int | None = None  # index of the spatial MEAN that ends the cluster

    def tensor(self, index):
        return self.model.tensors[index]

    def values(self, index):
        """(constant tensor, its stored values) behind an input (through DENSIFY), or None."""
        t = reader.weight_source(self.model.main, index, self.producers)
        if t is None:
            return None
        stored = self.model.constant(t)
        return None if stored is None else (t, stored)

    def padding(self, op):
        """Explicit (top, bottom, left, right) of a VALID conv fed by a PAD, else None."""
        if op.options.get("padding") != "VALID":
            return None
        pad = self.producers.get(op.inputs[0])
        if pad is None or pad.name not in ("PAD", "PADV2"):
            return (0, 0, 0, 0)
        found = self.values(pad.inputs[1])
        if found is None:
            return None
        p = found[1].reshape(-1, 2)
        if len(p) != 4 or p[0].any() or p[3].any():
            return None
        return int(p[1][0]), int(p[1][1]), int(p[2][0]), int(p[2][1])


def _float(g):
    precision = reader.detect_precision(g.model)
    if precision not in FLOAT_PRECISIONS:
        return f"the artifact is {precision}; XNNPACK's sparse path runs float32 models only"
    return None


def _sparse_stored(g):
    if not reader.sparse_storage(g.model)["densify_ops"]:
        return (
            "no weight is stored sparse (no DENSIFY op): convert with the quantize recipe setting "
            "'sparse_weights: on' (the converter's sparsity optimization)"
        )
    return None


def _first_conv(g):
    """Finds the graph's first weighted op and checks it: ops before it (a Rescaling's MUL, a
    PAD) stay outside the sparse cluster, which starts at that convolution."""
    for i, op in enumerate(g.model.ops):
        if op.name in WEIGHTED_OPS:
            g.first = i
            return _check_first(g, op)
    return "the graph has no convolution"


def _filter_shape(g, op):
    """The constant filter's shape of a convolution, or None when it is computed at run time."""
    t = reader.weight_source(g.model.main, op.inputs[1], g.producers)
    return None if t is None else t.shape


def _check_first(g, op):
    if op.name != "CONV_2D":
        return f"the graph's first weighted op is {op.name}, not a 3x3 stride-2 CONV_2D over 3 channels"
    w = _filter_shape(g, op)
    if w is None:
        return "the first CONV_2D's filter is computed at run time, not a constant"
    if tuple(w[1:]) != (3, 3, 3):
        return f"the first CONV_2D has a {w[1]}x{w[2]} kernel over {w[3]} channels, not 3x3 over 3"
    if op.options["stride"] != (2, 2) or op.options["dilation"] != (1, 1):
        return (
            f"the first CONV_2D has stride {op.options['stride']} and dilation {op.options['dilation']}, "
            "not stride 2 without dilation"
        )
    if g.padding(op) != (1, 1, 1, 1):
        return (
            "the first CONV_2D is not padded 1 on each side explicitly: TFLite's SAME padding reaches XNNPACK "
            "as a TensorFlow-SAME flag without explicit padding, which the sparse path refuses "
            "(in Keras: ZeroPadding2D(1) then Conv2D(..., 3, strides=2, padding='valid'))"
        )
    return None


def _ends_with_mean(g):
    for i, op in enumerate(g.model.ops[g.first + 1 :], start=g.first + 1):
        if op.name == "MEAN" and len(g.tensor(op.inputs[0]).shape) == 4:
            axes = g.values(op.inputs[1])
            if axes is not None and {int(a) % 4 for a in axes[1]} == {1, 2}:
                g.mean = i
                return None
    return "no MEAN over the spatial axes (GlobalAveragePooling2D) follows the first convolution"


def _conv_1x1(g, op):
    w = _filter_shape(g, op)
    if w is None:
        return "a CONV_2D whose filter is computed at run time"
    if tuple(w[1:3]) != (1, 1):
        return f"a {w[1]}x{w[2]} CONV_2D (only 1x1 convolutions after the first)"
    if op.options["stride"] != (1, 1) or op.options["dilation"] != (1, 1):
        return "a 1x1 CONV_2D with stride or dilation"
    return None


def _depthwise(g, op):
    w = _filter_shape(g, op)
    if w is None:
        return "a DEPTHWISE_CONV_2D whose filter is computed at run time"
    k = w[1]
    if w[1] != w[2] or k not in (3, 5):
        return f"a {w[1]}x{w[2]} DEPTHWISE_CONV_2D (3x3 or 5x5 only)"
    if op.options["stride"] not in ((1, 1), (2, 2)) or op.options["dilation"] != (1, 1):
        return "a DEPTHWISE_CONV_2D with stride other than 1 or 2, or dilation"
    if op.options.get("depth_multiplier", 1) != 1:
        return "a DEPTHWISE_CONV_2D with depth multiplier > 1"
    if g.padding(op) != (k // 2,) * 4:
        return (
            f"a {k}x{k} DEPTHWISE_CONV_2D not padded {k // 2} on each side explicitly (SAME padding is refused: "
            f"ZeroPadding2D({k // 2}) then DepthwiseConv2D(..., padding='valid'))"
        )
    return None


def _binary(g, op):
    for i in op.inputs:
        t = g.tensor(i)
        if t.constant and sum(1 for d in t.shape if d not in (1, None)) > 1:
            return f"{op.name} with a constant that is not a scalar or vector"
        if not t.constant and len(t.shape) != 4:
            return f"{op.name} on a {len(t.shape)}-D tensor"
    return None


def _pad(g, op):
    users = g.consumers.get(op.outputs[0], [])
    return (
        None
        if users and all(u.name in ("CONV_2D", "DEPTHWISE_CONV_2D") for u in users)
        else "a PAD not before a convolution"
    )


# Ops the cluster between the first convolution and the MEAN may hold, each with its check.
CLUSTER_OPS = {
    "CONV_2D": _conv_1x1,
    "DEPTHWISE_CONV_2D": _depthwise,
    "ADD": _binary,
    "MUL": _binary,
    "PAD": _pad,
    "RESIZE_BILINEAR": lambda g, op: None,
    "DENSIFY": lambda g, op: None,
    "DEQUANTIZE": lambda g, op: None,
    **{name: (lambda g, op: None) for name in UNARY},
}


def _cluster_ops(g):
    for op in g.model.ops[g.first + 1 : g.mean]:
        check = CLUSTER_OPS.get(op.name)
        problem = f"{op.name} (not one XNNPACK runs sparse)" if check is None else check(g, op)
        if problem:
            return f"between the first convolution and the MEAN there is {problem}"
    return None


def _zeros_1x1(g):
    zeros = total = 0
    for op in g.model.ops[g.first + 1 : g.mean]:
        found = g.values(op.inputs[1]) if op.name == "CONV_2D" else None
        if found is not None:
            t, stored = found
            size = int(np.prod([d or 1 for d in t.shape]))
            zeros += int(np.count_nonzero(stored == 0)) + (size - stored.size if t.sparse else 0)
            total += size
    if not total:
        return "the cluster has no 1x1 CONV_2D to run sparse"
    if zeros / total < MIN_ZEROS_1X1:
        return f"the 1x1 CONV_2D filters are {zeros / total:.1%} zeros; XNNPACK needs at least 2/3"
    return None


# (rule, what it requires, check(graph) -> failure text or None), in XNNPACK's order of concern.
RULES = (
    ("float", "float32 compute (fp32 or fp16-weight artifact)", _float),
    ("sparse_weights", "weights stored sparse (DENSIFY ops)", _sparse_stored),
    ("first_conv", "the first weighted op is a 3x3 stride-2 CONV_2D over 3 channels, padded 1 each side", _first_conv),
    ("spatial_mean", "ends with a MEAN over the spatial axes", _ends_with_mean),
    ("cluster_ops", "only 1x1 CONV_2D, 3x3/5x5 DEPTHWISE_CONV_2D, ADD/MUL and unary ops in between", _cluster_ops),
    ("zeros_1x1", "at least 2/3 zeros across the 1x1 CONV_2D filters", _zeros_1x1),
)


def host_problem(host):
    """Why XNNPACK runs nothing sparse on `host` (bench's `host` record), or None."""
    if host.get("x86_avx"):
        return (
            f"this {host.get('machine', 'x86')} CPU has AVX, and XNNPACK enables its sparse kernels on x86 "
            "only without AVX (where, its source says, dense inference is expected to be faster); "
            "the sparse path runs on ARM, WebAssembly and x86 without AVX"
        )
    return None


def verdict(source, host=None):
    """{"path": "sparse"|"dense", "rule", "reason", "source"} for a `.tflite` path, bytes or
    `readers.tflite.TFLiteModel`: `rule` names the first rule of `RULES` the artifact fails
    ("cpu" when `host`, bench's record of the measuring machine, rules the path out).
    Without `host`, "sparse" means the artifact qualifies wherever XNNPACK's sparse kernels run."""
    model = source if isinstance(source, reader.TFLiteModel) else reader.read(source)
    g = Graph(model, model.producers(), model.consumers())
    for rule, _, check in RULES:
        problem = check(g)
        if problem:
            return {"path": "dense", "rule": rule, "reason": problem, "source": SOURCE}
    problem = host_problem(host or {})
    if problem:
        return {"path": "dense", "rule": "cpu", "reason": f"the artifact qualifies, but {problem}", "source": SOURCE}
    where = "on this machine" if host else "on ARM, WebAssembly and x86 CPUs without AVX"
    return {
        "path": "sparse",
        "rule": None,
        "reason": f"every rule of XNNPACK's sparse path holds {where}",
        "source": SOURCE,
    }
