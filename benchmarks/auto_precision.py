"""What `--precision auto --min-cosine C` keeps above int8 on the keras.applications networks whose
plain int8 misses parity (docs/applications.md: EfficientNetB0, DenseNet121, MobileNetV2,
MobileNetV3Small, InceptionV3), and what it costs. One summary table over every network, format
and revert (`--revert-to`: float32 by default, int16x8 for TFLite): the plain int8 artifact's
cosine, the auto mix's cosine, whether the budget was met, the layers kept above int8 of those
with ops in the artifact, the auto and the int8 artifact's size over the fp32 one's, the search's
steps (candidates validated on the whole set, the ranking's not counted) and wall time; then
each mix's layers. `--rounds N` adds the LiteRT / ONNX Runtime p50 of fp32, int8 and the auto mix
(2 threads, measured interleaved, the median of N rounds).

The networks, their data and their sizes are exactly the applications table's
(`edgekeras.coverage.applications.family`, `edgekeras.coverage.cell.family_data`): weights=None
from the family's fixed seed, logits, BatchNormalization statistics from one training-mode pass
over 1000 inputs (at least 200 above 32x32), 100 calibration and 256 validation images: the
embedded digits upscaled and tinted into RGB through the architecture's own preprocess_input, at
the smallest input Keras accepts (`--size` for another). So the int8 cosines are the table's.
Each network runs in its own child process under a memory watchdog (killed above --max-gib).

    python benchmarks/auto_precision.py [NAME ...] [--size S] [--format tflite --format onnx]
        [--revert-to float32 --revert-to int16x8] [--min-cosine 0.99] [--samples 256] [--rounds 0]
        [--manifests DIR]

`digits` as NAME is the digits CNN of the demo (trained for a few epochs, 8x8 inputs): its int8
already meets most budgets, so give it a tight one (--min-cosine 0.9999).

Measured on this shared 2-core x86-64 CPU (2026-12-05; docs/auto_precision.md has the notes):

    PYTHONPATH=. python benchmarks/auto_precision.py MobileNetV3Small MobileNetV2 EfficientNetB0 \
        InceptionV3 DenseNet121 --format tflite --max-gib 6
    PYTHONPATH=. python benchmarks/auto_precision.py InceptionV3 MobileNetV3Small MobileNetV2 \
        EfficientNetB0 --format onnx --max-gib 6        # and DenseNet121 --format onnx

    network           input    format  revert   int8 cos auto cos met   reverted auto/fp32 int8/fp32 fp32 MiB steps   time
    MobileNetV3Small  32x32x3  tflite  float32    0.9354   0.9901 yes    104/157     0.751     0.300     5.85    32    60s
    MobileNetV2       32x32x3  tflite  float32    0.6686   0.9904 yes    123/155     0.425     0.304     8.51    37    75s
    EfficientNetB0    32x32x3  tflite  float32    0.6300   0.9913 yes    216/227     0.885     0.303    15.32    51   255s
    InceptionV3       75x75x3  tflite  float32    0.5973   0.9900 yes    207/312     0.473     0.256    83.19    80   757s
    DenseNet121       32x32x3  tflite  float32    0.8622   0.9901 yes    274/428     0.526     0.264    26.65   122   423s
    InceptionV3       75x75x3  onnx    float32    0.5818   0.9900 yes    152/218     0.484     0.256    83.17    80   417s
    MobileNetV3Small  32x32x3  onnx    float32    0.9372   0.9903 yes     85/123     0.742     0.323     5.88    34    62s
    MobileNetV2       32x32x3  onnx    float32    0.6654   0.9902 yes      82/99     0.421     0.298     8.54    37    60s
    EfficientNetB0    32x32x3  onnx    float32    0.6680   0.9905 yes    150/159     0.916     0.305    15.35    48   222s
    DenseNet121       32x32x3  onnx    float32    0.8981   0.9900 yes    255/368     0.467     0.275    26.65   120   811s
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NETWORKS = ("EfficientNetB0", "DenseNet121", "MobileNetV2", "MobileNetV3Small", "InceptionV3")
REVERTS = {"tflite": ("float32", "int16x8"), "onnx": ("float32",)}
CALIBRATION = 100


def _application(name, size):
    """(model, calibration, validation) of a keras.applications network, exactly as the
    applications table builds and feeds it (`edgekeras.coverage`), at `size` (None: its smallest)."""
    from edgekeras.coverage.applications import family
    from edgekeras.coverage.cell import family_data

    return family_data(family(name, size=size))


def _digits_cnn():
    """(model, calibration, validation): the demo's digits CNN, trained briefly."""
    import keras
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16.0).astype("float32")[..., None], d.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="pixels"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits",
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1200], y[:1200], epochs=5, verbose=0)
    return model, {"pixels": x[:CALIBRATION]}, {"pixels": x[1200:]}


