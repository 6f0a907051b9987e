"""edgekeras' lean tf2onnx route patches exactly the tf2onnx it was written against.

Fails on purpose when a tf2onnx upgrade changes a function `export/tf2onnx_lean.py` replaces or
relies on: read the new `tf2onnx/graph.py` (Node.update_proto) and `convert.py`, check that a
constant's NodeProto is still unused for the model, then update TF2ONNX_VERSIONS/FINGERPRINTS.
"""

from edgekeras.export import tf2onnx_lean


def test_the_installed_tf2onnx_is_the_one_the_patch_was_written_for():
    assert tf2onnx_lean.drift() == [], (
        "tf2onnx changed what edgekeras/export/tf2onnx_lean.py patches: re-check Node.update_proto and the "
        "large-model route, then update TF2ONNX_VERSIONS/FINGERPRINTS."
    )


def test_the_patch_holds_only_inside_the_block():
    from tf2onnx import graph

    original = graph.Node.update_proto
    with tf2onnx_lean.lean_constants():
        assert graph.Node.update_proto is not original
    assert graph.Node.update_proto is original
