"""TFLite artifacts: read from the flatbuffer, and compared tensor by tensor with `--layers`.

`summarize` parses the file with the LiteRT schema (`ai_edge_litert.schema_py_generated`):
no interpreter and no TensorFlow, so it also describes models that need TensorFlow select
(Flex) ops, which ai-edge-litert cannot load. `compare` runs the artifact and its float
baseline in the LiteRT interpreter with `experimental_preserve_all_tensors` and the builtin
kernels (no XNNPACK: a delegate hides the tensors inside the subgraphs it takes over).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekeras.errors import InputError
from edgekeras.inspection.layers import Comparison, Pair, pair_by_key
from edgekeras.inspection.stats import make_quant
from edgekeras.inspection.summary import ArtifactSummary, IOTensor

FORMAT = "tflite"
_IDENTIFIER = b"TFL3"
_CUSTOM = "CUSTOM"
_NUMPY = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "INT32": "int32",
    "UINT8": "uint8",
    "INT64": "int64",
    "STRING": "str",
    "BOOL": "bool",
    "INT16": "int16",
    "INT8": "int8",
    "UINT64": "uint64",
    "UINT32": "uint32",
    "UINT16": "uint16",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "BFLOAT16": "bfloat16",
}
_FLOATS = ("float32", "float16", "float64")


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _array(value):
    """Flatbuffers' `XAsNumpy()` returns 0 for an absent vector."""
    return value if isinstance(value, np.ndarray) else np.zeros(0)


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple  # the shape signature: None for a dynamic dimension
    dtype: str
    quant: object  # layers.Quant or None
    constant: bool


@dataclass
class Op:
    name: str
    inputs: tuple
    outputs: tuple


@dataclass
class Graph:
    """The parts of a TFLite model `inspect` uses (main subgraph in detail, all for op counts)."""

    tensors: list
    ops: list
    inputs: dict  # signature (Keras) input name -> tensor index
    outputs: dict
    op_counts: Counter = field(default_factory=Counter)
    subgraphs: int = 1
    description: str = ""
    metadata: dict = field(default_factory=dict)
    signature_keys: list = field(default_factory=list)

    def producers(self):
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self):
        users = {}
        for op in self.ops:
            for i in op.inputs:
                users.setdefault(i, []).append(op)
        return users


def read_graph(path):
    """Parses `path`; a file that is not a TFLite flatbuffer is an `InputError`."""
    path = Path(path)
    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise InputError(
            f"Expected a TFLite flatbuffer (file identifier 'TFL3'). Received: '{path}', which is not one "
            "(truncated, corrupt, or another format renamed to .tflite). Re-export it with 'edgekeras convert'."
        )
    try:
        return _parse(buf)
    except InputError:
        raise
    except Exception as e:  # flatbuffers raises struct/index errors on damaged files
        raise InputError(
            f"Could not read '{path}' as a TFLite model: {type(e).__name__}: {e}. The file is damaged; re-export it."
        ) from None


def _parse(buf):
    s = _schema()
    model = s.Model.GetRootAs(buf, 0)
    builtin, types = _enum(s.BuiltinOperator), _enum(s.TensorType)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # old files use the deprecated field
        name = builtin.get(code, f"BUILTIN_{code}")
        if name == _CUSTOM:
            name = (oc.CustomCode() or b"CUSTOM").decode("utf-8", "replace")
        codes.append(name)
    counts = Counter()
    for g in range(model.SubgraphsLength()):
        sub = model.Subgraphs(g)
        counts.update(codes[sub.Operators(j).OpcodeIndex()] for j in range(sub.OperatorsLength()))
    main = model.Subgraphs(0)
    tensors = [_tensor(model, main.Tensors(i), i, types) for i in range(main.TensorsLength())]
    ops = [
        Op(
            codes[op.OpcodeIndex()],
            tuple(int(i) for i in _array(op.InputsAsNumpy()) if i >= 0),
            tuple(int(i) for i in _array(op.OutputsAsNumpy())),
        )
        for op in (main.Operators(j) for j in range(main.OperatorsLength()))
    ]
    inputs, outputs, keys = _signature(model, main, tensors)
    metadata = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() == b"min_runtime_version":
            data = model.Buffers(md.Buffer()).DataAsNumpy()
            metadata["min_runtime_version"] = bytes(_array(data).astype(np.uint8)).rstrip(b"\0").decode()
    return Graph(
        tensors,
        ops,
        inputs,
        outputs,
        counts,
        model.SubgraphsLength(),
        (model.Description() or b"").decode("utf-8", "replace"),
        metadata,
        keys,
    )