def _same_layers_int16x8(model, layers, calibration, validation, out):
    """(path, cosine): the int16x8 mix of exactly `layers` (the float32 search's), built as the
    search builds its candidates, and its lowest output cosine to Keras on `validation`."""
    import edgekeras as ek
    from edgekeras.export import mixed_precisions
    from edgekeras.export.context import ExportContext
    from edgekeras.keras_model import KerasModel, sha256_model
    from edgekeras.quantize_recipes import default_recipe

    path = out / "same-layers-int16x8.tflite"
    context = ExportContext(KerasModel(model, sha256_model(model)), calibration=calibration)
    try:
        mixed_precisions()["tflite"].revert("int16x8").build(context, path, default_recipe("auto"), layers)
    finally:
        context.close()
    result = ek.validate(path, reference=model, data=validation, raise_on_failure=False, save=False)
    return path, min(o.cosine for o in result.outputs)


def _p50s(artifacts, rounds):
    """{name: median p50 in ms}: every artifact benchmarked once per round, interleaved."""
    import edgekeras as ek

    seen = {name: [] for name in artifacts}
    for _ in range(rounds):
        for name, artifact in artifacts.items():
            result = ek.benchmark(artifact, threads=2, runs=50, warmup=10, save=False, progress=False)
            seen[name].append(result.latency_ms["p50"])
    return {name: float(np.median(values)) for name, values in seen.items()}


def one(name, size, formats, reverts, min_cosine, samples, rounds, out, manifests):
    """Builds `name`, converts fp32, int8 and auto per revert; prints one JSON line per format and revert."""
    import edgekeras as ek
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    model, calibration, validation = _digits_cnn() if name == "digits" else _application(name, size)
    validation = {k: v[:samples] for k, v in validation.items()}
    shape = next(iter(validation.values())).shape[1:]
    for fmt in formats:
        made = {
            precision: ek.convert(
                model,
                formats=[fmt],
                precisions=[precision],
                calibration=calibration,
                validate=False,
                out=out,
                force=True,
            )[0]
            for precision in ("fp32", "int8")
        }
        rows = {}
        for revert in [r for r in reverts if r in REVERTS[fmt]]:
            started = time.perf_counter()
            try:
                auto = ek.convert_auto(
                    model,
                    format=fmt,
                    min_cosine=min_cosine,
                    calibration=calibration,
                    data=validation,
                    out=out,
                    force=True,
                    revert_to=revert,
                    name=f"{name}-{revert}",
                )
            except ek.ValidationFailed as e:
                auto = e.artifacts[0]
            made[revert], rows[revert] = auto, time.perf_counter() - started
            if manifests:
                Path(manifests).mkdir(parents=True, exist_ok=True)
                (Path(manifests) / f"{name}-{fmt}-{revert}.json").write_text(
                    json.dumps(auto.manifest.to_dict(), indent=1)
                )
        same = None
        if "float32" in made and "int16x8" in made:  # the float32 search's layers, in int16x8 instead
            layers = made["float32"].manifest["mixed_precision"]["final"]["reverted_layers"]
            made["same"], cosine = _same_layers_int16x8(model, layers, calibration, validation, out)
            same = {"bytes": made["same"].stat().st_size, "cosine": cosine}
        p50 = _p50s(made, rounds) if rounds else {}
        if same:
            same["p50"] = p50.get("same")
            same["ratio"] = same["bytes"] / made["fp32"].size_bytes
        for revert, seconds in rows.items():
            auto = made[revert]
            mix = auto.manifest["mixed_precision"]
            record = {
                "network": name,
                "format": fmt,
                "revert_to": revert,
                "input": "x".join(str(d) for d in shape),
                "samples": len(next(iter(validation.values()))),
                "fp32_bytes": made["fp32"].size_bytes,
                "int8_bytes": made["int8"].size_bytes,
                "auto_bytes": auto.size_bytes,
                "int8_cosine": mix["steps"][0]["cosine"],
                "auto_cosine": mix["final"]["cosine"],
                "met": mix["final"]["met"],
                "reverted_layers": mix["final"]["reverted_layers"],
                "layers": len(mix["layers"]),
                "steps": len(mix["steps"]),
                "seconds": seconds,
                "p50": {k: p50[k] for k in ("fp32", "int8", revert)} if p50 else None,
                "same_layers_int16x8": same if revert == "float32" else None,
            }
            print(json.dumps(record), flush=True)


