"""What pruning buys on the digits CNN: accuracy and compressed int8 size, side by side.

Trains the shipped digits CNN recipe (fit.callbacks off, so every run has the same length),
then prunes that run with `ek.prune` to 80 % and 50 % unstructured sparsity and to 2:4 (the
first convolution, one input channel, kept dense), each fine-tuned as long as it trained and
exported to TFLite fp32 and int8 (post-training, calibrated on the training split). Prints
per row: test accuracy of the Keras model and of its int8 artifact with the drop from the
unpruned model in points, sparsity, and gzip(int8 artifact) / unpruned fp32 artifact size
(and the same for the int8 weight tensors alone: the rest is the flatbuffer's own content),
and the int8 Dense weights' scales (per channel, or one per kernel where every Dense kernel is
pruned to >= 70 %: edgekeras/export/dense_scales.py). gzip is level 9, as manifests record it.
Targets: 80 % -> size ratio <= 0.10 at <= 1 point; 50 % -> <= 0.20; 2:4 -> <= 1 point.

    python benchmarks/pruning.py [--epochs 20] [--out DIR]

Measured (2026-12-04, 2-core x86-64, `PYTHONPATH=. python benchmarks/pruning.py`; unpruned fp32
artifact 153.6 KiB):

    model            | sparsity | keras acc | drop | int8 acc | drop  | int8 KiB | gzip KiB | gzip/fp32 | weights | dense scales
    unpruned         | 0.0%     | 0.9861    | +0.00 | 0.9833  | +0.28 | 45.5     | 39.4     | 0.257     | 0.236   | channel
    80% unstructured | 80.0%    | 0.9777    | +0.84 | 0.9777  | +0.84 | 43.8     | 14.3     | 0.093     | 0.078   | kernel
    50% unstructured | 50.0%    | 0.9805    | +0.56 | 0.9805  | +0.56 | 45.5     | 28.7     | 0.187     | 0.167   | channel
    2:4              | 50.0%    | 0.9861    | +0.00 | 0.9861  | +0.00 | 45.5     | 29.9     | 0.194     | 0.175   | channel

At 80 % with per-channel Dense scales (`dense_per_channel: on`, the only behaviour before) the
ratio was 0.101 (45.5 KiB, gzip 15.4 KiB) at the same accuracy.
"""

import argparse
import gzip
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def weight_bytes(path):
    """The artifact's integer weight tensors (kernels, biases) as bytes, in tensor order."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    out = b""
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] in (np.int8, np.int32) and len(detail["shape"]) >= 1:
            try:
                value = interpreter.get_tensor(detail["index"])
            except ValueError:
                continue
            if value.size > 16 and detail["shape"][0] != 1:  # constants, not activation buffers
                out += value.tobytes()
    return out


def artifact_facts(run_dir):
    """{precision: (size, gzip size, artifact accuracy, gzip size of its weights alone, Dense scales)}."""
    facts = {}
    for manifest in sorted(Path(run_dir, "artifacts").glob("*.json")):
        doc = json.loads(manifest.read_text())
        if doc["format"] != "tflite":
            continue
        path = manifest.with_suffix(".tflite")
        data = path.read_bytes()
        output = doc["validation"]["outputs"][0]
        weights = len(gzip.compress(weight_bytes(path), 9)) if doc["precision"] == "int8" else None
        scales = doc.get("dense_scales")
        dense = None if scales is None else ("channel" if scales["per_channel"] else "kernel")
        facts[doc["precision"]] = (len(data), len(gzip.compress(data, 9)), output["metric_artifact"], weights, dense)
    return facts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import edgekeras as ek
    from edgekeras.recipe import load_recipe

    root = Path(args.out or tempfile.mkdtemp(prefix="pruning-bench-"))
    recipe = load_recipe("digits-cnn").to_dict()
    recipe["fit"] = {**recipe["fit"], "epochs": args.epochs, "callbacks": []}
    recipe["export"] = {**recipe["export"], "formats": ["tflite"], "precisions": ["fp32", "int8"]}
    base = ek.train(recipe, out=root / "base", force=True)
    base_accuracy = base.test_metrics["accuracy"]
    base_facts = artifact_facts(base.path)
    fp32_size = base_facts["fp32"][0]
    first_conv = base.model.layers[0].name
    rows = [("unpruned", base_accuracy, base_facts, 0.0)]
    for label, sparsity, structure, exclude in [
        ("80% unstructured", 0.8, "unstructured", []),
        ("50% unstructured", 0.5, "unstructured", []),
        ("2:4", 0.5, "2:4", [first_conv]),
    ]:
        result = ek.prune(
            base.path,
            sparsity=sparsity,
            structure=structure,
            exclude=exclude,
            epochs=args.epochs,
            out=root / label.replace("%", "").replace(" ", "-").replace(":", "of"),
            force=True,
        )
        rows.append(
            (label, result.run.test_metrics["accuracy"], artifact_facts(result.path), result.summary["sparsity"])
        )

    print(
        f"digits CNN ({args.epochs} epochs; fine-tuning as long), test split of the recipe; sizes vs the unpruned fp32"
    )
    header = [
        "model",
        "sparsity",
        "keras acc",
        "drop pts",
        "int8 acc",
        "drop pts",
        "int8 KiB",
        "gzip int8 KiB",
        "gzip int8 / fp32",
        "weights only",
        "dense scales",
    ]
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for label, accuracy, facts, sparsity in rows:
        size, gz, int8_accuracy, weights_gz, dense = facts["int8"]
        print(
            " | ".join(
                [
                    label,
                    f"{sparsity:.1%}",
                    f"{accuracy:.4f}",
                    f"{(base_accuracy - accuracy) * 100:+.2f}",
                    f"{int8_accuracy:.4f}",
                    f"{(base_accuracy - int8_accuracy) * 100:+.2f}",
                    f"{size / 1024:.1f}",
                    f"{gz / 1024:.1f}",
                    f"{gz / fp32_size:.3f}",
                    f"{weights_gz / fp32_size:.3f}",
                    dense,
                ]
            )
        )
    print(f"unpruned fp32 artifact: {fp32_size / 1024:.1f} KiB; run folders under {root}")


if __name__ == "__main__":
    main()
