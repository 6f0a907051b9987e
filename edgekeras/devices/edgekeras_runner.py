#!/usr/bin/env python3
"""edgekeras on-device runner: latency, cold start, memory and delegation of one model.

One file: Python 3.7+, the standard library, numpy and one runtime -- ai-edge-litert or
tflite-runtime for `.tflite`, onnxruntime for `.onnx`. No TensorFlow, no edgekeras. Copy it
to a board and run

    python3 edgekeras_runner.py model.tflite --threads 4 --runs 200 --json

It prints one JSON document in the schema of `edgekeras bench --json`
(edgekeras/schemas/bench.schema.json). With `--outputs OUT.npz` it runs the model on every
row of `--inputs` instead and saves the outputs, named like the model's, for a host to
compare with its reference (`edgekeras deploy --device` validates this way). This file is the only implementation of the
measurement: `edgekeras bench` runs it as a child process (locally, or through ssh on a
device) and edgekeras' runtime sessions are built on its backends, so a workstation and a
board measure with the same code.

Exit codes: 0 ok, 2 bad input (arguments, input files, a model or option the runtime refuses).
"""

import argparse
import collections
import datetime
import difflib
import functools
import hashlib
import importlib
import json
import os
import platform
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:  # reported by benchmark()/main() with what to install
    np = None

SCHEMA_VERSION = 1
PROG = "edgekeras_runner"
ERROR_PREFIX = PROG + ": error: "  # argparse uses the same prefix for usage errors
PROGRESS_PREFIX = PROG + ": progress "  # "done/total" lines for edgekeras' progress bar
QUANTIZED = ("int8", "uint8", "int16")
PROGRESS_EVERY_NS = 250_000_000


class RunnerError(Exception):
    """Bad input, or a model/option the runtime refuses: printed as one line, exit code 2."""


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _require_numpy():
    if np is None:
        raise RunnerError(
            f"Expected numpy in this Python ({sys.executable} {platform.python_version()}). Received: no numpy module. Install it with "
            "'pip install numpy' (or 'pip install \"numpy<2\"' next to tflite-runtime)."
        )


def _spec(name, shape, dtype):
    return {"name": name, "shape": [None if d is None or d < 0 else int(d) for d in shape], "dtype": dtype}


