"""edgekeras' file-to-file pre-processing and calibration give what ONNX Runtime's own steps give."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgekeras.export.onnx_calibration import calibrate, pre_process


def _graph(path, external=False):
    """Conv -> BatchNormalization -> Relu -> Flatten -> Gemm: something ONNX Runtime's optimizer fuses."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
        "b": rng.normal(size=8).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "shift": rng.normal(size=8).astype(np.float32),
        "mean": rng.normal(size=8).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "fc": rng.normal(size=(8 * 6 * 6, 10)).astype(np.float32),
        "fc_b": rng.normal(size=10).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data", size_threshold=0)
    return path


class _Reader:
    def __init__(self):
        self.rewind()

    def get_next(self):
        return next(self._samples, None)

    def rewind(self):
        rng = np.random.default_rng(1)
        self._samples = iter([{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(16)])


def _initializers(path):
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_pre_processing_and_ranges_match_onnx_runtime_own(tmp_path, method):
    source = _graph(tmp_path / "model.onnx")
    theirs_prepared = tmp_path / "theirs-prep.onnx"
    quant_pre_process(str(source), str(theirs_prepared), skip_symbolic_shape=True)
    mine_prepared = pre_process(source, tmp_path / "mine-prep.onnx")
    theirs_graph, mine_graph = onnx.load(str(theirs_prepared)), onnx.load(str(mine_prepared))
    assert [n.op_type for n in mine_graph.graph.node] == [n.op_type for n in theirs_graph.graph.node]
    assert "BatchNormalization" not in [n.op_type for n in mine_graph.graph.node]  # fused into the Conv
    assert {p.key: p.value for p in mine_graph.metadata_props}["onnx.quant.pre_process"] == "onnxruntime.quant"

    ort_method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]
    common = dict(quant_format=QuantFormat.QDQ, calibrate_method=ort_method)
    quantize_static(str(theirs_prepared), str(tmp_path / "theirs-int8.onnx"), _Reader(), **common)
    ranges = calibrate(mine_prepared, tmp_path / "ranges.json", method, _Reader())
    quantize_static(
        str(mine_prepared), str(tmp_path / "mine-int8.onnx"), None, calibration_cache_path=str(ranges), **common
    )
    theirs, mine = _initializers(tmp_path / "theirs-int8.onnx"), _initializers(tmp_path / "mine-int8.onnx")
    assert sorted(mine) == sorted(theirs)
    scales = [name for name in mine if name.endswith("_scale")]
    assert scales  # activations and weights got their ranges
    for name in mine:
        np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-6, err_msg=name)
    assert not list(tmp_path.glob("ranges-augmented*"))  # the augmented graph is gone


def test_an_external_data_graph_is_pre_processed_beside_its_own_data_file(tmp_path):
    source = _graph(tmp_path / "model.onnx", external=True)
    prepared = pre_process(source, tmp_path / "prep.onnx", external=True)
    assert (tmp_path / "prep.onnx.data").exists()
    assert not list(tmp_path.glob("prep-optimized*"))
    skeleton = onnx.load(str(prepared), load_external_data=False)
    stored = {t.name: t.data_location for t in skeleton.graph.initializer}
    assert stored["fc"] == TensorProto.EXTERNAL  # ONNX Runtime keeps tensors under 1 KB inline
    x = np.ones((2, 3, 8, 8), np.float32)
    expected = ort.InferenceSession(str(source)).run(None, {"x": x})[0]
    np.testing.assert_allclose(
        ort.InferenceSession(str(prepared)).run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-4
    )
    ranges = calibrate(prepared, tmp_path / "ranges.json", "minmax", _Reader(), external=True)
    assert ranges.exists() and not list(tmp_path.glob("ranges-augmented*"))


def test_a_graph_onnx_runtime_cannot_open_is_pre_processed_unoptimized(tmp_path):
    """As `quant_pre_process` does: the optimizer's failure is not the pre-processing's; the
    graph goes on as it is (and calibration, which needs a session, names the fault)."""
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.unknown", name="mystery")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.unknown", 1)]
    )
    onnx.save(model, str(tmp_path / "model.onnx"))
    prepared = pre_process(tmp_path / "model.onnx", tmp_path / "prep.onnx")
    assert [n.op_type for n in onnx.load(str(prepared)).graph.node] == ["NoSuchOp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "prep.onnx"]
