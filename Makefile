# simam-deploy: two commands on a fresh machine.
#   make demo   creates .venv, installs, exports the model, proves ONNX Runtime parity
#   make test   same set-up, then the whole test suite (Python + C++/CTest)
# Knobs: PYTHON=python3.12  TORCH_SPEC="torch==2.13.0"  VENV=.venv  CUDA_ARCHS="87"  TENSORRT_ROOT=/opt/tensorrt
#        ONNXRUNTIME_ROOT=/opt/onnxruntime/include
#        EXTRAS=dev,trt-rtx,triton (the TensorRT for RTX wheels, pinned, and tritonclient; EXTRAS=dev leaves them out)
#        TRT_HEADERS=$(SHARED)/third_party/tensorrt-headers (the header matrix of `make test-trt-matrix`)

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
SHARED      ?= ../shared
CHECKPOINT  ?= $(SHARED)/models/official-cifar100-resnet20-simam/model_best.pth.tar
OUTDIR      ?= out
PY          := $(VENV)/bin/python
CLI         := $(VENV)/bin/simam-deploy
STAMP       := $(VENV)/.simam-installed

NATIVE_SRC  := $(shell find plugins -type f \( -name '*.c*' -o -name '*.h' -o -name '*.txt' \) 2>/dev/null) CMakeLists.txt pyproject.toml

EXTRAS      ?= dev,trt-rtx,triton
TRT_HEADERS ?= $(SHARED)/third_party/tensorrt-headers
TRT_MATRIX  := 8.6 10.3 10.16 11.1

# The plugin that TensorRT for RTX loads must be built against TensorRT 11 headers: use the shared
# 11.1 headers when they are there and no TENSORRT_ROOT was given (TENSORRT_ROOT=... overrides).
ifndef TENSORRT_ROOT
ifneq ($(wildcard $(TRT_HEADERS)/11.1/include/NvInfer.h),)
TENSORRT_ROOT := $(abspath $(TRT_HEADERS)/11.1)
endif
endif

CMAKE_DEFINES :=
ifdef CUDA_ARCHS
CMAKE_DEFINES += -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$(CUDA_ARCHS)"
endif
ifdef TENSORRT_ROOT
CMAKE_DEFINES += -Ccmake.define.TENSORRT_ROOT="$(TENSORRT_ROOT)"
endif
# ONNX Runtime's C API headers for libsimam_ort_ops.so (default: ../shared's 1.21 headers when present)
ifdef ONNXRUNTIME_ROOT
CMAKE_DEFINES += -Ccmake.define.ONNXRUNTIME_ROOT="$(ONNXRUNTIME_ROOT)"
endif

.PHONY: help install demo test test-py test-cpp test-trt-matrix lint plugin clean triton-server FORCE
.PHONY: sanitize fuzz sanitizer-tools gpu-acceptance gpu-acceptance-dry-run gpu-wheels gpu-headers

help:
	@echo "make demo | make test | make lint | make plugin | make clean"
	@echo "make sanitize | make fuzz [FUZZ_SECONDS=60] | make gpu-acceptance OUT=DIR (--dry-run: make gpu-acceptance-dry-run)"

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "simam-deploy needs Python >= 3.10 (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first and pinned: an unpinned torch would pull several GB of CUDA wheels.
# The extension is built without build isolation so its CMake tree in build/ is reused.
# The CMake options in effect; a change (e.g. TENSORRT_ROOT) forces a rebuild of the extension.
DEFINES_FILE := $(VENV)/.simam-cmake-defines
$(DEFINES_FILE): FORCE $(PY)
	@echo '$(CMAKE_DEFINES) [$(EXTRAS)]' | cmp -s - $@ || echo '$(CMAKE_DEFINES) [$(EXTRAS)]' > $@

$(STAMP): $(PY) $(NATIVE_SRC) $(DEFINES_FILE)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet "scikit-build-core>=0.10" "nanobind>=2.0"
	$(PY) -m pip install --no-build-isolation -e ".[$(EXTRAS)]" $(CMAKE_DEFINES)
	touch $(STAMP)

# A real Triton server for the serving tests: the tritonserver binary (python backend only) from
# the nvidia-pytriton wheel, unpacked without installing pytriton (it pins numpy<2), and a small
# Python environment with numpy<2 for the python backend's stub (it speaks numpy 1.x's ABI).
TRITON_WHEEL   ?= nvidia-pytriton==0.7.0
TRITON_SERVER  := $(VENV)/tritonserver/bin/tritonserver
TRITON_PYTHON  := $(VENV)/triton-python/bin/python3

$(TRITON_SERVER): $(STAMP)
	rm -rf build/wheels/pytriton
	$(PY) -m pip download --quiet --no-deps -d build/wheels/pytriton "$(TRITON_WHEEL)"
	$(PY) -c 'import glob; from simam_deploy.triton.server import install_server; \
	  print(install_server(glob.glob("build/wheels/pytriton/*.whl")[0]).binary)'

$(TRITON_PYTHON): $(STAMP)
	$(PYTHON) -m venv $(VENV)/triton-python
	$(VENV)/triton-python/bin/pip install --quiet "numpy<2" \
	  "onnxruntime==$$($(PY) -c 'import onnxruntime; print(onnxruntime.__version__)')"

triton-server: $(TRITON_SERVER) $(TRITON_PYTHON)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh $(CLI) $(OUTDIR) "$(CHECKPOINT)"

