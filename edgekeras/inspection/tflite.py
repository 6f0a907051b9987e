"""TFLite artifacts: described from the flatbuffer, and compared tensor by tensor with `--layers`.

`summarize` reads the file with `readers.tflite` (no interpreter, no TensorFlow), so it also
describes models that need TensorFlow select (Flex) ops, which ai-edge-litert cannot load.
`compare` runs the artifact and its float baseline in the LiteRT interpreter with
`experimental_preserve_all_tensors` and the builtin kernels (no XNNPACK: a delegate hides the
tensors inside the subgraphs it takes over), and hands both graphs to `inspection.pairing`.
`baseline_options` says how the float baseline must be converted to line up with the
artifact: its fixed batch and sequence lengths, and unrolled recurrent layers when the
artifact has no WHILE loop left.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.errors import InputError
from edgekeras.export.recurrent import TIME_AXIS, recurrent_layers
from edgekeras.inspection.layers import Comparison, Pair
from edgekeras.inspection.pairing import Node
from edgekeras.inspection.summary import ArtifactSummary, IOTensor
from edgekeras.quiet import captured_output
from edgekeras.readers import tflite as reader

if TYPE_CHECKING:
    from edgekeras.hints import Arrays, PathLike
    from edgekeras.keras_model import KerasModel

FORMAT = "tflite"
_LOOPS = ("WHILE",)  # ops whose body subgraphs the interpreter runs without keeping tensors


def _io(names, model):
    out = []
    for name, index in names.items():
        t = model.tensors[index]
        quant = t.quant.to_dict() if t.quant is not None else None
        out.append(IOTensor(name, t.name, t.shape, t.dtype, quant))
    return out


def summarize(path: PathLike) -> ArtifactSummary:
    """What the flatbuffer says: signature, ops of every subgraph, select ops, precision."""
    model = reader.read(path)
    ops = dict(sorted(model.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return ArtifactSummary(
        FORMAT,
        model.description or "unknown",
        reader.detect_precision(model),
        _io(model.inputs, model),
        _io(model.outputs, model),
        ops,
        len(model.subgraphs),
        reader.select_ops(model),
        reader.custom_ops(model),
        None,
        {"signatures": model.signature_keys, **model.metadata},
    )


def baseline_options(path: PathLike, keras_model: KerasModel) -> dict[str, Any]:
    """How to convert the float baseline so that its tensors line up with the artifact's:
    {"fixed_batch", "input_lengths", "unroll"} for `ExportContext`."""
    model = reader.read(path)
    batches = {model.tensors[i].shape[0] for i in model.inputs.values() if model.tensors[i].shape}
    lengths = {}
    for spec in keras_model.inputs:
        shape = model.tensors[model.inputs[spec.name]].shape if spec.name in model.inputs else ()
        free = len(spec.shape) > TIME_AXIS and spec.shape[TIME_AXIS] is None
        if free and len(shape) > TIME_AXIS and shape[TIME_AXIS] is not None:
            lengths[spec.name] = shape[TIME_AXIS]
    loops = any(op in model.op_counts for op in _LOOPS)
    return {
        "fixed_batch": next(iter(batches)) if len(batches) == 1 and None not in batches else None,
        "input_lengths": lengths,
        "unroll": bool(recurrent_layers(keras_model.model)) and not loops,
    }


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
    return t.dtype in reader.FLOATS or t.quant is not None


def _dequantized_constants(graph):
    """{output: constant} of DEQUANTIZE ops on constants (fp16 weights): weights, not activations."""
    return {
        op.outputs[0]: op.inputs[0]
        for op in graph.ops
        if op.name == "DEQUANTIZE" and graph.tensors[op.inputs[0]].constant
    }


def _nodes(model):
    """The main subgraph's comparable run-time tensors as pairing `Node`s, in execution order,
    and the names of the run-time tensors that cannot be compared (integers without scale)."""
    graph = model.main
    tensors = graph.tensors
    io = {index: name for name, index in {**model.inputs, **model.outputs}.items()}
    weights_of = _dequantized_constants(graph)

    def runtime(i):
        return not tensors[i].constant and i not in weights_of

    def node(i, **kwargs):
        t = tensors[i]
        return Node(i, t.name, t.shape, t.dtype, t.quant, io=io.get(i), **kwargs)

    nodes, skipped = [], []
    for i in model.inputs.values():
        (nodes.append(node(i)) if _comparable(tensors[i]) else skipped.append(tensors[i].name))
    for k, op in enumerate(graph.ops):
        inputs = tuple(i for i in op.inputs if runtime(i))
        constants = [tensors[weights_of.get(i, i)] for i in op.inputs if not runtime(i)]
        # weights of more than one element: shared scalars say nothing about the layer
        weights = tuple(t.name for t in sorted(constants, key=lambda t: -t.size) if _comparable(t) and t.size > 1)
        copy = op.name in reader.CONVERTING_OPS and len(inputs) == 1
        for position, i in enumerate(op.outputs):
            if i in weights_of:
                continue
            if not _comparable(tensors[i]):
                skipped.append(tensors[i].name)
                continue
            nodes.append(
                node(
                    i,
                    op=k,
                    output=position,
                    outputs=len(op.outputs),
                    inputs=inputs,
                    weights=weights,
                    copy_of=inputs[0] if copy else None,
                    copy_how="quantized copy" if op.name == "QUANTIZE" else "dequantized copy",
                )
            )
    return nodes, skipped


def _renumbered(name: str) -> str:
    """A name without the digits the converter appends to make names unique ('Squeeze1')."""
    return re.sub(r"\d+$", "", name)


def _weights(art, ref, art_run, ref_run):
    """Constant float/quantized tensors compared by name (or through a DEQUANTIZE op's
    output), each with the first run-time tensor computed from it on either side (what
    decides its layer)."""
    ref_consts = {t.name: t.index for t in ref.tensors if t.constant and t.dtype in reader.FLOATS}
    via_dequantize = {src: out for out, src in _dequantized_constants(art.main).items()}
    art_users, ref_users = _first_outputs(art.main), _first_outputs(ref.main)
    found = []
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
        user = art_users.get(t.index, art_users.get(via_dequantize.get(t.index)))
        found.append((pair, user, ref_users.get(ref_consts[name])))
    return found


def _first_outputs(graph):
    """{constant (or its DEQUANTIZE output): first output of the first op that reads it}."""
    weights_of = _dequantized_constants(graph)
    users: dict[Any, Any] = {}
    for op in graph.ops:
        if op.outputs and op.outputs[0] not in weights_of:
            for i in op.inputs:
                users.setdefault(i, op.outputs[0])
    for out, src in weights_of.items():
        if out in users:
            users.setdefault(src, users[out])
    return users


def _loop_tensors(model):
    """Names of the tensors inside loop bodies (every subgraph but the main one)."""
    return [t.name for graph in model.subgraphs[1:] for t in graph.tensors if t.name]


def compare(artifact_path: Path, baseline_path: Path, workdir: Path) -> Comparison:
    """Both graphs as pairing nodes, their weights compared, and a runner; see `inspection.layers`."""
    art, ref = reader.read(artifact_path), reader.read(baseline_path)
    art_run, ref_run = _Runner(artifact_path, art), _Runner(baseline_path, ref)
    art_nodes, skipped = _nodes(art)
    ref_nodes, _ = _nodes(ref)

    def run(feeds: Arrays) -> tuple[Any, Any]:
        ref_run.run(feeds)
        art_run.run(feeds)
        return art_run.value, ref_run.value

    return Comparison(
        "the reference converted to fp32 TFLite, both run in LiteRT with builtin kernels (no XNNPACK)",
        art_nodes,
        ref_nodes,
        _weights(art, ref, art_run, ref_run),
        skipped,
        _loop_tensors(art) + _loop_tensors(ref),
        _renumbered,
        run,
    )