def _tensor(model, t, index, types):
    dtype = _NUMPY.get(types.get(t.Type(), ""), types.get(t.Type(), "unknown").lower())
    shape = _array(t.ShapeSignatureAsNumpy())
    if shape.size == 0:
        shape = _array(t.ShapeAsNumpy())
    q = t.Quantization()
    quant = None
    if q is not None and dtype in _NUMPY.values() and not dtype.startswith(("float", "bfloat", "complex")):
        quant = make_quant(_array(q.ScaleAsNumpy()), _array(q.ZeroPointAsNumpy()), q.QuantizedDimension(), dtype)
    buffer = model.Buffers(t.Buffer()) if t.Buffer() > 0 else None
    constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    return Tensor(
        index,
        (t.Name() or b"").decode("utf-8", "replace"),
        tuple(None if int(d) < 0 else int(d) for d in shape),
        dtype,
        quant,
        constant,
    )


def _signature(model, main, tensors):
    """{name: tensor index} for inputs and outputs, through the serving signature by name."""
    keys = [(model.SignatureDefs(i).SignatureKey() or b"").decode() for i in range(model.SignatureDefsLength())]
    for i, key in enumerate(keys):
        sig = model.SignatureDefs(i)
        if sig.SubgraphIndex() == 0 and (key == "serving_default" or i == len(keys) - 1):
            ins = {sig.Inputs(j).Name().decode(): sig.Inputs(j).TensorIndex() for j in range(sig.InputsLength())}
            outs = {sig.Outputs(j).Name().decode(): sig.Outputs(j).TensorIndex() for j in range(sig.OutputsLength())}
            return ins, outs, keys
    ins = {tensors[int(i)].name: int(i) for i in _array(main.InputsAsNumpy())}
    outs = {tensors[int(i)].name: int(i) for i in _array(main.OutputsAsNumpy())}
    return ins, outs, keys


def detect_precision(graph):
    """fp32, fp16, dynamic, int8 or int16x8, from the tensor types alone."""
    produced = {o for op in graph.ops if op.name != "DEQUANTIZE" for o in op.outputs}
    activations = {graph.tensors[i].dtype for i in produced if graph.tensors[i].quant is not None}
    if "int16" in activations:
        return "int16x8"
    if activations & {"int8", "uint8"}:
        return "int8"
    constants = [t for t in graph.tensors if t.constant]
    if any(t.dtype == "float16" for t in constants):
        return "fp16"
    if any(t.dtype in ("int8", "uint8") and t.quant is not None for t in constants):
        return "dynamic"
    return "fp32"


def _io(names, graph):
    out = []
    for name, index in names.items():
        t = graph.tensors[index]
        quant = None
        if t.quant is not None and not t.quant.per_channel:
            quant = {"scale": float(t.quant.scale.item()), "zero_point": int(t.quant.zero_point.item())}
        out.append(IOTensor(name, t.name, t.shape, t.dtype, quant))
    return out


