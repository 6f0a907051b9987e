"""TFLite int8 with chosen ops at 16-bit activations, through ai-edge-quantizer (AEQ).

TensorFlow's converter quantizes a whole model to one activation width. AEQ quantizes a float
`.tflite` by a recipe: rules matched to each op's scope (its output tensor names joined with
';', plus a trailing ';'), the later rule winning. The recipe written here:

1. every op static int8 (8-bit activations, 8-bit weights, per-channel unless the quantize
   recipe says per-tensor) -- the int8 base;
2. the reverted layers' ops static int16x8 (16-bit activations, 8-bit weights); AEQ puts the
   int8 <-> int16 requantizations between them and their int8 neighbours;
3. the ops of the quantize recipe's keep_float layers and ops not quantized (float32);
4. the model's inputs and outputs not quantized: float32 I/O, as the converter's int8.

Rules match exact scopes, never a layer-name prefix, so a layer named `dense` does not catch
`dense_1`. Calibration (every tensor's min/max on the calibration data) runs once; every recipe
of a search is quantized from the same ranges. ai-edge-quantizer is imported here only, lazily.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgekeras.errors import ConversionError, InputError
from edgekeras.qat import fake_quant_layers
from edgekeras.quiet import captured_output
from edgekeras.readers import tflite as reader
from edgekeras.readers.scopes import keras_layer_names

if TYPE_CHECKING:
    from pathlib import Path

    from edgekeras.export.context import ExportContext
    from edgekeras.quantize_recipes import QuantRecipe

# The scope regex of the last rules (3, 4): matches every op, and differs from rule 1's ".*"
# because AEQ keys rules by regex and orders them by first insertion.
_LAST = "^"


def build(
    context: ExportContext, path: Path, recipe: QuantRecipe, layers: Sequence[str], fp32: bytes
) -> dict[str, Any]:
    """Writes `fp32` (the model's float TFLite bytes) to `path` as int8 with `layers` at int16x8
    and the recipe's keep_float layers and ops in float32; returns the manifest notes, with
    "mix": what the auto search records (every layer's precision read back from the artifact,
    the AEQ recipe)."""
    check(context, recipe, "--revert-to int16x8", "Use --revert-to float32.")
    # the same float model for every candidate of a search: parsed and mapped to layers once
    model = context.cached("aeq_fp32_model", lambda: reader.read(fp32))
    kept = recipe.keep_float
    nodes = reader.layer_nodes(model, list(dict.fromkeys([*layers, *kept["layers"]])))
    _check_kept(model, kept, nodes)
    batch = context.fixed_batch or 1
    ranges = context.cached(
        f"aeq_ranges:{recipe.samples}:{batch}",
        lambda: calibrate(fp32, context.calibration_samples(batch, recipe.samples)),
    )
    int16 = op_scopes(model, [n for layer in layers for n in nodes[layer]])
    floats = op_scopes(model, [n for layer in kept["layers"] for n in nodes[layer]], kept["ops"])
    rules = recipe_rules(recipe.per_channel, int16, floats)
    flatbuffer = quantize(fp32, ranges, rules)
    path.write_bytes(flatbuffer)
    every = context.cached("aeq_layer_nodes", lambda: reader.layer_nodes(model, keras_layer_names(context.model)))
    precisions = layer_precisions(reader.read(flatbuffer), every)
    return {
        "kept_float": {"layers": list(kept["layers"]), "ops": list(kept["ops"]), "nodes": []},
        "mix": {"layers": precisions, "quantizer_recipe": rules},
    }


def blockers(context: ExportContext, recipe: QuantRecipe) -> tuple[list[str], list[str]]:
    """Why AEQ cannot make this artifact: (the recipe's settings, the model's traits); both
    empty when it can."""
    settings, traits = [], []
    if recipe.io_dtype != "float32":
        settings.append("io_dtype: int8 (ai-edge-quantizer writes float32 inputs and outputs)")
    if recipe.sparse_weights == "on":
        settings.append("sparse_weights: on (ai-edge-quantizer writes dense weights)")
    if recipe.dense_per_channel != "auto" and (recipe.dense_per_channel == "on") != recipe.per_channel:
        settings.append(
            f"dense_per_channel: {recipe.dense_per_channel} with per_channel: {str(recipe.per_channel).lower()} "
            "(ai-edge-quantizer gives every kernel one granularity)"
        )
    if context.recurrent_layers:
        traits.append(
            f"recurrent layers {context.recurrent_layers} (their TFLite loops are quantized through the converter only)"
        )
    if fake_quant_layers(context.model):
        traits.append("quantization-aware layers (their trained ranges are applied by the converter)")
    if context.allow_select_ops:
        traits.append("TensorFlow select ops (the calibrating interpreter has no Flex delegate)")
    return settings, traits


def check(context: ExportContext, recipe: QuantRecipe, asked: str, instead: str) -> None:
    """What the AEQ route cannot do, said before any work: `asked` names what chose the route,
    `instead` what to use."""
    settings, traits = blockers(context, recipe)
    if settings:
        raise InputError(
            f"Expected a quantize recipe without {'; '.join(settings)} for {asked}. "
            f"Received: recipe '{recipe.name}'. {instead}"
        )
    if traits:
        raise ConversionError(f"Expected a model without {'; '.join(traits)} for {asked}. {instead}")


def quantize_int8(context: ExportContext, recipe: QuantRecipe, fp32_path: Path) -> tuple[bytes, dict[str, Any]]:
    """Plain int8 (no layer at 16 bits) of the float `.tflite` at `fp32_path`: the quantize
    recipe `quantizer: ai-edge-quantizer`, and `auto` on big models (`memory_estimate`).

    Calibration and quantization read the file (LiteRT maps it), so no Python copy of the float
    weights is held: VGG16 peaks at 2.3 GiB here, against 4.4 GiB for TensorFlow's quantizer alone.
    Returns the flatbuffer and the manifest notes ("quantizer_rules": the AEQ recipe applied).
    What AEQ cannot do was refused before (`check`, `blockers`).
    """
    kept, floats = recipe.keep_float, []
    if kept["layers"] or kept["ops"]:
        model = reader.read(fp32_path)
        nodes = reader.layer_nodes(model, list(kept["layers"]))
        _check_kept(model, kept, nodes)
        floats = op_scopes(model, [n for layer in kept["layers"] for n in nodes[layer]], kept["ops"])
        del model
    ranges = calibrate(str(fp32_path), context.calibration_samples(context.fixed_batch or 1, recipe.samples))
    rules = recipe_rules(recipe.per_channel, (), floats)
    notes = {"kept_float": {"layers": list(kept["layers"]), "ops": list(kept["ops"]), "nodes": []}}
    return quantize(str(fp32_path), ranges, rules), {**notes, "quantizer_rules": rules}


def _check_kept(model: reader.TFLiteModel, kept: Mapping[str, Sequence[str]], nodes: Mapping[str, Any]) -> None:
    missing = [layer for layer in kept["layers"] if not nodes[layer]]
    absent = [op for op in kept["ops"] if op not in model.op_counts]
    if missing or absent:
        raise InputError(
            f"Expected keep_float to name layers and TFLite ops of the model ({', '.join(sorted(model.op_counts))}). "
            f"Received: {', '.join(missing + absent)}, not found in the converted graph (layers without ops, e.g. "
            "Flatten, may have been folded away)."
        )


def _source(fp32: bytes | str) -> bytearray | str:
    """What AEQ takes: a path (mapped by LiteRT, read once by AEQ) or a mutable copy of the bytes."""
    return fp32 if isinstance(fp32, str) else bytearray(fp32)


def calibrate(fp32: bytes | str, samples: Iterable[Mapping[str, Any]]) -> dict:
    """Every tensor's min/max (AEQ's QSVs) over `samples` ({input name: batch}), run in LiteRT;
    `fp32` is the float model's bytes or path.

    The global min and max, as TensorFlow's converter calibrates, not AEQ's default moving
    average of per-batch ranges (which clips what few samples reach: on the digits CNN its int8
    base kept a cosine of 0.9979 where the converter's int8, and this one, keep 0.99997).
    """
    _quantizer()
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    rules = recipe_manager.RecipeManager()
    rules.load_quantization_recipe(recipe_rules(per_channel=True))
    # AEQ's progress bar writes to sys.stderr, which is not fd 2 under a CLI runner or pytest
    with captured_output(), contextlib.redirect_stderr(io.StringIO()):
        calib = calibrator.Calibrator(
            _source(fp32),
            num_threads=2,
            # min/max tracked inside the interpreter run: no copy of every tensor (weights included)
            # per sample, as the default preserve-all-tensors mode makes (VGG16: 1.6 GiB, not 2.3)
            mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
            qsv_update_func=qsv_utils.min_max_update,
        )
        key = next(iter(calib.get_signature_list()), "serving_default")
        calib.calibrate({key: [dict(s) for s in samples]}, rules)
    return calib.get_model_qsvs()


def quantize(fp32: bytes | str, ranges: dict, rules: list[dict]) -> bytes:
    """The `.tflite` bytes of `fp32` (bytes or path) quantized by the AEQ recipe `rules` with `ranges`."""
    q = _quantizer().Quantizer(_source(fp32), rules)
    with captured_output(), contextlib.redirect_stderr(io.StringIO()):
        result = q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


def recipe_rules(
    per_channel: bool, int16_scopes: Sequence[str] = (), float_scopes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The AEQ recipe (a JSON-able list of rules, later ones winning) of the module docstring."""
    rules = [_static(".*", 8, per_channel)]
    if int16_scopes:
        rules.append(_static(_exactly(int16_scopes), 16, per_channel))
    if float_scopes:
        rules.append(_float(_exactly(float_scopes), "*"))
    return rules + [_float(_LAST, "INPUT"), _float(_LAST, "OUTPUT")]


def _quantizer():
    try:
        from ai_edge_quantizer import quantizer
    except ImportError as e:
        raise ConversionError(
            f"Expected ai-edge-quantizer for --revert-to int16x8. Received: {e}. Install it "
            "(pip install ai-edge-quantizer==0.10.0) or use --revert-to float32."
        ) from None
    return quantizer


def _static(regex: str, activation_bits: int, per_channel: bool) -> dict[str, Any]:
    return {
        "regex": regex,
        "operation": "*",
        "algorithm_key": "min_max_uniform_quantize",
        "op_config": {
            "activation_tensor_config": {
                "num_bits": activation_bits,
                # int16 activations are symmetric (TFLite's int16x8 kernels take no zero point)
                "symmetric": activation_bits == 16,
                "granularity": "TENSORWISE",
                "dtype": "INT",
            },
            "weight_tensor_config": {
                "num_bits": 8,
                "symmetric": True,
                "granularity": "CHANNELWISE" if per_channel else "TENSORWISE",
                "dtype": "INT",
            },
            "compute_precision": "INTEGER",
            "explicit_dequantize": False,
        },
    }


def _float(regex: str, operation: str) -> dict[str, Any]:
    return {"regex": regex, "operation": operation, "algorithm_key": "no_quantize", "op_config": {}}


def _exactly(scopes: Sequence[str]) -> str:
    return "^(?:" + "|".join(re.escape(s) for s in sorted(set(scopes))) + ")$"


def op_scopes(model: reader.TFLiteModel, names: Iterable[str] = (), ops: Iterable[str] = ()) -> list[str]:
    """AEQ's scopes of the main graph's ops that output a tensor named in `names` or are of a
    type in `ops` (TFLite op names: CONV_2D)."""
    names, ops = set(names), set(ops)
    found = []
    for op in model.ops:
        outputs = [model.tensors[i].name for i in op.outputs]
        if op.name in ops or names.intersection(outputs):
            found.append("".join(f"{n};" for n in outputs))
    return found


def layer_precisions(model: reader.TFLiteModel, nodes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """{layer: "float32" | "int16x8" | "int8"}: what the ops named in `nodes` ({layer: output
    tensor names}) compute in, read from `model`'s tensor types (the widest of a layer's ops;
    ops with integer-index outputs, like SHAPE, say nothing)."""
    dtypes = {t.name: t.dtype for t in model.tensors if not t.constant}
    order = {"int8": 0, "uint8": 0, "int16": 1, **dict.fromkeys(reader.FLOATS, 2)}
    names = {0: "int8", 1: "int16x8", 2: "float32"}
    found = {}
    for layer, outputs in nodes.items():
        ranks = [order[dtypes[n]] for n in outputs if dtypes.get(n) in order]
        if ranks:
            found[layer] = names[max(ranks)]
    return found
