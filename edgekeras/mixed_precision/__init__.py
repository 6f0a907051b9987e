"""Accuracy-aware mixed precision: the "auto" precision of `convert`.

`edgekeras convert MODEL --precision auto --accuracy-budget 0.5 [--data DATA]` (or
`--min-cosine 0.99`, no labels needed) starts from the full-int8 artifact and, while it misses
the budget, keeps the Keras layers that cost the most in float (`search`: ranked on the
samples where int8 strays furthest, reverted one group at a time, re-validated on the whole
set, stepped back when a revert did not help). The manifest's `mixed_precision` section
records every layer's precision, every step (size, accuracy, cosine, verdict) and the final mix.

- `groups`: which layers are reverted together (a layer with its activation/normalization);
- `judge`: how a candidate is measured (`validation.assess`, so the search stops exactly
  where validation passes);
- `search`: the format-independent loop;
- `exporter`: the "auto" exporter of every format whose int8 exporter offers a float fallback
  (`export.FloatFallback`: TFLite, ONNX). `ek.convert_auto` makes one auto artifact.

How a layer is kept in float, per format:
- ONNX: `quantize_static(..., nodes_to_exclude=...)`, the route the int8 exporter already takes
  for a recipe's keep_float; calibration ranges are computed once and reused from ONNX
  Runtime's calibration cache for every candidate. Excluded nodes stay float32.
- TFLite: the converter's own denylist (`mlir_quantize(denylisted_nodes=...)` on a model
  calibrated once, what `tf.lite.experimental.QuantizationDebugger` does), not ai-edge-quantizer
  recipes. Reasons: (1) the base stays exactly the converter's int8 that `--precision int8`
  ships (same calibration, same kernels), so a step's gain is the revert's alone; (2) one
  calibration serves every candidate, and a candidate costs one re-quantization; (3) the
  denylisted ops run in float32 through XNNPACK, while int16x8 ops have only LiteRT's reference
  kernels (no XNNPACK), so an int16x8 island would make the artifact slower, not just larger;
  (4) ai-edge-quantizer is not a dependency of edgekeras (it is not installed in this project's
  environment). The price: reverted layers are float32 (their weights 4x larger), not int16x8.
"""