def _rss_gib(pid):
    """Resident memory of `pid` and its children, in GiB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * 4096
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 2**30


def _run_child(name, args, formats, reverts):
    """Runs one network in a child process under the memory watchdog: (records, peak GiB, why it stopped or None)."""
    command = [sys.executable, __file__, name, "--one", "--min-cosine", str(args.min_cosine)]
    command += ["--samples", str(args.samples), "--rounds", str(args.rounds)]
    command += ["--size", str(args.size)] if args.size else []
    command += ["--manifests", args.manifests] if args.manifests else []
    command += [x for f in formats for x in ("--format", f)]
    command += [x for r in reverts for x in ("--revert-to", r)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, _rss_gib(child.pid))
        if peak > args.max_gib:
            child.kill()
        time.sleep(0.5)
    records = [json.loads(x) for x in child.stdout.read().splitlines() if x.startswith("{")]
    why = None
    if child.returncode != 0:
        why = f"over {args.max_gib} GiB" if peak > args.max_gib else f"exit {child.returncode}"
    return records, peak, why


HEADER = (
    f"{'network':<17} {'input':<8} {'format':<7} {'revert':<8} {'int8 cos':>8} {'auto cos':>8} {'met':<4} "
    f"{'reverted':>9} {'auto/fp32':>9} {'int8/fp32':>9} {'fp32 MiB':>8} {'steps':>5} {'time':>6}"
)


def _row(r):
    """One summary line of a record."""
    line = (
        f"{r['network']:<17} {r['input']:<8} {r['format']:<7} {r['revert_to']:<8} {r['int8_cosine']:>8.4f} "
        f"{r['auto_cosine']:>8.4f} {'yes' if r['met'] else 'NO':<4} "
        f"{str(len(r['reverted_layers'])) + '/' + str(r['layers']):>9} {r['auto_bytes'] / r['fp32_bytes']:>9.3f} "
        f"{r['int8_bytes'] / r['fp32_bytes']:>9.3f} {r['fp32_bytes'] / 2**20:>8.2f} {r['steps']:>5} {r['seconds']:>5.0f}s"
    )
    if r["p50"]:
        line += "  p50 fp32/int8/auto " + "/".join(f"{v:.3f}" for v in r["p50"].values()) + " ms"
    same = r.get("same_layers_int16x8")
    if same:
        line += f"  (same layers in int16x8: cos {same['cosine']:.4f}, {same['ratio']:.3f}x"
        line += f", p50 {same['p50']:.3f} ms)" if same["p50"] is not None else ")"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NETWORKS))
    parser.add_argument("--size", type=int, default=None, help="input height/width (default: each one's smallest)")
    parser.add_argument("--format", dest="formats", action="append", default=None)
    parser.add_argument("--min-cosine", type=float, default=0.99)
    parser.add_argument("--samples", type=int, default=256, help="validation images (the ranking takes <= 100)")
    parser.add_argument("--revert-to", dest="reverts", action="append", default=None, help="float32, int16x8")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved latency rounds (50 runs each; 0: none)")
    parser.add_argument("--max-gib", type=float, default=6.0)
    parser.add_argument("--manifests", default=None, help="a folder to keep each auto artifact's manifest in")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    formats = args.formats or ["tflite", "onnx"]
    reverts = args.reverts or ["float32"]
    if args.one:
        with tempfile.TemporaryDirectory() as out:
            one(
                args.names[0], args.size, formats, reverts, args.min_cosine, args.samples, args.rounds, Path(out),
                args.manifests,
            )  # fmt: skip
        return 0
    print(f"--min-cosine {args.min_cosine}, {args.samples} validation images, one network per process")
    records, started = [], time.perf_counter()
    for name in args.names:
        t0 = time.perf_counter()
        found, peak, why = _run_child(name, args, formats, reverts)
        records += found
        for r in found:
            print(_row(r), flush=True)
        print(
            f"  ({name}: {time.perf_counter() - t0:.0f}s in all, peak {peak:.1f} GiB{', stopped: ' + why if why else ''})"
        )
    print(f"\nSummary ({time.perf_counter() - started:.0f}s in all):")
    print(HEADER)
    for r in records:
        print(_row(r))
    print("\nLayers kept in higher precision:")
    for r in records:
        print(f"{r['network']} {r['format']} {r['revert_to']}: {', '.join(r['reverted_layers']) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
