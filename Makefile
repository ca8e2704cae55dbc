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

.PHONY: help install demo test test-py test-cpp test-trt-matrix lint typecheck plugin clean triton-server FORCE
.PHONY: cross-aarch64 cross-aarch64-tools cross-aarch64-ort cubin-check
.PHONY: sanitize fuzz sanitizer-tools gpu-acceptance gpu-acceptance-dry-run gpu-wheels gpu-headers

help:
	@echo "make demo | make test | make lint | make plugin | make clean"
	@echo "make sanitize | make fuzz [FUZZ_SECONDS=60] | make gpu-acceptance OUT=DIR (--dry-run: make gpu-acceptance-dry-run)"
	@echo "make plugin JETPACK=5.1|6.0|6.1|6.2|7.0 | make cubin-check | make cross-aarch64 (aarch64 under qemu; docs/jetson.md)"

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
	$(MAKE) --no-print-directory cubin-check
	$(MAKE) --no-print-directory cross-aarch64
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
	$(MAKE) --no-print-directory typecheck

# mypy over the package as installed: cli/ and models/ are simam_deploy.cli / simam_deploy.models in the
# wheel, so build/typecheck/simam_deploy/ mirrors that layout with symbolic links into the source tree
# (pyproject.toml's [tool.mypy] reads it through mypy_path). Catches imports of missing modules and
# names anywhere, inside functions too.
TYPECHECK_TREE := build/typecheck/simam_deploy
typecheck: $(STAMP)
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)
	for entry in simam_deploy/* cli models; do \
	  ln -s "$(CURDIR)/$$entry" "$(TYPECHECK_TREE)/$$(basename $$entry)"; done
	$(VENV)/bin/mypy

# Standalone native build (kernels + TensorRT plugin), e.g. on a Jetson:
#   make plugin TENSORRT_ROOT=/usr CUDA_ARCHS=87
#   make plugin JETPACK=5.1|6.0|6.1|6.2|7.0 [TENSORRT_ROOT=/usr]   (docs/jetson.md)
# JETPACK picks that release's GPU architectures and first checks that the TensorRT headers found
# and nvcc are the ones it ships (scripts/jetpack_profile.sh); CUDA_ARCHS, if given, still wins.
plugin:
	@archs="$(CUDA_ARCHS)"; \
	if [ -n "$(JETPACK)" ]; then \
	  profile="$$(bash scripts/jetpack_profile.sh "$(JETPACK)" "$(TENSORRT_ROOT)")" || exit 2; \
	  archs="$${archs:-$$profile}"; \
	fi; \
	set -x; \
	cmake -S . -B build/plugin -DCMAKE_BUILD_TYPE=Release \
	  $(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT)) \
	  $${archs:+-DCMAKE_CUDA_ARCHITECTURES="$$archs"} \
	  && cmake --build build/plugin -j
	@echo "plugin: $$(find build/plugin -name 'libsimam_trt_plugin.so' | head -1)"

# ---- every GPU target compiles, statically checked ------------------------------------------------
# A cubin per architecture (the default list, Orin sm_87, H100 sm_90, Thor sm_110) with ptxas'
# resource usage: any spill or local stack frame fails; prints registers per kernel per arch.
cubin-check: $(STAMP)
	@if command -v nvcc >/dev/null; then $(PY) scripts/cubin_resources.py; \
	else echo "cubin-check: SKIPPED: no nvcc on PATH (install the CUDA toolkit)"; fi

# ---- aarch64 (Jetson) without a board: cross-build, run under qemu, check the glibc floor ---------
# Toolchains are cached under build/cross: Debian's crossbuild-essential-arm64 + qemu-user (apt, as
# root), zig from PyPI (C/C++ compiler that links against glibc 2.31's symbols = JetPack 5), the
# aarch64 CUDA runtime from the nvidia-cuda-runtime wheel (unpacked, never installed).
CROSS_DIR       := build/cross
CROSS_ZIG_SPEC  ?= ziglang==0.17.0
CROSS_CUDART    ?= nvidia-cuda-runtime==13.0.96
CROSS_TRT       := 8.5 8.6 10.3 10.13
CROSS_ZIG       := $(CROSS_DIR)/ziglang/ziglang/zig
CROSS_CUDART_DIR := $(CROSS_DIR)/cudart/nvidia/cu13/lib

$(CROSS_ZIG): | $(PY)
	rm -rf $(CROSS_DIR)/ziglang
	$(PY) -m pip install --quiet --no-deps --target $(CROSS_DIR)/ziglang "$(CROSS_ZIG_SPEC)"

$(CROSS_CUDART_DIR)/libcudart_static.a: | $(PY)
	rm -rf $(CROSS_DIR)/cudart $(CROSS_DIR)/wheels/cudart
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_aarch64 \
	  -d $(CROSS_DIR)/wheels/cudart "$(CROSS_CUDART)"
	$(PY) -m zipfile -e $(CROSS_DIR)/wheels/cudart/*.whl $(CROSS_DIR)/cudart
	ln -sf libcudart.so.13 $(CROSS_CUDART_DIR)/libcudart.so

# Without root (no apt) and without the packages, a developer's `make test` skips this part, saying
# so; CI (CI=true, root) installs them and runs it.
cross-aarch64:
	@if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	      crossbuild-essential-arm64 qemu-user || exit 2; \
	  elif [ -n "$$CI" ]; then \
	    echo "cross-aarch64: needs aarch64-linux-gnu-g++ and qemu-aarch64: apt-get install crossbuild-essential-arm64 qemu-user (as root)"; \
	    exit 2; \
	  else \
	    echo "cross-aarch64: SKIPPED: no aarch64-linux-gnu-g++ / qemu-aarch64 (as root: apt-get install crossbuild-essential-arm64 qemu-user)"; \
	    exit 0; \
	  fi; \
	fi; \
	$(MAKE) --no-print-directory cross-aarch64-tools && \
	ZIG="$(abspath $(CROSS_ZIG))" CUDART_DIR="$(abspath $(CROSS_CUDART_DIR))" JOBS="$(or $(JOBS),2)" \
	  bash scripts/cross_aarch64.sh $(foreach v,$(CROSS_TRT),$(abspath $(TRT_HEADERS)/$(v))) && \
	$(MAKE) --no-print-directory cross-aarch64-ort

cross-aarch64-tools: $(CROSS_ZIG) $(CROSS_CUDART_DIR)/libcudart_static.a

# The op library inside an aarch64 ONNX Runtime under qemu: Debian bookworm's arm64 Python 3.11
# (apt-get download with a private arm64 package list under build/cross/apt, dpkg -x, nothing
# installed), the aarch64 onnxruntime + numpy wheels of the versions in $(VENV), and an aarch64
# /proc/cpuinfo in the sysroot (ONNX Runtime's CPU detection crashes on the host's under qemu).
CROSS_SYSROOT   := $(CROSS_DIR)/sysroot
CROSS_PYSITE    := $(CROSS_DIR)/pysite
CROSS_APT       := $(abspath $(CROSS_DIR)/apt)
CROSS_APT_OPTS  := -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Dir::State::status=/dev/null \
                   -o Dir::State::Lists=$(CROSS_APT)/lists -o Dir::Cache=$(CROSS_APT)/cache -o Debug::NoLocking=1
CROSS_DEBS      := libc6 libstdc++6 libgcc-s1 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib \
                   libexpat1 zlib1g libffi8 libbz2-1.0 liblzma5 libssl3 libcrypt1 libuuid1
CROSS_ORT_LIB   := $(CROSS_DIR)/kernels/plugins/onnxruntime/libsimam_ort_ops.so

$(CROSS_SYSROOT)/.done:
	rm -rf $(CROSS_SYSROOT) $(CROSS_APT)
	mkdir -p $(CROSS_APT)/lists/partial $(CROSS_APT)/cache/archives/partial $(CROSS_APT)/debs
	apt-get $(CROSS_APT_OPTS) -q update
	cd $(CROSS_APT)/debs && apt-get $(CROSS_APT_OPTS) -q download $(CROSS_DEBS)
	for deb in $(CROSS_APT)/debs/*.deb; do dpkg -x "$$deb" $(CROSS_SYSROOT) || exit 1; done
	mkdir -p $(CROSS_SYSROOT)/proc
	for cpu in 0 1; do printf '%s\n' "processor	: $$cpu" "BogoMIPS	: 62.50" \
	  "Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
	  "CPU implementer	: 0x41" "CPU architecture: 8" "CPU variant	: 0x1" "CPU part	: 0xd42" "CPU revision	: 1" ""; \
	done > $(CROSS_SYSROOT)/proc/cpuinfo
	touch $@

$(CROSS_PYSITE)/.done: | $(STAMP)
	rm -rf $(CROSS_PYSITE)
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
	  --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
	  --target $(CROSS_PYSITE) "onnxruntime==$$($(PY) -c 'import onnxruntime; print(onnxruntime.__version__)')" \
	  "numpy==$$($(PY) -c 'import numpy; print(numpy.__version__)')"
	touch $@

cross-aarch64-ort: $(CROSS_SYSROOT)/.done $(CROSS_PYSITE)/.done
	@test -f $(CROSS_ORT_LIB) || { echo "cross-aarch64-ort: no $(CROSS_ORT_LIB): run make cross-aarch64 first"; exit 2; }
	$(PY) scripts/aarch64_ort_check.py --ops-lib $(CROSS_ORT_LIB) --python $(CROSS_SYSROOT)/usr/bin/python3.11 \
	  --sysroot $(CROSS_SYSROOT) --site $(CROSS_PYSITE) --work $(CROSS_DIR)/ort-check

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
