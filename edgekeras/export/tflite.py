"""TFLite (LiteRT) artifacts from the serving SavedModel, through TensorFlow's converter.

Each precision is one entry of `PRECISIONS`: plain converter settings (see `tflite_convert`).
Only builtin ops are allowed unless select ops are asked for, so an artifact never silently
needs TensorFlow (Flex) ops that ai-edge-litert cannot run. Recurrent models get a fixed batch
of 1 (the only route that converts and runs, STACK-NOTES), and their calibrated precisions an
unrolled clone converted in a child process, where a converter crash cannot take edgekeras down.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, replace

from edgekeras import quiet
from edgekeras.errors import ConversionError, InputError
from edgekeras.export import MixedPrecision, Revert, float_revert, register, tflite_aeq
from edgekeras.export.dense_scales import decide as decide_dense_scales
from edgekeras.export.dense_scales import dense_sparsity
from edgekeras.export.graph import saved_model
from edgekeras.export.probe import runs
from edgekeras.export.recurrent import unrolled_steps
from edgekeras.export.sparse_weights import decide, kernel_sparsity
from edgekeras.export.tflite_convert import calibrate, convert
from edgekeras.memory_estimate import AEQ_INT8_FROM, release_memory, tflite_int8_quantizer, weight_bytes
from edgekeras.progress import notice
from edgekeras.qat import fake_quant_layers
from edgekeras.quiet import captured_output
from edgekeras.readers import tflite as reader
from edgekeras.readers.scopes import layers_in_names
from edgekeras.units import format_size
from edgekeras.xnnpack_sparse import verdict as xnnpack_verdict


@dataclass(frozen=True)
class TFLitePrecision:
    name: str
    description: str
    ops: tuple  # tf.lite.OpsSet names
    optimize: bool = False
    supported_types: tuple = ()
    calibrate: bool = False  # full-integer: needs a representative dataset
    options: tuple = ("sparse_weights",)  # quantize-recipe knobs honoured (QuantRecipe.knobs())


PRECISIONS = {
    p.name: p
    for p in [
        TFLitePrecision("fp32", "TFLite float32", ("TFLITE_BUILTINS",)),
        TFLitePrecision(
            "fp16",
            "TFLite float16 weights, float32 inputs/outputs",
            ("TFLITE_BUILTINS",),
            optimize=True,
            supported_types=("float16",),
        ),
        TFLitePrecision(
            "dynamic", "TFLite dynamic-range: int8 weights, float activations", ("TFLITE_BUILTINS",), optimize=True
        ),
        TFLitePrecision(
            "int8",
            "TFLite full-integer int8, calibrated",
            ("TFLITE_BUILTINS_INT8",),
            optimize=True,
            calibrate=True,
            options=("per_channel", "dense_per_channel", "io_dtype", "keep_float", "sparse_weights", "quantizer"),
        ),
        TFLitePrecision(
            "int16x8",
            "TFLite 16-bit activations, 8-bit weights, calibrated",
            ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",),
            optimize=True,
            calibrate=True,
            options=("per_channel", "dense_per_channel", "sparse_weights"),
        ),
    ]
}

# int16x8 ops without kernels (STACK-NOTES), with the Keras layers that usually produce them.
INT16X8_UNSUPPORTED = {
    "CONV_3D": "Conv3D",
    "NEG": "LayerNormalization",
    "SQUARE": "LayerNormalization",
    "GREATER": "masking / comparisons",
    "SELECT_V2": "masking / where",
}


def _export(spec, context, path, recipe):
    recurrent = context.recurrent_layers
    batch = context.fixed_batch or (1 if recurrent else None)
    unrolled = bool(recurrent) and (spec.calibrate or context.unroll)
    label = f"tflite {spec.name}"
    if spec.name == "int16x8":
        _check_int16x8_inputs(context)
    lengths = context.sequence_lengths(label) if unrolled else {}
    ops = list(spec.ops) + (["SELECT_TF_OPS"] if context.allow_select_ops else [])
    sparsity = context.cached("kernel_sparsity", lambda: kernel_sparsity(context.model))
    sparse = decide(recipe.sparse_weights, spec.name, sparsity)
    scales = _dense_scales(spec, context, recipe)
    settings = {
        "saved_model": str(saved_model(context, batch=batch, unrolled=unrolled)),
        "ops": ops,
        "optimize": spec.optimize,
        "supported_types": list(spec.supported_types),
        "calibrate": spec.calibrate,
        "batch": batch or 1,
        "samples": recipe.samples,
        "per_channel": recipe.per_channel,
        "dense_per_channel": scales["per_channel"] if scales else True,
        "io_dtype": recipe.io_dtype,
        "keep_float_layers": recipe.keep_float["layers"],
        "keep_float_ops": recipe.keep_float["ops"],
        "sparsity": sparse["requested"],
        "label": label,
    }
    quantizer = _quantizer(spec, context, recipe, sparse, scales)
    # A calibrated recurrent model is the conversion known to crash the converter natively.
    run = _run_in_child if recurrent and spec.calibrate else _run_here
    if quantizer and quantizer["tool"] == "ai-edge-quantizer":
        flatbuffer, notes = _aeq_int8(settings, context, recipe)
        if sparse["requested"]:  # asked by `auto` only: `on` is refused by tflite_aeq
            sparse = {**sparse, "requested": False, "note": "ai-edge-quantizer writes dense weights"}
        if scales and scales["per_channel"] != recipe.per_channel:
            scales = {**scales, "per_channel": recipe.per_channel, "note": "ai-edge-quantizer: one granularity"}
    else:
        flatbuffer, notes = run(settings, context, spec)
    if sparse["requested"]:
        flatbuffer, notes, sparse = _sparse_runs(flatbuffer, notes, sparse, run, settings, context, spec)
    if quantizer:
        rules = notes.pop("quantizer_rules", None)
        notes["quantizer"] = {**quantizer, **({"rules": rules} if rules else {})}
    model = reader.read(flatbuffer)
    float_notes = _float_ops(spec, context, model, recipe) if spec.calibrate else {}
    path.write_bytes(flatbuffer)
    if spec.name == "fp32" and not unrolled:  # the size an unrolled quantized artifact is compared with
        context.cached("tflite_fp32_size", lambda: len(flatbuffer))
    facts = _facts(spec, context, model, batch, unrolled, recurrent)
    facts["warnings"] = notes.pop("warnings", []) + facts["warnings"]
    notes = {**notes, **float_notes, **facts}
    storage = reader.sparse_storage(model)
    notes["sparse_weights"] = {**sparse, "written": storage["sparse_tensors"] > 0, **storage}
    notes["xnnpack_sparse"] = xnnpack_verdict(model)
    if scales:
        notes["dense_scales"] = scales
    if lengths:
        notes["sequence_lengths"] = _fixed_lengths(label, lengths)
    if unrolled and spec.optimize:
        notes["unrolled"] = _growth(label, context, model, len(flatbuffer))
    if recurrent and not notes.get("select_ops"):
        _probe(path, spec, context, notes)
    return notes


QUANTIZER_INSTEAD = "Use a quantize recipe with 'quantizer: converter'."


def _quantizer(spec, context, recipe, sparse, scales):
    """{"tool", "why"}: what quantizes a TFLite int8 artifact (None for other precisions).

    TensorFlow's converter by default; ai-edge-quantizer when the quantize recipe asks, and for
    `quantizer: auto` on models from `memory_estimate.AEQ_INT8_FROM` bytes of weights (VGG16:
    2.3 GiB where TensorFlow's quantizer needs 4.4), unless the artifact needs what only the
    converter does (sparse weights, one scale per Dense kernel, int8 I/O, recurrent loops,
    quantization-aware ranges).
    """
    if spec.name != "int8":
        return None
    weights = weight_bytes(context.model)
    tool = tflite_int8_quantizer(weights, recipe.quantizer)
    if recipe.quantizer != "auto":
        if tool == "ai-edge-quantizer":  # before any work
            tflite_aeq.check(context, recipe, "quantizer: ai-edge-quantizer", QUANTIZER_INSTEAD)
        return {"tool": tool, "why": f"the quantize recipe '{recipe.name}' asks for it"}
    if tool == "converter":
        return {"tool": tool, "why": f"{format_size(weights)} of weights, under {format_size(AEQ_INT8_FROM)}"}
    settings, traits = tflite_aeq.blockers(context, recipe)
    if sparse["requested"]:
        settings.append("sparse weights (the converter writes them)")
    if scales and scales["per_channel"] != recipe.per_channel:
        settings.append("one scale per Dense kernel (dense_per_channel)")
    if settings or traits:
        return {"tool": "converter", "why": f"the artifact needs {'; '.join(settings + traits)}"}
    return {
        "tool": tool,
        "why": f"{format_size(weights)} of weights: TensorFlow's quantizer would hold about 8x that in memory",
    }


def _aeq_int8(settings, context, recipe):
    """Plain int8 through ai-edge-quantizer, from the float model written to a file (the float
    conversion's memory returned before quantizing starts)."""
    fp32 = context.workdir / "aeq-int8-fp32.tflite"
    with captured_output():
        flatbuffer = convert({"saved_model": settings["saved_model"], "ops": ["TFLITE_BUILTINS"]})[0]
    fp32.write_bytes(flatbuffer)
    del flatbuffer
    release_memory()
    try:
        return tflite_aeq.quantize_int8(context, recipe, fp32)
    finally:
        fp32.unlink(missing_ok=True)


def _dense_scales(spec, context, recipe):
    """The `dense_scales` decision (export/dense_scales.py) for a precision with weight scales,
    else None."""
    if "per_channel" not in spec.options:
        return None
    sparsity = context.cached("dense_sparsity", lambda: dense_sparsity(context.model))
    aware = bool(fake_quant_layers(context.model))
    return decide_dense_scales(recipe.dense_per_channel, recipe.per_channel, sparsity, aware)


def _sparse_runs(flatbuffer, notes, sparse, run, settings, context, spec):
    """Sparse weights that XNNPACK cannot run are not kept silently.

    ai-edge-litert 2.3.0's XNNPACK fails to prepare an int8 FULLY_CONNECTED whose weights are
    stored sparse (measured; the builtin kernels run it). A probe run in a child finds that:
    with `sparse_weights: auto` the artifact is converted again with dense weights; with `on`
    it is kept and runs with the builtin kernels (runtime_options.xnnpack = false), said in a
    warning.
    """
    probe = context.workdir / f"probe-{spec.name}.tflite"
    probe.write_bytes(flatbuffer)
    if runs(probe):
        return flatbuffer, notes, sparse
    why = f"ai-edge-litert's XNNPACK delegate fails on this artifact's sparse weights (tflite {spec.name})"
    if sparse["setting"] == "auto":
        flatbuffer, notes = run({**settings, "sparsity": False}, context, spec)
        return flatbuffer, notes, {**sparse, "requested": False, "note": f"{why}: written dense instead"}
    notes = {**notes, "runtime_options": {"xnnpack": False}}
    notes.setdefault("warnings", []).append(
        f"{why}; it runs with TFLite's builtin kernels instead (runtime_options.xnnpack = false in the "
        "manifest). Use 'sparse_weights: auto' or 'off' to keep XNNPACK."
    )
    return flatbuffer, notes, {**sparse, "note": f"{why}: XNNPACK turned off for it"}


def _fixed_lengths(label, lengths):
    """{input: {"length", "source"}} for the manifest; a length taken from the calibration
    data is said, since the artifact then takes sequences of exactly that length."""
    for name, (length, source) in lengths.items():
        if source == "calibration":
            notice(
                f"{label}: input '{name}' has a free sequence length; fixed to {length}, the calibration "
                f"data's, to unroll the recurrent layers. The artifact takes sequences of exactly {length} "
                f"steps (--input-length {name}=N sets another); validate it with --data of that length."
            )
    return {name: {"length": length, "source": source} for name, (length, source) in lengths.items()}


def _growth(label, context, model, size):
    """Why and by how much an unrolled quantized artifact grew, for the manifest and a notice.

    Unrolling writes every step's ops, tensors and quantization parameters out again; the
    size is compared with this conversion's fp32 TFLite artifact when it was made first,
    else with an estimate of it (4 bytes per parameter: the weights alone).
    """
    steps = unrolled_steps(context.unrolled_model)
    ops = sum(model.op_counts.values())
    fp32 = context.known("tflite_fp32_size")
    source = "the fp32 TFLite artifact of this conversion"
    if fp32 is None:
        fp32 = 4 * int(context.model.count_params())
        source = "estimated: 4 bytes per parameter (fp32 weights alone)"
    growth = size / fp32 if fp32 else None
    layers = ", ".join(f"{name} ({n} steps)" if n else name for name, n in steps.items())
    compared = f"{growth:.1f}x the fp32 size ({format_size(fp32)}, {source})" if growth else "fp32 size unknown"
    notice(
        f"{label}: recurrent layers {layers} were unrolled (the TFLite converter crashes on quantized "
        f"recurrent loops), writing every step's ops out: {ops} ops, {format_size(size)}, {compared}. "
        "Longer sequences grow it further; --format onnx keeps the loop."
    )
    return {
        "reason": "the TFLite converter crashes on quantized recurrent loops, so the recurrent layers are "
        "unrolled: every step's ops, tensors and quantization parameters are written out",
        "steps": steps,
        "ops": ops,
        "size_bytes": size,
        "fp32_size_bytes": fp32,
        "fp32_size_source": source,
        "growth": None if growth is None else round(growth, 3),
    }


def _probe(path, spec, context, notes):
    """Recurrent artifacts are run once in a child: XNNPACK aborts on some (masked, unrolled)."""
    if runs(path):
        return
    if runs(path, xnnpack=False):
        notes["runtime_options"] = {"xnnpack": False}
        notes["warnings"].append(
            f"tflite {spec.name}: ai-edge-litert's XNNPACK delegate crashes on this artifact (recurrent "
            f"layers {context.recurrent_layers}); it runs with TFLite's builtin kernels instead "
            "(runtime_options.xnnpack = false in the manifest)."
        )
        return
    raise ConversionError(
        f"Expected a TFLite artifact that ai-edge-litert can run. Received: the {spec.name} conversion "
        f"of recurrent layers {context.recurrent_layers}, which crashes the runtime. Use --precision "
        "fp32, fp16 or dynamic for this model, or --format onnx."
    )


def _facts(spec, context, model, batch, unrolled, recurrent):
    """What the manifest records about how this artifact was made, and any warning."""
    notes = {"fixed_batch": batch, "warnings": []}
    if recurrent:
        notes["recurrent_layers"] = recurrent
        notes["route"] = "fixed batch, unrolled recurrent layers" if unrolled else "fixed batch"
    if context.allow_select_ops:
        notes["select_ops"] = reader.select_ops(model)
    if spec.optimize and not spec.supported_types:
        notes["quantized"] = reader.quantized_constants(model) > 0
        if not notes["quantized"] and not spec.calibrate:
            notes["warnings"].append(
                f"tflite {spec.name}: the converter quantized no weights (dynamic-range quantization "
                "skips weight tensors under 1024 elements), so this artifact is float32 in all but name."
            )
    return notes


def _float_ops(spec, context, model, recipe):
    """{"float_ops": {op: [layers]}} for ops of a calibrated artifact that still compute in
    float32 (the reader's rule; its QUANTIZE/DEQUANTIZE edges are expected). The converter
    keeps an op float when it has no int8/int16 kernel (CONV_3D) and says nothing, so a
    weighted op left float (its weights unquantized) is refused unless the recipe's
    keep_float asked for float ops; small weightless ones (SPLIT, NEG, NOT_EQUAL on a float
    input) are recorded."""
    layer_names = [layer.name for layer in context.model._flatten_layers(include_self=False)]
    found, weighted = {}, {}
    for op in reader.float_ops(model):
        if op.converting:
            continue
        layers = layers_in_names(op.outputs, layer_names)
        found.setdefault(op.name, []).extend(x for x in layers if x not in found[op.name])
        if op.weighted:
            weighted.setdefault(op.name, []).extend(x for x in layers if x not in weighted[op.name])
    asked = recipe.keep_float["layers"] or recipe.keep_float["ops"]
    if weighted and not asked:
        parts = "; ".join(f"{op} (layers: {', '.join(layers) or 'unknown'})" for op, layers in sorted(weighted.items()))
        raise ConversionError(
            f"Expected every weighted op to have a TFLite {spec.name} kernel. Received: {parts}, which "
            f"the converter would leave in float32 with unquantized weights (the artifact would not be {spec.name}). "
            f"Use --precision dynamic or fp16, --format onnx, or a quantize recipe with "
            f"'keep_float: {{ops: [{', '.join(sorted(weighted))}]}}' to accept a mixed artifact."
        )
    return {"float_ops": found} if found else {}


def _run_here(settings, context, spec):
    with captured_output() as log:
        try:
            return convert(settings, context.calibration, _calibrated(settings, context, spec))
        except InputError:
            raise
        except Exception as e:
            message = str(e)
    raise _explain(spec, context, message, log.text)


def _calibrated(settings, context, spec):
    """The calibrated float model a conversion keeping layers in float quantizes, made once per
    `convert` call for the same settings (the accuracy-aware search tries many denylists)."""
    if not (spec.calibrate and (spec is AUTO or settings["keep_float_layers"] or settings["keep_float_ops"])):
        return None
    same = {k: v for k, v in settings.items() if k not in ("keep_float_layers", "keep_float_ops", "label")}
    key = "tflite_calibrated:" + json.dumps(same, sort_keys=True)
    return context.cached(key, lambda: calibrate(settings, context.calibration))


def _run_in_child(settings, context, spec):
    """The same conversion in `python -m edgekeras.export.tflite_convert` (a crash is an error)."""
    import os

    import numpy as np

    job = context.workdir / f"job-{spec.name}"
    job.mkdir(exist_ok=True)
    (job / "settings.json").write_text(json.dumps(settings))
    if context.calibration is not None and spec.calibrate:
        np.savez(job / "calibration.npz", **context.calibration)
    env = {**os.environ, "EDGEKERAS_VERBOSE": "1" if quiet.VERBOSE else ""}
    result = subprocess.run(
        [sys.executable, "-m", "edgekeras.export.tflite_convert", str(job)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=quiet.real_stderr_fd(),
        env=env,
    )
    if result.returncode == 0:
        return (job / "model.tflite").read_bytes(), json.loads((job / "notes.json").read_text())
    if (job / "error.json").exists():
        error = json.loads((job / "error.json").read_text())
        if error["input_error"]:
            raise InputError(error["message"])
        raise _explain(spec, context, error["message"], error["log"])
    code = result.returncode
    cause = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    raise ConversionError(
        f"The TFLite converter crashed ({cause}) converting the recurrent layers "
        f"{context.recurrent_layers} to {spec.name}, even with the layers unrolled. Use --precision "
        "fp32, fp16 or dynamic for this model, or --format onnx."
    )


def _explain(spec, context, message, log):
    """A ConversionError that names the ops and the Keras layers at fault."""
    text = f"{message}\n{log}"
    layer_names = [layer.name for layer in context.model._flatten_layers(include_self=False)]
    scopes = re.findall(r'fused\["\w+:", "([^"@]+)@', text)
    flex = re.search(r"TF Select ops: ([^\n]+)", text)
    if flex or "ERROR_NEEDS_FLEX_OPS" in text:
        ops = flex.group(1).strip() if flex else "unknown"
        layers = layers_in_names(scopes, layer_names)
        return ConversionError(
            f"Expected a model whose ops all have TFLite builtin kernels. Received: ops {ops} "
            f"(in layers {', '.join(layers) or 'unknown'}), which need TensorFlow select ops "
            "(Flex). ai-edge-litert cannot run those. Pass --allow-select-ops (allow_select_ops=True) "
            "to convert anyway, for a runtime linked with the Flex delegate."
        )
    if "Select TensorFlow op" in text:  # the calibrator's interpreter has no Flex delegate
        return ConversionError(
            f"Expected a model without TensorFlow select ops for tflite {spec.name}: calibration runs the "
            f"model in an interpreter without the Flex delegate. Received: a model needing "
            f"{', '.join(sorted(set(re.findall(r'(Flex[A-Za-z0-9]+)', text)))) or 'select ops'}. "
            "Use --precision fp32, fp16 or dynamic with --allow-select-ops."
        )
    missing16 = re.findall(r"not yet supported for op: '(\w+)'", text)
    if missing16:
        return ConversionError(_int16x8_message(context, missing16))
    return ConversionError.from_log(f"tflite {spec.name}", RuntimeError(message), log)


def _int16x8_message(context, reported):
    """Every op of the float graph int16x8 has no kernel for, with the layers they come from."""
    fp32 = _fp32_bytes(context)
    layer_names = [layer.name for layer in context.model._flatten_layers(include_self=False)]
    found = {}
    for op, outputs in reader.op_outputs(reader.read(fp32)):
        if op in INT16X8_UNSUPPORTED or op in reported:
            found.setdefault(op, []).extend(layers_in_names(outputs, layer_names))
    parts = [
        f"{op} (layers: {', '.join(sorted(set(layers))) or 'unknown'}; usually from "
        f"{INT16X8_UNSUPPORTED.get(op, 'this op')})"
        for op, layers in sorted(found.items())
    ]
    return (
        f"Expected a model whose ops all have int16x8 kernels. Received: {'; '.join(parts)}. "
        "Use --precision int8 or fp16 for this model, or replace those layers."
    )


def _float_flatbuffer(context):
    batch = context.fixed_batch or (1 if context.recurrent_layers else None)
    settings = {"saved_model": str(saved_model(context, batch=batch)), "ops": ["TFLITE_BUILTINS"]}
    with captured_output():
        return convert(settings)[0]


def _check_int16x8_inputs(context):
    import numpy as np

    ints = [s.name for s in context.keras_model.inputs if np.issubdtype(np.dtype(s.dtype), np.integer)]
    if ints:
        raise InputError(
            f"Expected float inputs for int16x8 (the calibrator cannot take integer inputs). Received: "
            f"integer inputs {ints} (token ids for an Embedding?). Use --precision int8 or dynamic."
        )


def _register(spec):
    @register("tflite", spec.name, spec.description, options=spec.options)
    def build(context, path, recipe):
        return _export(spec, context, path, recipe)

    return build


for _spec in PRECISIONS.values():
    _register(_spec)

# The accuracy-aware mix (`mixed_precision` registers "auto" from this). Float reverts: int8
# candidates with layers denylisted, every one quantized from one calibrated model
# (`_calibrated`), so that candidates differ only by their denylist. int16x8 reverts: the fp32
# model quantized by ai-edge-quantizer recipes (`tflite_aeq`), every one from one calibration.
AUTO = replace(
    PRECISIONS["int8"],
    name="auto",
    description="TFLite int8, layers kept in float32 where needed",
    options=tuple(o for o in PRECISIONS["int8"].options if o != "quantizer"),
)


def _fp32_bytes(context):
    return context.cached("tflite_fp32_bytes", lambda: _float_flatbuffer(context))


def _layer_nodes(context, layers):
    """{layer: TFLite op output names} in the float graph the denylist is matched against."""
    return reader.layer_nodes(reader.read(_fp32_bytes(context)), layers)


MIXED_PRECISION = MixedPrecision(
    reverts=(
        float_revert(
            lambda context, path, recipe: _export(AUTO, context, path, recipe),
            "TFLite converter denylist (mlir_quantize denylisted_nodes): float32 fallback",
        ),
        Revert(
            "int16x8",
            lambda context, path, recipe, layers: tflite_aeq.build(context, path, recipe, layers, _fp32_bytes(context)),
            "ai-edge-quantizer recipe: static int8 everywhere, 16-bit activations on the reverted layers' ops",
        ),
    ),
    layer_nodes=_layer_nodes,
    description="TFLite int8, layers raised to int16x8 or float32 where needed",
    options=(*AUTO.options, "revert_to"),
)
