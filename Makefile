# edgec: one command to set up and run the demo, one to set up and pass the tests.
#   make demo   installs everything, compiles a bundled model for this machine,
#               runs it, verifies it against onnxruntime and prints latency
#   make test   installs everything, fetches the real models, runs the whole test suite
#   make bench  edgec vs onnxruntime vs TFLite on the real models (README table, chart)

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Debian packages: the aarch64 cross toolchain (ARM builds), qemu-user (ARM runs) and
# cmake (C bundles).
APT_PACKAGES := gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user cmake
DEMO_MODEL   ?= models/tiny_cnn.onnx
# The TFLite yardstick's converter: onnx2tf 1.29 (the last for Python 3.11) pins
# numpy 1.26, onnx 1.19, onnxruntime 1.23 and TensorFlow 2.19, so it gets its own venv.
TFLITE_VENV     ?= .venv-tflite
ONNX2TF_VERSION := 1.29.24
PYTEST_ARGS  ?=

.PHONY: setup system-deps venv tflite-venv runtime-wheels models demo test test-fast bench lint clean

setup: system-deps venv tflite-venv runtime-wheels

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# The aarch64 TVM runtime (libtvm_runtime.so, libtvm_ffi.so) from PyPI's wheels, cached
# under ~/.cache/edgec for bundles and emulated ARM runs; tests never download.
runtime-wheels: venv
	$(BIN)/python -m edgec.bundle.runtime_libs aarch64

tflite-venv: $(TFLITE_VENV)/.installed

$(TFLITE_VENV)/.installed:
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install -q --upgrade pip
	$(TFLITE_VENV)/bin/python -m pip install -q onnx2tf==$(ONNX2TF_VERSION)
	@touch $@

models: venv
	$(BIN)/python models/fetch_real.py

demo: setup
	@mkdir -p out
	$(BIN)/edgec inspect $(DEMO_MODEL)
	$(BIN)/edgec compile $(DEMO_MODEL) --target host -o out/demo.edgec
	$(BIN)/edgec run out/demo.edgec --random -o out/demo.out.npz
	$(BIN)/edgec verify out/demo.edgec --model $(DEMO_MODEL)

test: setup models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup models
	$(BIN)/python benchmarks/run_suite.py

test-fast: venv
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check edgec tests models setup.py benchmarks

clean:
	rm -rf out .pytest_cache .ruff_cache
