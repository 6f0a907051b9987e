#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: installs the GPU stack (make gpu: TensorFlow's CUDA build and
# onnxruntime-gpu instead of the CPU packages), checks that TensorFlow and ONNX Runtime both see the
# GPU (edgekeras doctor --require-gpu), trains the digits recipe under `strategy: mirrored` with
# mixed precision on the GPU, then benchmarks ONNX artifacts (the digits CNN, and MobileNetV2 at
# 224x224 where a GPU has work to do) with the CPU, CUDA and, if present, TensorRT providers,
# printing each p50 latency and its speed-up over the CPU.
#
#   bash scripts/gpu-check.sh [--no-install]     (VENV=.venv by default; WORK=a scratch folder)
#
# Without an NVIDIA GPU it says so and exits 1 before installing anything.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
WORK=${WORK:-$(mktemp -d -t edgekeras-gpu-check-XXXXXX)}
INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option '$arg' (expected --no-install)" >&2; exit 2 ;;
  esac
done

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi not found: no NVIDIA driver). Nothing to check; run this on a machine with an NVIDIA GPU." >&2
  exit 1
fi
if ! gpus=$(nvidia-smi -L 2>/dev/null) || [ -z "$gpus" ]; then
  echo "gpu-check: nvidia-smi lists no GPU (driver not loaded, or no device visible to this container). Nothing to check." >&2
  exit 1
fi
echo "== GPUs"
echo "$gpus"

if [ "$INSTALL" = 1 ]; then
  echo "== make gpu (tensorflow[and-cuda], onnxruntime-gpu; CPU packages uninstalled first)"
  make gpu VENV="$VENV"
fi
EK="$VENV/bin/edgekeras"
PY="$VENV/bin/python"
echo "== edgekeras doctor --require-gpu"
"$EK" doctor --require-gpu

echo "== train digits, strategy: mirrored, precision: mixed_float16 (scratch folder: $WORK)"
cat >"$WORK/digits-gpu.yaml" <<'EOF'
name: digits-gpu
seed: 7
strategy: mirrored
precision: mixed_float16
data: {source: digits, validation_split: 0.1, test_split: 0.2, batch_size: 64}
model:
  type: sequential
  input_shape: [8, 8, 1]
  layers:
    - Conv2D: {filters: 16, kernel_size: 3, padding: same, activation: relu}
    - MaxPooling2D: {}
    - Conv2D: {filters: 32, kernel_size: 3, padding: same, activation: relu}
    - Flatten: {}
    - Dense: {units: 64, activation: relu}
    - Dense: {units: 10, activation: softmax}
compile:
  optimizer: {Adam: {learning_rate: 0.003}}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 15}
export: {formats: [onnx], precisions: [fp32]}
EOF
"$EK" train "$WORK/digits-gpu.yaml" --out "$WORK/run" --force
"$PY" - "$WORK/run/run.json" <<'EOF'
import json, sys
state = json.load(open(sys.argv[1]))
d = state["distribution"]
print(f"trained on {', '.join(d['devices'])}: {d['replicas']} replica(s), precision {state['precision']}, "
      f"test accuracy {state['test_metrics']['accuracy']:.4f}")
if not any("GPU" in device for device in d["devices"]):
    sys.exit("gpu-check: training did not run on a GPU")
EOF

echo "== MobileNetV2 (weights=None, 224x224) to ONNX fp32"
"$PY" - "$WORK/mobilenetv2.keras" <<'EOF'
import sys
import keras
keras.applications.MobileNetV2(weights=None).save(sys.argv[1])
EOF
"$EK" convert "$WORK/mobilenetv2.keras" --format onnx --precision fp32 --no-validate --out "$WORK/mobilenet" --force

echo "== ONNX Runtime providers: p50 latency (batch 1) and speed-up over the CPU"
providers=(CPUExecutionProvider CUDAExecutionProvider)
if "$EK" doctor --json | "$PY" -c 'import json, sys; sys.exit("TensorrtExecutionProvider" not in json.load(sys.stdin)["onnxruntime"]["usable"])'; then
  providers+=(TensorrtExecutionProvider)
else
  echo "(TensorRT provider not usable here: skipped)"
fi
for artifact in "$WORK/run/artifacts/digits-gpu-onnx-fp32.onnx" "$WORK/mobilenet/"*.onnx; do
  for provider in "${providers[@]}"; do
    "$EK" bench "$artifact" --provider "$provider" --runs 200 --warmup 20 --json >"$WORK/bench-$(basename "$artifact" .onnx)-$provider.json"
  done
done
"$PY" - "$WORK" "${providers[@]}" <<'EOF'
import glob, json, os, sys
work, providers = sys.argv[1], sys.argv[2:]
names = sorted({os.path.basename(p)[len("bench-"):].rsplit("-", 1)[0] for p in glob.glob(f"{work}/bench-*.json")})
for name in names:
    p50 = {}
    for provider in providers:
        with open(f"{work}/bench-{name}-{provider}.json") as f:
            p50[provider] = json.load(f)["results"][0]["latency_ms"]["p50"]
    cpu = p50["CPUExecutionProvider"]
    print(f"{name}:")
    for provider, ms in p50.items():
        print(f"  {provider:<28} p50 {ms:9.3f} ms   {cpu / ms:6.2f}x vs CPU")
EOF
echo "gpu-check: done (scratch folder $WORK)"
