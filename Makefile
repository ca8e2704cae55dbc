# simam-deploy: two commands on a fresh machine.
#   make demo   creates .venv, installs, exports the model, proves ONNX Runtime parity
#   make test   same set-up, then the whole test suite (Python + C++/CTest)
# Knobs: PYTHON=python3.12  TORCH_SPEC="torch==2.13.0"  VENV=.venv  CUDA_ARCHS="87"  TENSORRT_ROOT=/opt/tensorrt
#        ONNXRUNTIME_ROOT=/opt/onnxruntime/include
#        EXTRAS=dev,trt-rtx,triton,openvino (the TensorRT for RTX wheels and OpenVINO, pinned, and tritonclient;
#        EXTRAS=dev leaves them out)
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

EXTRAS      ?= dev,trt-rtx,triton,openvino
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

help:
	@echo "make demo | make test | make lint | make plugin | make clean"

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

clean:
	rm -rf build $(VENV) $(OUTDIR) .pytest_cache
