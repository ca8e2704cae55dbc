#!/usr/bin/env bash
# make sanitize: ASan + UBSan builds of the kernel library, the TensorRT plugin with its harness and
# the ONNX Runtime op library, under gcc and under clang, each in its own tree (build/sanitize-<cc>).
# Runs CTest there, then the op library's Python tests with that library loaded into the real ONNX
# Runtime (the sanitizer runtime preloaded: python itself is not instrumented). Any report fails.
#
#   scripts/sanitize.sh PYTHON TRT_ROOT CUDA_ARCHS [gcc] [clang]
# TRT_ROOT may be empty (the plugin is then skipped by CMake, saying why).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:?python of the virtual environment}
TRT_ROOT=${2-}
ARCHS=${3:-86}
shift 3 || true
COMPILERS=("$@")
[ ${#COMPILERS[@]} -gt 0 ] || COMPILERS=(gcc clang)
JOBS=${JOBS:-2}

# Reports are fatal and name the line; leaks are checked in the C++ tests (whole programs of ours)
# but not under python, whose interpreter and torch keep allocations alive on purpose at exit.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ASAN_BASE=abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1
# CUDA's static runtime maps fixed addresses at its first call; without a GPU (CI) it only fails.
ASAN_BASE=$ASAN_BASE:protect_shadow_gap=0

status=0
for cc in "${COMPILERS[@]}"; do
  case $cc in
    gcc) CC=gcc CXX=g++ ;;
    clang) CC=clang CXX=clang++ ;;
    *) echo "sanitize: unknown compiler '$cc' (gcc or clang)" >&2; exit 2 ;;
  esac
  command -v "$CXX" >/dev/null || { echo "sanitize: $CXX not found (make sanitize installs it with apt-get)" >&2; exit 2; }
  tree=build/sanitize-$cc
  echo "== sanitize [$cc]: configure + build $tree"
  cmake -S . -B "$tree" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" -DSIMAM_SANITIZE=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" ${TRT_ROOT:+-DTENSORRT_ROOT="$TRT_ROOT"} >"$tree.configure.log" 2>&1 \
    || { cat "$tree.configure.log"; exit 2; }
  grep -E "simam: (sanitizer|TensorRT|ONNX Runtime|CUDA)" "$tree.configure.log" || true
  cmake --build "$tree" -j "$JOBS"

  # A build that silently lost its flags would pass everything below: every artifact must call
  # into both runtimes.
  for artifact in $(find "$tree/plugins" -maxdepth 2 -type f \( -name '*.so' -o -name 'simam_*tests' \
      -o -name 'simam_trt_*harness' \)); do
    symbols=$(nm "$artifact" 2>/dev/null; nm -D "$artifact" 2>/dev/null)
    if ! grep -q __asan_report <<<"$symbols" || ! grep -q __ubsan_handle <<<"$symbols"; then
      echo "sanitize [$cc]: $artifact is not instrumented (no __asan_report/__ubsan_handle calls)" >&2
      exit 3
    fi
  done
  echo "== sanitize [$cc]: CTest"
  if ! ASAN_OPTIONS=$ASAN_BASE:detect_leaks=1 ctest --test-dir "$tree/plugins" --output-on-failure; then
    echo "sanitize [$cc]: CTest FAILED (a sanitizer report or a failing test, above)"; status=1
  fi

  lib=$(find "$tree" -name libsimam_ort_ops.so | head -1)
  if [ -z "$lib" ]; then
    echo "sanitize [$cc]: op library not built: $(cat "$tree/simam_onnxruntime_status.txt" 2>/dev/null)"
    continue
  fi
  if [ "$cc" = gcc ]; then runtime=$(gcc -print-file-name=libasan.so); else
    runtime=$(clang -print-file-name=libclang_rt.asan-x86_64.so); fi
  [ -f "$runtime" ] || { echo "sanitize [$cc]: no ASan runtime at $runtime" >&2; exit 2; }
  # libstdc++ right after it: python does not link it, and ASan resolves its __cxa_throw
  # interceptor at start-up (without it the first C++ exception in ONNX Runtime aborts).
  runtime="$runtime $(g++ -print-file-name=libstdc++.so.6)"
  echo "== sanitize [$cc]: tests/test_ort_ops.py with $lib in ONNX Runtime (LD_PRELOAD=$runtime)"
  # One process, one report: halt_on_error exits non-zero at the first report, failing the run.
  if ! SIMAM_ORT_OPS="$PWD/$lib" LD_PRELOAD="$runtime" \
      ASAN_OPTIONS=$ASAN_BASE:detect_leaks=0:alloc_dealloc_mismatch=0 \
      "$PY" -m pytest -q -p no:cacheprovider --capture=sys tests/test_ort_ops.py; then
    echo "sanitize [$cc]: op library tests FAILED under the sanitizers (report above)"; status=1
  fi
done
[ $status -eq 0 ] && echo "sanitize: all clean (${COMPILERS[*]})"
exit $status
