"""Accuracy-aware mixed precision: the "auto" precision of `convert`.

`edgekeras convert MODEL --precision auto --accuracy-budget 0.5 [--data DATA]` (or
`--min-cosine 0.99`, no labels needed) starts from the full-int8 artifact and, while it misses
the budget, raises Keras layers to float32 or int16x8 (`search`: every layer group ranked by what
reverting it alone recovers on evenly spaced validation samples; the shortest prefix of that
ranking that meets the budget found by doubling and bisecting; then every reverted group put back
in int8, costliest in bytes first, where the mix still meets it). The manifest's `mixed_precision` section
records every layer's precision, every step (size, accuracy, cosine, verdict) and the final mix.

- `groups`: which layers are reverted together (a layer with its activation/normalization);
- `judge`: how a candidate is measured (`validation.assess`, so the search stops exactly
  where validation passes);
- `search`: the format-independent loop;
- `exporter`: the "auto" exporter of every format offering mixed precision
  (`export.MixedPrecision`: TFLite, ONNX). `ek.convert_auto` makes one auto artifact.

What reverted layers become (`--revert-to`, `revert_to=`; the manifest's
`mixed_precision.reverted_to`, and every layer's precision under `layers`):
- float32, the default in both formats.
  ONNX: `quantize_static(..., nodes_to_exclude=...)`, the route the int8 exporter already takes
  for a recipe's keep_float; calibration ranges are computed once and reused from ONNX
  Runtime's calibration cache for every candidate. edgekeras has no int16 ONNX route, so
  `--revert-to int16x8` with ONNX is refused (naming the format that has one) rather than
  silently written as float32: a setting is never dropped without a word.
  TFLite: the converter's own denylist (`mlir_quantize(denylisted_nodes=...)` on a model
  calibrated once, what `tf.lite.experimental.QuantizationDebugger` does): the base stays
  exactly the converter's int8 that `--precision int8` ships, one calibration serves every
  candidate, and a candidate costs one re-quantization.
- int16x8 (TFLite only): 16-bit activations, 8-bit weights. The converter cannot mix activation
  widths, so these mixes come from ai-edge-quantizer (`export.tflite_aeq`) rather than the
  converter's debugger denylist: a recipe of per-op rules (static int8 for every op, int16x8
  for the reverted layers' ops matched by their exact TFLite scopes, float I/O), quantizing the
  fp32 `.tflite`; every candidate reuses one calibration, taken with global min/max like the
  converter's (AEQ's default moving average gave a worse int8 base). Each layer's precision is
  read back from the artifact's tensor types (an op AEQ has no int16 rule for stays float32).

Why float32 is the TFLite default (measured on this 2-core x86-64 CPU, LiteRT 2.3.0 with
XNNPACK, 2 threads, p50 of interleaved rounds, `benchmarks/auto_precision.py`): XNNPACK has no
int16 kernels, so int16x8 ops run on LiteRT's reference kernels outside the delegate, and a mix
is several times slower than fp32 for a modest size gain over the float32 mix.
- MobileNetV2 32x32 (weights=None, --min-cosine 0.7; int8 0.66): float32 reverts, 15 of 155
  layers, cosine 0.704, 0.365x the fp32 size, p50 0.21 ms; the same 15 layers in int16x8:
  cosine 0.634, 0.307x, p50 1.48 ms (7x slower); the int16x8 search's own 15 layers: 0.700,
  0.307x, p50 1.87 ms (fp32 0.41 ms, int8 0.18 ms); measured with the search of that time (one
  revert at a time, ranked on the worst samples).
- keras.applications networks whose plain int8 misses parity (random weights, digits inputs as in
  docs/applications.md, --min-cosine 0.99): docs/auto_precision.md, printed by
  `benchmarks/auto_precision.py`. Their int8 error is spread over every layer, so most layers
  stay float.
- digits CNN (--min-cosine 0.99999): float32 reverts logits and meets it, p50 0.0038 ms; logits
  alone in int16x8 reaches 0.99998 (p50 0.0052 ms); the int16x8 search adds conv and still
  misses, 0.67x the fp32 size, p50 0.021 ms.
int16x8 reverts keep weights 8-bit (smaller artifacts), so they stay available, and `deploy`
measures both mixes where a target allows int16x8 (a size limit may favour it; a runtime with int16 kernels may run it faster).
"""
