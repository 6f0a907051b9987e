# The two commands a fresh machine needs: `make demo` and `make test`. Both build the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: venv gpu lint demo test test-slow bench coverage applications clean

# The CPU packages (requirements.lock) or, after `make gpu`, the GPU ones (requirements-gpu.lock): each install
# uninstalls the other's TensorFlow and ONNX Runtime first (the same modules; never both). Back to the CPU:
# rm .venv/.installed-gpu && make venv
$(STAMP): pyproject.toml requirements.lock scripts/sysdeps.sh
	bash scripts/sysdeps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes tensorflow onnxruntime-gpu
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(GPU_STAMP): pyproject.toml requirements-gpu.lock scripts/sysdeps.sh
	bash scripts/sysdeps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes tensorflow-cpu onnxruntime
	$(PY) -m pip install --quiet -r requirements-gpu.lock
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(STAMP)
	touch $(GPU_STAMP)

ifneq ($(wildcard $(GPU_STAMP)),)
venv: $(GPU_STAMP)
else
venv: $(STAMP)
endif

# TensorFlow's CUDA build and onnxruntime-gpu (CUDA 12) instead of the CPU packages, then what this machine has.
gpu: $(GPU_STAMP)
	$(VENV)/bin/edgekeras doctor

demo: venv
	$(VENV)/bin/edgekeras demo

# Lint, format and types (the public API, see [tool.mypy]) first, in seconds; then the default suite.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -m "not slow" -q

test-slow: venv
	$(PY) -m pytest -m slow -q

bench: venv
	$(PY) benchmarks/demo_walltime.py
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/runner_overhead.py
	$(PY) benchmarks/train_overhead.py
	$(PY) benchmarks/conversion_perf.py
	$(PY) benchmarks/sparse_inference.py
	$(PY) benchmarks/distributed_training.py

# The layer-family x format x precision table, docs/coverage.md (+ .json); ~15 min on 2 cores.
coverage: venv
	$(VENV)/bin/edgekeras coverage --out docs/coverage.md

# Every keras.applications architecture x tflite/onnx x fp32/fp16/int8, docs/applications.md (+ .json).
# Resumes: runs the architectures the JSON has no result for (hours on 2 cores, one at a time, nice 19,
# each stopped above MEMORY_LIMIT GB; the ConvNeXts and ResNet101+ need more than 10 during ONNX conversion). One row again: edgekeras coverage --applications --only ResNet50
MEMORY_LIMIT ?= 16
applications: venv
	$(VENV)/bin/edgekeras coverage --applications --out docs/applications.md --memory-limit $(MEMORY_LIMIT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