def quantize(array, scale, zero_point, dtype):
    """Float array -> integer tensor with the tensor's scale and zero point."""
    info = np.iinfo(dtype)
    q = np.round(array / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(array, scale, zero_point):
    return (array.astype(np.float32) - zero_point) * scale


# --------------------------------------------------------------------------- runtimes


class _Runtime:
    """Each runtime declares NAME, SUFFIXES, OPTIONS (its keyword options), INSTALL (what to pip
    install) and MODULES: (module, (distribution, ...)) in order of preference."""

    @classmethod
    def installed(cls):
        """(distribution, version) of the first runtime package present, or None; imports nothing."""
        import importlib.util

        for module, dists in cls.MODULES:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                return _distribution(dists)
        return None

    @classmethod
    def load_module(cls):
        """(module, distribution, version) of the first runtime package that imports."""
        for module, dists in cls.MODULES:
            try:
                mod = importlib.import_module(module)
            except ImportError:
                continue
            dist, version = _distribution(dists)
            return mod, dist, version if version != "unknown" else str(getattr(mod, "__version__", version))
        raise RunnerError(
            "Expected the {} runtime (Python module {}) in this Python ({} {}). Received: none "
            "installed. Install it with '{}'.".format(
                cls.NAME,
                " or ".join(m.split(".")[0] for m, _ in cls.MODULES),
                sys.executable,
                platform.python_version(),
                cls.INSTALL,
            )
        )


def _distribution(dists):
    for dist in dists:
        try:
            from importlib import metadata

            return dist, metadata.version(dist)
        except Exception:  # another distribution, or Python 3.7 (no importlib.metadata)
            continue
    return dists[0], "unknown"


class LiteRT(_Runtime):
    """A `.tflite` model in ai-edge-litert, or in tflite-runtime where that is what is installed.

    Inputs and outputs go through the model's signature, by name (TFLite's tensor order is
    not Keras'). Quantized inputs/outputs are (de)quantized here: callers see floats.
    """

    NAME = "litert"
    SUFFIXES = (".tflite",)
    MODULES = (("ai_edge_litert.interpreter", ("ai-edge-litert",)), ("tflite_runtime.interpreter", ("tflite-runtime",)))
    INSTALL = 'pip install ai-edge-litert (or, where it has no wheel, pip install tflite-runtime "numpy<2")'
    OPTIONS = ("xnnpack", "delegate")

    def __init__(self, path, threads=None, xnnpack=True, delegate=None):
        module, self.package, self.runtime_version = self.load_module()
        self.path, self.threads, self.xnnpack, self.delegate = str(path), threads, xnnpack, delegate
        kwargs = {"model_path": self.path}
        if threads:
            kwargs["num_threads"] = int(threads)
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if delegate:
            kwargs["experimental_delegates"] = [_load_delegate(module, delegate)]
        try:
            self.interpreter = module.Interpreter(**kwargs)
            # external delegates are applied in the constructor, XNNPACK lazily at allocation
            self._external_nodes = _delegate_node_count(self.interpreter)
            self.interpreter.allocate_tensors()
        except SystemError as e:  # tflite-runtime 2.14 built against numpy 1, running on numpy 2
            raise RunnerError(
                f"Could not load '{path}' with {self.package} {self.runtime_version}: {_first_line(e)}. It needs numpy<2; this Python has numpy {np.__version__}: "
                'pip install "numpy<2".'
            ) from None
        except (ValueError, RuntimeError) as e:
            raise RunnerError(f"Could not load '{path}' as a TFLite model: {_first_line(e)}") from None
        self._in, self._out = self._signature_details()
        self.inputs = [self._caller_spec(n, d) for n, d in self._in.items()]
        self.outputs = [self._caller_spec(n, d) for n, d in self._out.items()]
        self._shapes = {n: tuple(d["shape"]) for n, d in self._in.items()}
        self.invoke = self.interpreter.invoke  # the timed call: nothing of ours around it

    def _signature_details(self):
        """{name: tensor details} for inputs and outputs, named by the signature when there is one."""
        inputs = {d["index"]: d for d in self.interpreter.get_input_details()}
        outputs = {d["index"]: d for d in self.interpreter.get_output_details()}
        full = getattr(self.interpreter, "_get_full_signature_list", None)
        signatures = (full() if full else None) or {}
        if signatures:
            sig = signatures.get("serving_default") or next(iter(signatures.values()))
            if set(sig["inputs"].values()) == set(inputs) and set(sig["outputs"].values()) == set(outputs):
                return (
                    {n: inputs[i] for n, i in sig["inputs"].items()},
                    {n: outputs[i] for n, i in sig["outputs"].items()},
                )
        return {d["name"]: d for d in inputs.values()}, {d["name"]: d for d in outputs.values()}

    @staticmethod
    def _caller_spec(name, d):
        dtype = np.dtype(d["dtype"]).name
        if dtype in QUANTIZED and d["quantization"][0]:
            dtype = "float32"  # quantized I/O: callers see floats
        return _spec(name, d.get("shape_signature", d["shape"]), dtype)

    def set_inputs(self, feeds):
        """Sets {input name: array}: resizes for a new batch shape, quantizes float data."""
        resized = [name for name, arr in feeds.items() if self._shapes.get(name) != arr.shape]
        for name in resized:
            self.interpreter.resize_tensor_input(self._in[name]["index"], list(feeds[name].shape), strict=False)
            self._shapes[name] = feeds[name].shape
        if resized:
            self.interpreter.allocate_tensors()
        for name, arr in feeds.items():
            d = self._in[name]
            if np.dtype(d["dtype"]).name in QUANTIZED and np.issubdtype(arr.dtype, np.floating):
                scale, zero = d["quantization"]
                arr = quantize(arr, scale, zero, d["dtype"])
            self.interpreter.set_tensor(d["index"], np.ascontiguousarray(arr, dtype=d["dtype"]))

    def get_outputs(self):
        out = {name: self.interpreter.get_tensor(d["index"]) for name, d in self._out.items()}
        return {
            name: dequantize(arr, *self._out[name]["quantization"])
            if arr.dtype.name in QUANTIZED and self._out[name]["quantization"][0]
            else arr
            for name, arr in out.items()
        }

    def details(self):
        """Settings plus how many of the model's ops each delegate took (read from the graph)."""
        info = {"xnnpack": self.xnnpack, "delegate": self.delegate, "num_threads": self.threads}
        info.update(_delegation(self.interpreter, self._external_nodes, "xnnpack" if self.xnnpack else "default"))
        return info


def _load_delegate(module, path):
    if not os.path.isfile(path):
        raise RunnerError(
            "Expected --delegate to be the path of a TFLite delegate library on this machine. "
            f"Received: '{path}', which does not exist."
        )
    import ctypes

    problem, library = None, os.path.abspath(path)  # a bare name would be searched in the library path
    try:  # checked first: the runtime's loader fails on a missing symbol with noise from __del__
        if not hasattr(ctypes.CDLL(library), "tflite_plugin_create_delegate"):
            problem = "it does not export tflite_plugin_create_delegate"
    except OSError as e:
        problem = _first_line(e)
    if problem is None:
        try:
            return module.load_delegate(library)
        except (ValueError, OSError, RuntimeError, AttributeError) as e:
            problem = _first_line(e)
    raise RunnerError(f"Expected --delegate to be a TFLite external delegate library. Received: '{path}': {problem}.")


def _ops(interpreter):
    """[(op name, inputs, outputs)] of the primary subgraph's nodes, delegate kernels included."""
    return [
        (d["op_name"], [int(t) for t in d["inputs"]], [int(t) for t in d["outputs"]])
        for d in interpreter._get_ops_details()
    ]


def _delegate_node_count(interpreter):
    try:
        return sum(1 for op in _ops(interpreter) if op[0] == "DELEGATE")
    except (AttributeError, RuntimeError, ValueError):
        return 0


def _delegation(interpreter, external_nodes, default_label):
    """Which of the model's ops delegates replaced.

    A delegate kernel node (op "DELEGATE") takes its partition's inputs and produces its
    outputs; the model ops it replaced are those reached walking back from its outputs to its
    inputs. Kernels present before tensor allocation come from --delegate, the rest from the
    default delegate (XNNPACK).
    """
    try:
        ops = _ops(interpreter)
    except (AttributeError, RuntimeError, ValueError):  # an interpreter without node introspection
        return {
            "ops_total": None,
            "ops_delegated": None,
            "delegate_share": None,
            "delegated_by": {},
            "ops_not_delegated": {},
        }
    model_ops = [i for i, op in enumerate(ops) if op[0] != "DELEGATE"]
    producer = {t: i for i in model_ops for t in ops[i][2]}
    replaced, by = set(), {}
    for rank, node in enumerate(i for i, op in enumerate(ops) if op[0] == "DELEGATE"):
        stop, stack, taken = set(ops[node][1]), list(ops[node][2]), set()
        while stack:
            i = producer.get(stack.pop())
            if i is None or i in taken:
                continue
            taken.add(i)
            stack.extend(t for t in ops[i][1] if t >= 0 and t not in stop)
        label = "external" if rank < external_nodes else default_label
        by[label] = by.get(label, 0) + len(taken - replaced)
        replaced |= taken
    left = collections.Counter(ops[i][0] for i in model_ops if i not in replaced)
    total = len(model_ops)
    return {
        "ops_total": total,
        "ops_delegated": len(replaced),
        "delegate_share": len(replaced) / total if total else 0.0,
        "delegated_by": by,
        "ops_not_delegated": dict(left),
    }


class OnnxRuntime(_Runtime):
    """An `.onnx` model in ONNX Runtime, with any execution provider it offers."""

    NAME = "onnxruntime"
    SUFFIXES = (".onnx",)
    MODULES = (
        (
            "onnxruntime",
            ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-qnn"),
        ),
    )
    INSTALL = "pip install onnxruntime (onnxruntime-gpu for CUDA)"
    OPTIONS = ("provider",)
    DTYPES = {
        "tensor(float)": "float32",
        "tensor(double)": "float64",
        "tensor(float16)": "float16",
        "tensor(int64)": "int64",
        "tensor(int32)": "int32",
        "tensor(int16)": "int16",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(uint16)": "uint16",
        "tensor(bool)": "bool",
        "tensor(string)": "str",
    }

    def __init__(self, path, threads=None, provider=None):
        ort, self.package, self.runtime_version = self.load_module()
        self.path, self.threads = str(path), threads
        available = ort.get_available_providers()
        self.providers_requested = [provider or "CPUExecutionProvider"]
        if self.providers_requested[0] not in available:
            if provider in ort.get_all_providers():  # a real provider this build or machine lacks
                hint = " It is not in this onnxruntime build ({} {}){}.".format(
                    self.package,
                    self.runtime_version,
                    (
                        "; CUDA needs onnxruntime-gpu (instead of onnxruntime) and an NVIDIA GPU"
                        if "CUDA" in provider or "Tensorrt" in provider
                        else ""
                    ),
                )
            else:
                close = difflib.get_close_matches(provider, available, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RunnerError(
                "Expected an ONNX Runtime provider available here: {}. Received: '{}'.{}".format(
                    ", ".join(available), provider, hint
                )
            )
        self._ort = ort
        try:
            self.session = ort.InferenceSession(self.path, self._options(), providers=self.providers_requested)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise RunnerError(f"Could not load '{path}' as an ONNX model: {_first_line(e)}") from None
        used = self.session.get_providers()
        if provider and provider not in used:
            raise RunnerError(
                "Expected ONNX Runtime to run '{}' with {}. Received: a session on {} only (the "
                "provider failed to start; check its drivers).".format(path, provider, ", ".join(used))
            )
        self.inputs, self.outputs = (
            [
                _spec(n.name, [d if isinstance(d, int) else None for d in n.shape], self.DTYPES.get(n.type, "float32"))
                for n in nodes
            ]
            for nodes in (self.session.get_inputs(), self.session.get_outputs())
        )
        self._names = [o["name"] for o in self.outputs]
        self._feeds = None
        self.invoke = None  # set by set_inputs

    def _options(self, profile_prefix=None):
        options = self._ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
            options.inter_op_num_threads = 1
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        return options

    def set_inputs(self, feeds):
        dtypes = {s["name"]: s["dtype"] for s in self.inputs}
        self._feeds = {n: np.ascontiguousarray(a, dtype=dtypes[n]) for n, a in feeds.items()}
        # the timed call is ORT's own run, bound with its arguments (no Python frame of ours)
        self.invoke = functools.partial(self.session.run, self._names, self._feeds)

    def get_outputs(self):
        return dict(zip(self._names, self.session.run(self._names, self._feeds)))

    def details(self):
        """Providers of the session, and which provider ran each node (from one profiled run)."""
        info = {
            "providers_requested": self.providers_requested,
            "providers": self.session.get_providers(),
            "intra_op_num_threads": self.session.get_session_options().intra_op_num_threads,
        }
        info.update(self._node_providers())
        return info

    def _node_providers(self):
        """Counts of graph nodes (after ORT's optimisations) per provider, from a profiled session."""
        folder = tempfile.mkdtemp(prefix="edgekeras-ort-")
        try:
            session = self._ort.InferenceSession(
                self.path, self._options(os.path.join(folder, "profile")), providers=self.providers_requested
            )
            session.run(self._names, self._feeds)
            with open(session.end_profiling()) as f:
                events = json.load(f)
        except Exception:  # profiling is informative only; the measurement already succeeded
            return {"nodes_total": None, "node_providers": {}}
        finally:
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
        nodes = {
            e["name"][: -len("_kernel_time")]: (e.get("args") or {}).get("provider", "unknown")
            for e in events
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
        }
        return {"nodes_total": len(nodes), "node_providers": dict(collections.Counter(nodes.values()))}


RUNTIMES = {LiteRT.NAME: LiteRT, OnnxRuntime.NAME: OnnxRuntime}


def runtime_for(path, runtime=None):
    """The runtime class for `path` (by suffix), or the one named, checked against the suffix."""
    suffix = os.path.splitext(str(path))[1].lower()
    fits = [name for name, cls in RUNTIMES.items() if suffix in cls.SUFFIXES]
    if not fits:
        raise RunnerError(f"Expected a .tflite or .onnx model. Received: '{path}'.")
    if runtime is None:
        return RUNTIMES[fits[0]]
    if runtime not in RUNTIMES:
        close = difflib.get_close_matches(runtime, list(RUNTIMES), n=1)
        raise RunnerError(
            "Expected --runtime to be one of {}. Received: '{}'.{}".format(
                ", ".join(repr(r) for r in sorted(RUNTIMES)), runtime, f" Did you mean '{close[0]}'?" if close else ""
            )
        )
    if runtime not in fits:
        raise RunnerError(
            "Expected a runtime that runs {} models ({}). Received: --runtime {}.".format(
                suffix, ", ".join(fits), runtime
            )
        )
    return RUNTIMES[runtime]


# --------------------------------------------------------------------------- inputs


def generate_inputs(specs, batch_size=1, seed=0):
    """Inputs drawn from the signature: uniform [0, 1) floats, integers in [0, 10)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple([batch_size] + [d or 1 for d in spec["shape"][1:]]) if spec["shape"] else ()
        if np.issubdtype(np.dtype(spec["dtype"]), np.integer):
            feeds[spec["name"]] = rng.integers(0, 10, size=shape).astype(spec["dtype"])
        else:
            feeds[spec["name"]] = rng.random(shape).astype(spec["dtype"])
    return feeds


def read_inputs(path, specs, batch_size=1, label=None, all_rows=False):
    """The first `batch_size` rows (every row with `all_rows`) of each input from a .npz (arrays
    named after the inputs, 'x' for a single-input model, labels 'y'/'y_*' ignored) or a .npy
    (single-input models)."""
    label = label or f"'{path}'"  # how messages name the file (edgekeras passes the user's path)
    if not os.path.isfile(str(path)):
        raise RunnerError(f"Expected an inputs file (.npz or .npy). Received: {label}, which does not exist.")
    try:
        with open(str(path), "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                arrays = {"x": loaded}
            else:
                arrays = {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, KeyError) as e:
        raise RunnerError(f"Could not read {label} as a .npz or .npy file: {_first_line(e)}") from None
    names = {s["name"] for s in specs}
    arrays = {k: v for k, v in arrays.items() if k in names or not (k == "y" or k.startswith("y_"))}
    return check_inputs(specs, arrays, batch_size, label, all_rows)


def check_inputs(specs, feeds, batch_size, label="the inputs", all_rows=False):
    """The first `batch_size` rows (every row with `all_rows`) of each input, checked against
    the model's inputs (names, shape, finite values; 'x' stands for a single input) and cast to
    the input dtypes."""
    names = [s["name"] for s in specs]
    if len(names) == 1 and names[0] not in feeds and list(feeds) == ["x"]:
        feeds = {names[0]: feeds["x"]}
    if sorted(feeds) != sorted(names):
        raise RunnerError(
            f"Expected arrays named {names} in {label} (a single-input model also takes 'x'). Received: {sorted(feeds)}."
        )
    out = {}
    for spec in specs:
        arr = np.asarray(feeds[spec["name"]])
        shape = spec["shape"]
        fits = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape[1:], arr.shape[1:]))
        if not fits or (shape and arr.shape[0] < batch_size):
            want = tuple("N" if s is None else s for s in shape)
            raise RunnerError(
                "Expected input '{}' in {} of shape {} with at least {} row(s). Received: an array of shape {}.".format(
                    spec["name"], label, want, batch_size, arr.shape
                )
            )
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise RunnerError(
                "Expected finite values for input '{}' in {}. Received: {} NaN/Inf values.".format(
                    spec["name"], label, int(np.sum(~np.isfinite(arr)))
                )
            )
        rows = arr if all_rows or not arr.ndim else arr[:batch_size]
        out[spec["name"]] = rows.astype(spec["dtype"], copy=False)
    return out


def fixed_batch(specs):
    """The model's fixed batch size (e.g. 1 for recurrent TFLite models), or None when dynamic."""
    dims = {tuple(s["shape"][:1]) for s in specs if s["shape"]}
    return dims.pop()[0] if len(dims) == 1 and (None,) not in dims else None


def run_rows(run, feeds, batch=None, chunk=64):
    """{output: array} of `run(feeds)` over every row, in slices of `chunk` rows; a model of
    fixed `batch` gets slices of exactly that size (the last padded by repeating its final row,
    the padding dropped from the outputs)."""
    n = len(next(iter(feeds.values())))
    size = batch or chunk
    parts = []
    for start in range(0, n, size):
        part = {k: v[start : start + size] for k, v in feeds.items()}
        rows = len(next(iter(part.values())))
        if batch and rows < batch:
            part = {k: np.concatenate([v, np.repeat(v[-1:], batch - rows, axis=0)]) for k, v in part.items()}
        parts.append({k: np.asarray(v)[:rows] for k, v in run(part).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --------------------------------------------------------------------------- measuring


def time_invocations(invoke, runs, warmup, on_progress=None):
    """The timed loop: only `invoke` (the runtime's own call) sits between two clock reads."""
    for _ in range(warmup):
        invoke()
    samples = [0] * runs
    clock = time.perf_counter_ns
    # progress at most 4 times a second: each report wakes the reader (edgekeras, ssh), whose CPU
    # time a multi-threaded runtime on a small board would otherwise feel
    due = clock() + PROGRESS_EVERY_NS if on_progress is not None else float("inf")
    for i in range(runs):
        start = clock()
        invoke()
        end = clock()
        samples[i] = end - start
        if end >= due:
            on_progress(i + 1, runs)
            due = clock() + PROGRESS_EVERY_NS
    if on_progress is not None:
        on_progress(runs, runs)
    return samples


def latency_stats(samples_ns):
    """mean, std, min, p50, p90, p99, max in milliseconds (linear-interpolated percentiles)."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


class MemoryMeter:
    """Resident memory of this process around a benchmark.

    On Linux the peak (VmHWM) is reset just before the model is loaded (/proc/self/clear_refs),
    so the peak covers load + inference only; elsewhere it is the process' lifetime peak
    (getrusage), which in a fresh runner process differs only by what Python and the runtime
    library took before the load (`baseline_rss_mb`).
    """

    def __init__(self):
        self.scope = "process_lifetime"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.scope = "since_load"
        except OSError:
            pass
        self.baseline_kb = self._status_kb("VmRSS") or self._maxrss_kb()

    @staticmethod
    def _status_kb(field):
        try:
            with open("/proc/self/status") as f:
                return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), None)
        except (OSError, ValueError):
            return None

    @staticmethod
    def _maxrss_kb():
        try:
            import resource
        except ImportError:  # Windows: no getrusage
            return 0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB elsewhere

    def read(self):
        peak = (self._status_kb("VmHWM") if self.scope == "since_load" else None) or self._maxrss_kb()
        return {
            "peak_rss_mb": peak / 1024.0,
            "baseline_rss_mb": self.baseline_kb / 1024.0,
            "model_rss_mb": max(0, peak - self.baseline_kb) / 1024.0,
            "memory_scope": self.scope,
        }


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(functools.partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def host_info():
    """What machine and software measured: lands in every result."""
    return {
        "hostname": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "x86_avx": _x86_avx(),
    }


def _x86_avx():
    """Whether an x86 CPU has AVX (Linux: /proc/cpuinfo); None on other CPUs or when unknown.
    XNNPACK's sparse path is off on x86 CPUs with AVX (edgekeras.xnnpack_sparse)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else "avx" in flags


def benchmark(
    path,
    runtime=None,
    threads=None,
    runs=100,
    warmup=10,
    inputs=None,
    batch_size=1,
    inputs_label=None,
    on_progress=None,
    fresh_process=False,
    **options,
):
    """Measures the model at `path`; returns one `result` of bench.schema.json as a dict.

    `inputs` is None (generated from the signature), a .npz/.npy path, or {input name: array}.
    `options` are the runtime's: xnnpack/delegate for litert, provider for onnxruntime.
    Raises `RunnerError` for bad input or a model the runtime refuses.
    """
    _require_numpy()
    for name, value, low in (
        ("--runs", runs, 1),
        ("--warmup", warmup, 0),
        ("--batch-size", batch_size, 1),
        ("--threads", 1 if threads is None else threads, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise RunnerError(f"Expected {name} to be an integer >= {low}. Received: {value!r}.")
    path = str(path)
    cls = runtime_for(path, runtime)
    if not os.path.isfile(path):
        raise RunnerError(f"Expected a model file. Received: '{path}', which does not exist.")
    options = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(options) - set(cls.OPTIONS))
    if wrong:
        raise RunnerError(
            "Expected options that runtime '{}' takes ({}). Received: {}.".format(
                cls.NAME, ", ".join(cls.OPTIONS), ", ".join(wrong)
            )
        )
    t = time.perf_counter()
    cls.load_module()
    import_ms = (time.perf_counter() - t) * 1e3
    memory = MemoryMeter()
    t0 = time.perf_counter()
    session = cls(path, threads=threads, **options)
    load_ms = (time.perf_counter() - t0) * 1e3
    if inputs is None:
        feeds, source = generate_inputs(session.inputs, batch_size), "generated"
    elif isinstance(inputs, dict):
        feeds, source = check_inputs(session.inputs, inputs, batch_size, inputs_label or "the inputs"), "given"
    else:
        feeds, source = read_inputs(inputs, session.inputs, batch_size, inputs_label), "file"
    t1 = time.perf_counter()
    try:
        session.set_inputs(feeds)
        t2 = time.perf_counter()
        session.invoke()
        t3 = time.perf_counter()
        samples = time_invocations(session.invoke, runs, warmup, on_progress)
    except (RuntimeError, ValueError) as e:
        raise RunnerError(f"{cls.NAME} could not run '{path}': {_first_line(e)}") from None
    result = {
        "artifact": path,
        "format": cls.SUFFIXES[0][1:],
        "size_bytes": os.path.getsize(path),
        "sha256": _sha256(path),
        "runtime": cls.NAME,
        "runtime_package": session.package,
        "runtime_version": session.runtime_version,
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "batch_size": batch_size,
        "inputs": source,
        "import_ms": import_ms,
        "load_ms": load_ms + (t2 - t1) * 1e3,
        "first_inference_ms": (t3 - t2) * 1e3,
    }
    result["cold_start_ms"] = result["load_ms"] + result["first_inference_ms"]
    result["latency_ms"] = latency_stats(samples)
    result.update(memory.read())  # before details(): ORT's node report loads a second session
    result["fresh_process"] = bool(fresh_process)
    result["details"] = session.details()
    result["host"] = host_info()
    result["device"] = None
    result["timestamp"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return result


def compute_outputs(path, inputs, out, runtime=None, threads=None, inputs_label=None, **options):
    """Runs the model at `path` on every row of the `inputs` file and saves {output: array} to
    the `.npz` file `out`; returns a small summary dict. Raises `RunnerError` for bad input."""
    _require_numpy()
    path = str(path)
    cls = runtime_for(path, runtime)
    if not os.path.isfile(path):
        raise RunnerError(f"Expected a model file. Received: '{path}', which does not exist.")
    session = cls(path, threads=threads, **{k: v for k, v in options.items() if v is not None})
    feeds = read_inputs(inputs, session.inputs, 1, inputs_label, all_rows=True)

    def run(part):
        session.set_inputs(part)
        session.invoke()
        return session.get_outputs()

    try:
        outputs = run_rows(run, feeds, fixed_batch(session.inputs))
    except (RuntimeError, ValueError) as e:
        raise RunnerError(f"{cls.NAME} could not run '{path}': {_first_line(e)}") from None
    with open(out, "wb") as f:
        np.savez(f, **outputs)
    rows = len(next(iter(feeds.values())))
    return {"artifact": path, "runtime": cls.NAME, "rows": rows, "outputs": sorted(outputs), "host": host_info()}


def document(results):
    """The JSON document `--json` prints (bench.schema.json's top level)."""
    return {"schema_version": SCHEMA_VERSION, "results": list(results)}


# --------------------------------------------------------------------------- command line


def _summary(r):
    lat, d = r["latency_ms"], r["details"]
    lines = [
        "{}  {} ({} {})  threads {}  batch {}".format(
            os.path.basename(r["artifact"]),
            r["runtime"],
            r["runtime_package"],
            r["runtime_version"],
            r["threads"] or "default",
            r["batch_size"],
        ),
        "cold start {:.2f} ms (load {:.2f} + first inference {:.3f})".format(
            r["cold_start_ms"], r["load_ms"], r["first_inference_ms"]
        ),
        "latency ms over {} runs: ".format(r["runs"])
        + "  ".join(f"{k} {lat[k]:.3f}" for k in ("mean", "std", "min", "p50", "p90", "p99", "max")),
        "peak RSS {:.1f} MB ({:.1f} MB above the {:.1f} MB before loading)".format(
            r["peak_rss_mb"], r["model_rss_mb"], r["baseline_rss_mb"]
        ),
    ]
    if d.get("ops_total") is not None:
        lines.append("delegated ops {}/{} {}".format(d["ops_delegated"], d["ops_total"], d["delegated_by"]))
    if d.get("node_providers"):
        lines.append("nodes per provider {}".format(d["node_providers"]))
    return "\n".join(lines)


def _progress_printer(machine_lines):
    """Progress on stderr: lines edgekeras reads (--progress-lines), a counter on a terminal, or none."""
    if not machine_lines and not sys.stderr.isatty():
        return None
    form = PROGRESS_PREFIX + "{}/{}\n" if machine_lines else "\rtimed runs {}/{}"

    def report(done, total):
        sys.stderr.write(form.format(done, total) + ("\n" if done == total and not machine_lines else ""))
        sys.stderr.flush()

    return report


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark a .tflite or .onnx model with numpy and one "
        "runtime (ai-edge-litert, tflite-runtime or onnxruntime); no TensorFlow.",
    )
    p.add_argument("model", help="the .tflite or .onnx file")
    p.add_argument("--runtime", help="litert or onnxruntime (default: by the file's suffix)")
    p.add_argument("--threads", type=int, help="runtime threads (default: the runtime's own)")
    p.add_argument("--runs", type=int, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--batch-size", type=int, default=1, help="rows per inference (default 1)")
    p.add_argument("--inputs", help=".npz with arrays named after the inputs ('x' for one input), or a .npy")
    p.add_argument("--provider", help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider")
    p.add_argument("--delegate", help="LiteRT external delegate library (.so) path")
    p.add_argument("--no-xnnpack", action="store_true", help="LiteRT without its default XNNPACK delegate")
    p.add_argument(
        "--outputs",
        help="instead of benchmarking: run every row of --inputs and save the outputs to this .npz",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (bench.schema.json)")
    p.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)  # for edgekeras
    p.add_argument("--inputs-label", help=argparse.SUPPRESS)  # how error messages name --inputs
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    options = {"provider": args.provider, "delegate": args.delegate, "xnnpack": False if args.no_xnnpack else None}
    if args.outputs:
        return _outputs_main(args, options)
    try:
        result = benchmark(
            args.model,
            runtime=args.runtime,
            threads=args.threads,
            runs=args.runs,
            warmup=args.warmup,
            inputs=args.inputs,
            batch_size=args.batch_size,
            inputs_label=args.inputs_label,
            on_progress=_progress_printer(args.progress_lines),
            fresh_process=True,
            **options,
        )
    except RunnerError as e:
        sys.stderr.write(ERROR_PREFIX + str(e) + "\n")
        return 2
    if args.json:
        print(json.dumps(document([result]), indent=2))
    else:
        print(_summary(result))
    return 0


def _outputs_main(args, options):
    if not args.inputs:
        sys.stderr.write(ERROR_PREFIX + "Expected --inputs FILE.npz with --outputs. Received: no --inputs.\n")
        return 2
    try:
        summary = compute_outputs(
            args.model,
            args.inputs,
            args.outputs,
            runtime=args.runtime,
            threads=args.threads,
            inputs_label=args.inputs_label,
            **options,
        )
    except RunnerError as e:
        sys.stderr.write(ERROR_PREFIX + str(e) + "\n")
        return 2
    print(json.dumps(summary, indent=2) if args.json else f"{summary['rows']} rows -> {args.outputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
