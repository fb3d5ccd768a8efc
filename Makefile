# edgec: one command to set up and run the demo, one to set up and pass the tests.
#   make demo   installs .venv (and gcc if missing), compiles a bundled model for this
#               machine, runs it, verifies it against onnxruntime and prints latency
#   make test   installs everything, fetches the real models, runs the whole test suite
#   make bench  edgec vs onnxruntime vs TFLite on the real models (README table, chart)
#   make accuracy  edgec int8 vs float on PP-OCR over rendered text (README table)

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Debian packages: gcc (links host builds: all the demo needs), the aarch64 cross toolchain
# (ARM builds), qemu-user (ARM runs), cmake (C bundles) and a CJK font (the accuracy
# benchmark renders PP-OCR's dictionary with it: 5 MB).
HOST_CC_PACKAGE := gcc
APT_PACKAGES := $(HOST_CC_PACKAGE) gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user cmake \
	fonts-wqy-microhei
DEMO_MODEL   ?= models/tiny_cnn.onnx
PYTEST_ARGS  ?=

.PHONY: setup system-deps host-cc venv tflite-venv runtime-wheels wheelhouse models demo test \
	test-fast bench accuracy offload conformance hostile fuzz fuzz-loader lint clean

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

# Calibration and evaluation text rendered here (benchmarks/accuracy/README.md), the three
# PP-OCR models compiled with --quantize int8, the table written into README.md.
accuracy: setup models
	$(BIN)/python benchmarks/accuracy/make_accuracy.py

# How each real model splits for the bundled Ethos-U targets (partitioner and Vela, no
# TVM build): benchmarks/offload.md, with Vela's estimates labelled as estimates.
offload: setup models
	$(BIN)/python benchmarks/offload/make_offload.py

# Every ONNX backend node test case through edgec and onnxruntime (a sample also under
# emulated aarch64); writes benchmarks/conformance.md and fails on any outcome that
# benchmarks/conformance/exclusions.toml does not list (about 5 minutes on 2 cores).
conformance: setup
	$(BIN)/python benchmarks/conformance/run_conformance.py --jobs 2 --emulate-sample 300 \
		--bound --check --markdown benchmarks/conformance.md

# Hostile inputs (benchmarks/hostile): every case through the real CLI under a time and
# memory bound; writes benchmarks/hostile.md; fails on any crash, hang, internal error,
# traceback or partial output. HOSTILE_ARGS=--huge adds the 10^6-node models.
hostile: venv
	$(BIN)/python benchmarks/hostile/run_hostile.py --jobs 2 --timeout 120 --mem 4G $(HOSTILE_ARGS)

# Differential testing (benchmarks/fuzz): N random graphs, each at -O0..-O3 and int8,
# against onnxruntime; prints graphs, ops and outcomes per level, writes out/fuzz-graphs/.
# `make fuzz N=10000` is hours on 2 cores (FUZZ_ARGS=--rotate: one level per graph).
N     ?= 1000
SEED  ?= 0
FUZZ_LEVELS ?= 0,1,2,3
fuzz: venv
	$(BIN)/python benchmarks/fuzz/run_fuzz.py --n $(N) --seed $(SEED) --levels $(FUZZ_LEVELS) \
		--int8 --jobs 2 --out out/fuzz-graphs $(FUZZ_ARGS)

# Coverage-guided fuzzing (atheris) of the model loader and the artifact reader, FUZZ_TIME
# seconds each; one input and traceback per kind of finding in out/fuzz/findings (fails
# when there is any).
FUZZ_TIME ?= 300
fuzz-loader: venv
	$(BIN)/python -m pip install -q -e '.[fuzz]'
	rm -rf out/fuzz/findings && mkdir -p out/fuzz/loader out/fuzz/artifact
	$(BIN)/python benchmarks/fuzz_loader/seeds.py out/fuzz
	$(BIN)/python benchmarks/fuzz_loader/fuzz_loader.py -max_total_time=$(FUZZ_TIME) -timeout=30 \
		-rss_limit_mb=4096 -max_len=65536 -artifact_prefix=out/fuzz/ out/fuzz/loader \
		out/fuzz/loader-seeds
	$(BIN)/python benchmarks/fuzz_loader/fuzz_artifact.py -max_total_time=$(FUZZ_TIME) \
		-timeout=30 -rss_limit_mb=4096 -max_len=16384 -artifact_prefix=out/fuzz/ \
		out/fuzz/artifact out/fuzz/artifact-seeds
	@if ls out/fuzz/findings/*.txt >/dev/null 2>&1; then ls out/fuzz/findings; exit 1; fi

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not install" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check edgec tests models setup.py benchmarks

clean:
	rm -rf out .pytest_cache .ruff_cache

# The Python API reference, generated by pdoc from the docstrings (docs/build_api.py says
# which modules), as HTML in docs/api/ (git-ignored).
.PHONY: docs
docs: venv
	rm -rf docs/api
	$(BIN)/python docs/build_api.py docs/api
