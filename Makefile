# edgec: one command to set up and run the demo, one to set up and pass the tests.
#   make demo   installs .venv (and gcc if missing), compiles a bundled model for this
#               machine, runs it, verifies it against onnxruntime and prints latency
#   make test   installs everything, fetches the real models, runs the whole test suite
#   make bench  edgec vs onnxruntime vs TFLite on the real models (README table, chart)

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Debian packages: gcc (links host builds: all the demo needs), the aarch64 cross toolchain
# (ARM builds), qemu-user (ARM runs) and cmake (C bundles).
HOST_CC_PACKAGE := gcc
APT_PACKAGES := $(HOST_CC_PACKAGE) gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user cmake
DEMO_MODEL   ?= models/tiny_cnn.onnx
PYTEST_ARGS  ?=

.PHONY: setup system-deps host-cc venv tflite-venv runtime-wheels wheelhouse models demo test \
	test-fast bench lint clean

setup: system-deps venv tflite-venv runtime-wheels wheelhouse

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

host-cc:
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES=$(HOST_CC_PACKAGE)

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

# The TFLite yardstick's converter (onnx2tf + TensorFlow, 2.6 GB: its own venv, because
# onnx2tf pins old numpy/onnx) under ~/.cache/edgec, where edgec bench looks for it and
# builds it itself when it is missing; edgec/baselines/tflite_venv.py has the pin.
tflite-venv: venv
	$(BIN)/python -m edgec.baselines.tflite_venv

# edgec's dependencies as wheels under ~/.cache/edgec/wheelhouse, for tests/test_install.py
# (it installs the built wheel into a clean venv, offline); refilled when pyproject.toml's
# dependencies change.
wheelhouse: venv
	$(BIN)/python tests/test_install.py

models: venv
	$(BIN)/python models/fetch_real.py

demo: venv host-cc
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
	$(BIN)/python -m pytest -m "not slow and not install" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check edgec tests models setup.py benchmarks

clean:
	rm -rf out .pytest_cache .ruff_cache