def summarize(path):
    """What the flatbuffer says: signature, ops of every subgraph, select ops, precision."""
    graph = read_graph(path)
    flex = sorted(op for op in graph.op_counts if op.startswith("Flex"))
    builtin_names = set(_enum(_schema().BuiltinOperator).values())
    custom = sorted(op for op in graph.op_counts if op not in builtin_names and op not in flex)
    ops = dict(sorted(graph.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    details = {"signatures": graph.signature_keys, **graph.metadata}
    return ArtifactSummary(
        FORMAT,
        graph.description or "unknown",
        detect_precision(graph),
        _io(graph.inputs, graph),
        _io(graph.outputs, graph),
        ops,
        graph.subgraphs,
        flex,
        custom,
        None,
        details,
    )


# ------------------------------------------------------------------ --layers


def _interpreter_module():
    """ai-edge-litert's interpreter, or tflite-runtime's (the same API) where only it is installed."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError:
            raise InputError(
                "Expected ai-edge-litert to run TFLite artifacts. Received: neither ai-edge-litert "
                "nor tflite-runtime is installed. Install it with 'pip install ai-edge-litert'."
            ) from None
    return interpreter


class _Runner:
    """An interpreter that keeps every tensor, fed through the signature by input name."""

    def __init__(self, path, graph):
        from edgekeras.quiet import captured_output

        module = _interpreter_module()
        self.graph, self.batch = graph, None
        try:
            with captured_output(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging"
                self.interpreter = module.Interpreter(
                    model_path=str(path),
                    experimental_preserve_all_tensors=True,
                    experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            flex = sorted({op.name for op in graph.ops if op.name.startswith("Flex")})
            hint = (
                f" It needs TensorFlow select ops ({', '.join(flex)}), which ai-edge-litert cannot run." if flex else ""
            )
            raise InputError(f"Could not run '{path}' in LiteRT: {str(e).strip().splitlines()[0]}.{hint}") from None

    def run(self, feeds):
        n = len(next(iter(feeds.values())))
        if n != self.batch:
            for name, index in self.graph.inputs.items():
                self.interpreter.resize_tensor_input(index, (n, *feeds[name].shape[1:]), strict=False)
            self.interpreter.allocate_tensors()
            self.batch = n
        for name, index in self.graph.inputs.items():
            t = self.graph.tensors[index]
            value = feeds[name]
            if t.quant is not None and np.issubdtype(value.dtype, np.floating):
                value = t.quant.quantize(value)
            self.interpreter.set_tensor(index, np.ascontiguousarray(value, dtype=t.dtype))
        self.interpreter.invoke()

    def value(self, index):
        """A tensor as floats (dequantized when the artifact stores it quantized)."""
        t = self.graph.tensors[index]
        raw = self.interpreter.get_tensor(index)
        return t.quant.dequantize(raw) if t.quant is not None else raw


def _comparable(t):
    return t.dtype in _FLOATS or t.quant is not None


def _activations(graph):
    """Indices of the tensors computed at run time: graph inputs and op outputs, in order."""
    order = list(graph.inputs.values())
    order += [o for op in graph.ops for o in op.outputs]
    return list(dict.fromkeys(order))


def _dequantized_constants(graph):
    """Outputs of DEQUANTIZE ops on constants (fp16 weights): weights, not activations."""
    return {
        op.outputs[0]: op.inputs[0]
        for op in graph.ops
        if op.name == "DEQUANTIZE" and graph.tensors[op.inputs[0]].constant
    }


def _match(art, ref):
    """{artifact tensor index: (reference tensor index, how)} for run-time tensors."""
    ref_acts = [i for i in _activations(ref) if _comparable(ref.tensors[i])]
    by_name = {ref.tensors[i].name: i for i in ref_acts}
    by_parts = {frozenset(ref.tensors[i].name.split(";")): i for i in ref_acts}
    weights_out = _dequantized_constants(art)
    candidates = [i for i in _activations(art) if _comparable(art.tensors[i]) and i not in weights_out]
    matched = {}
    for i in candidates:
        name = art.tensors[i].name
        if name in by_name:
            matched[i] = (by_name[name], "name")
        elif frozenset(name.split(";")) in by_parts:
            matched[i] = (by_parts[frozenset(name.split(";"))], "fused name")
    _through_quantize_ops(art, candidates, matched)
    used = {j for j, _ in matched.values()}
    renumbered = pair_by_key(
        [(i, art.tensors[i].name) for i in candidates if i not in matched],
        [(j, ref.tensors[j].name) for j in ref_acts if j not in used],
        _renumbered,
    )
    matched.update({i: (j, "renumbered name") for i, j in renumbered.items()})
    _through_quantize_ops(art, candidates, matched)
    return matched, candidates, ref_acts


def _renumbered(name):
    """A fused name without the digits the converter appends to make names unique."""
    return frozenset(re.sub(r"\d+$", "", part) for part in name.split(";"))


def _through_quantize_ops(art, candidates, matched):
    """A (de)quantized copy of a matched tensor is compared with the same float tensor."""
    producers, consumers = art.producers(), art.consumers()
    changed = True
    while changed:
        changed = False
        for i in candidates:
            if i in matched:
                continue
            op = producers.get(i)
            if op is not None and op.name == "QUANTIZE" and op.inputs[0] in matched:
                matched[i] = (matched[op.inputs[0]][0], "quantized copy")
            else:
                deq = [o for o in consumers.get(i, []) if o.name == "DEQUANTIZE" and o.outputs[0] in matched]
                if not deq:
                    continue
                matched[i] = (matched[deq[0].outputs[0]][0], "dequantized copy")
            changed = True


def _weights(art, ref, art_run, ref_run):
    """Constant float/quantized tensors compared by name (or through a DEQUANTIZE op's output)."""
    ref_consts = {t.name: t.index for t in ref.tensors if t.constant and t.dtype in _FLOATS}
    via_dequantize = {src: out for out, src in _dequantized_constants(art).items()}
    pairs = []
    for t in art.tensors:
        if not t.constant or not _comparable(t):
            continue
        name, how = t.name, "name"
        if name not in ref_consts and t.index in via_dequantize:
            name, how = art.tensors[via_dequantize[t.index]].name, "dequantized copy"
        if name not in ref_consts:
            continue
        pair = Pair(t.name, name, how, t.shape, t.dtype, t.quant)
        pair.update(art_run.value(t.index), ref_run.value(ref_consts[name]))
        pairs.append(pair)
    return pairs


def compare(artifact_path, baseline_path, workdir):
    """Pairs the artifact's tensors with the fp32 baseline's; see `inspection.layers`."""
    art, ref = read_graph(artifact_path), read_graph(baseline_path)
    art_run, ref_run = _Runner(artifact_path, art), _Runner(baseline_path, ref)
    matched, candidates, ref_acts = _match(art, ref)
    pairs = {
        i: Pair(
            art.tensors[i].name,
            ref.tensors[j].name,
            how,
            art.tensors[i].shape,
            art.tensors[i].dtype,
            art.tensors[i].quant,
        )
        for i, (j, how) in matched.items()
    }
    used = {j for j, _ in matched.values()}
    unmatched_art = [
        {"tensor": art.tensors[i].name, "reason": "no tensor of this name in the float baseline"}
        for i in candidates
        if i not in matched
    ]
    unmatched_ref = [
        {"tensor": ref.tensors[j].name, "reason": "not in the artifact (fused or removed)"}
        for j in ref_acts
        if j not in used
    ]
    skipped = [art.tensors[i].name for i in _activations(art) if not _comparable(art.tensors[i])]
    io_names = {}
    for graph in (art, ref):
        io_names.update({graph.tensors[i].name: n for n, i in {**graph.inputs, **graph.outputs}.items()})

    def run(feeds):
        ref_run.run(feeds)
        art_run.run(feeds)
        for i, pair in pairs.items():
            yield pair, art_run.value(i), ref_run.value(matched[i][0])

    return Comparison(
        "the reference converted to fp32 TFLite, both run in LiteRT with builtin kernels (no XNNPACK)",
        list(pairs.values()),
        _weights(art, ref, art_run, ref_run),
        unmatched_art,
        unmatched_ref,
        skipped,
        io_names,
        [ref.tensors[j].name for j in ref_acts],
        run,
    )
