"""ONNX Runtime's quantization pre-processing and calibration, done from files so that a big
model's weights are in memory once at a time.

`quant_pre_process` loads the graph with its weights, then has ONNX Runtime optimize the same
file beside it, then loads the result again to add its metadata; `quantize_static` holds the
model while its calibrator loads a second copy and opens a session on a third (Dense2G's
2.2 GB of weights: 9.2 GiB at peak with the Keras model, issue 15's budget 7.9). Here ONNX
Runtime's optimizer and ONNX shape inference read and write files, the calibrator lets go of
its copy's weights once the augmented graph is on disk, and the ranges go to the file
`quantize_static` reads instead of calibrating (`calibration_cache_path`). The steps and their
results are ONNX Runtime's own: same optimization level, shape inference, metadata, calibrators
and their defaults (`create_calibrator`'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekeras.memory_estimate import release_memory

# edgekeras calibration method -> ONNX Runtime calibrator and the options create_calibrator gives it.
CALIBRATORS = {
    "minmax": ("MinMaxCalibrater", {}),
    "percentile": ("PercentileCalibrater", {"symmetric": True, "num_bins": 2048}),
}


def pre_process(source: Path, prepared: Path, optimize: bool = True, external: bool = False) -> Path:
    """`quant_pre_process(source, prepared, skip_symbolic_shape=True)`, file to file: ONNX
    Runtime's basic graph optimizations (unless not `optimize`), ONNX shape inference and the
    pre-processed tag. With `external`, weights go to `PREPARED.data` beside it."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    step = source
    if optimize:
        step = prepared.with_name(f"{prepared.stem}-optimized.onnx")
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(step)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.add_session_config_entry("session.disable_prepacking", "1")  # no packed copy of the weights
        if external:
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", f"{prepared.name}.data"
            )
        try:
            session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            del session
        except Exception:  # as quant_pre_process does: go on unoptimized; calibration names the fault
            for path in (step, step.with_name(f"{prepared.name}.data")):
                path.unlink(missing_ok=True)
            step = source
        release_memory()
    onnx.shape_inference.infer_shapes_path(str(step), str(prepared))
    model = onnx.load(str(prepared), load_external_data=False)  # the graph; weights stay in their file
    add_pre_process_metadata(model)
    onnx.save(model, str(prepared))
    if step != source:
        step.unlink()
    return prepared


def _session(path: Path) -> Any:
    """The calibrator's own session (`CalibraterBase.create_inference_session`) without ONNX
    Runtime's pre-packed copy of every weight."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def calibrate(
    source: Path,
    ranges: Path,
    method: str,
    reader: Any,
    percentile: float | None = None,
    external: bool = False,
) -> Path:
    """Calibrates `source` on what `reader` yields (ONNX Runtime's `CalibrationDataReader`
    protocol) and writes the tensor ranges to `ranges`, as `quantize_static` would with
    `calibration_cache_path`; the tensors are those of the op types `quantize_static`
    quantizes."""
    import importlib

    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    name, options = CALIBRATORS[method]
    if percentile is not None:
        options = {**options, "percentile": percentile}
    calibrator_class = getattr(importlib.import_module("onnxruntime.quantization.calibrate"), name)
    augmented = ranges.with_name(f"{ranges.stem}-augmented.onnx")
    calibrator = calibrator_class(
        source,
        sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
        augmented_model_path=str(augmented),
        use_external_data_format=external,
        **options,
    )
    try:
        calibrator.augment_graph()
        del calibrator.model.graph.initializer[:]  # on disk in the augmented graph; the session reads them there
        release_memory()
        calibrator.infer_session = _session(augmented)
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), ranges)
    finally:
        del calibrator
        for path in (augmented, augmented.with_name(f"{augmented.name}.data")):
            path.unlink(missing_ok=True)
        release_memory()
    return ranges