# The header matrix runs first: tests/test_tensorrt_rtx.py loads its 10.x build into TensorRT for RTX.
test: $(STAMP) triton-server
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-trt-matrix
	$(PY) -m pytest -q tests
	$(MAKE) --no-print-directory test-cpp
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory gpu-acceptance-dry-run

# -Werror build of the plugin + CPU harness against every TensorRT header set in $(TRT_HEADERS)
# (one CUDA architecture: enough to compile); skipped, saying why, when the headers are absent.
test-trt-matrix: $(STAMP)
	@if [ -d "$(TRT_HEADERS)" ]; then \
	  CUDA_ARCHS="$(or $(CUDA_ARCHS),86)" JOBS="$(or $(JOBS),2)" bash scripts/trt_compile_matrix.sh \
	    $(foreach v,$(TRT_MATRIX),$(abspath $(TRT_HEADERS)/$(v))); \
	else \
	  echo "test-trt-matrix: SKIPPED: no TensorRT headers at $(TRT_HEADERS) (set TRT_HEADERS=DIR)"; \
	fi

test-cpp: $(STAMP)
	@$(PY) scripts/run_ctest.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Standalone native build (kernels + TensorRT plugin), e.g. on a Jetson:
#   make plugin TENSORRT_ROOT=/usr CUDA_ARCHS=87
plugin:
	cmake -S . -B build/plugin -DCMAKE_BUILD_TYPE=Release \
	  $(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT)) \
	  $(if $(CUDA_ARCHS),-DCMAKE_CUDA_ARCHITECTURES="$(CUDA_ARCHS)")
	cmake --build build/plugin -j
	@echo "plugin: $$(find build/plugin -name 'libsimam_trt_plugin.so' | head -1)"

# ---- native code under attack (issue 24): sanitizers, fuzzers, the GPU acceptance ----------------
# sanitize: ASan+UBSan builds (gcc and clang, build/sanitize-<cc>) of the kernel library, the plugin
#           with its harness and the op library; CTest + tests/test_ort_ops.py in the real ONNX Runtime.
# fuzz:     the libFuzzer targets of plugins/fuzz/ for FUZZ_SECONDS each (build/fuzz); seeds and
#           regressions replayed first. A report or a finding fails either target.
# Knobs: SANITIZE_COMPILERS="gcc clang"  FUZZ_SECONDS=60
SANITIZE_COMPILERS ?= gcc clang
FUZZ_SECONDS       ?= 60
CLANG_PACKAGES     := clang libclang-rt-14-dev

# Debian's clang and its sanitizer/libFuzzer runtimes, installed when missing (CI runs as root).
sanitizer-tools:
	@if command -v clang++ >/dev/null && [ -f "$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" ] \
	    && [ -f "$$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "sanitizer-tools: installing $(CLANG_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CLANG_PACKAGES) >/dev/null; \
	else \
	  echo "sanitizer-tools: clang with its sanitizer runtimes is missing; install them: sudo apt-get install $(CLANG_PACKAGES)"; exit 2; \
	fi

sanitize: $(STAMP) sanitizer-tools
	JOBS="$(or $(JOBS),2)" bash scripts/sanitize.sh $(PY) "$(TENSORRT_ROOT)" "$(or $(CUDA_ARCHS),86)" $(SANITIZE_COMPILERS)

fuzz: sanitizer-tools
	JOBS="$(or $(JOBS),2)" bash scripts/fuzz.sh $(FUZZ_SECONDS)

# gpu-acceptance: the whole GPU check in one call on a lent GPU machine (no venv there: the system
#   Python with torch; the wheels of scripts/gpu_wheels.txt travel in build/gpu-wheels, fetched here
#   by `make gpu-wheels`). Writes OUT/gpu_acceptance.json and OUT/gpu_acceptance.png.
# gpu-acceptance-dry-run: its plan, report schema and wheel list, on the CPU (CI).
GPU_PYTHON ?= python3
GPU_WHEELS ?= build/gpu-wheels

gpu-acceptance:
	@[ -n "$(OUT)" ] || { echo "gpu-acceptance: give the report folder: make gpu-acceptance OUT=DIR"; exit 2; }
	$(GPU_PYTHON) scripts/gpu_acceptance.py --out "$(OUT)" --python "$$(command -v $(GPU_PYTHON))" --wheels $(GPU_WHEELS)

gpu-acceptance-dry-run: $(STAMP)
	$(PY) scripts/gpu_acceptance.py --dry-run --wheels $(GPU_WHEELS)

# The harness needs TensorRT's headers only: stage the 11.1 (V3) and 8.6 (V2) sets in the ignored
# build/gpu-trt-headers so they travel with the tree like the wheels (never committed).
GPU_TRT_VERSIONS ?= 11.1 8.6
gpu-headers:
	@for v in $(GPU_TRT_VERSIONS); do \
	  [ -f "$(TRT_HEADERS)/$$v/include/NvInfer.h" ] || { echo "gpu-headers: no TensorRT $$v headers at $(TRT_HEADERS)/$$v (set TRT_HEADERS=DIR)"; exit 2; }; \
	  rm -rf build/gpu-trt-headers/$$v && mkdir -p build/gpu-trt-headers/$$v && cp -r "$(TRT_HEADERS)/$$v/include" build/gpu-trt-headers/$$v/; \
	done; du -sh build/gpu-trt-headers

gpu-wheels: $(PY)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --platform any -d $(GPU_WHEELS) -r scripts/gpu_wheels.txt
	$(PY) scripts/gpu_acceptance.py --dry-run --wheels $(GPU_WHEELS)

clean:
	rm -rf build $(VENV) $(OUTDIR) .pytest_cache
