#!/usr/bin/env bash
# Cross-build the native libraries for aarch64 (Jetson) and run their tests under qemu-aarch64.
#
#   scripts/cross_aarch64.sh TRT_HEADER_DIR...     (make cross-aarch64 passes 8.5 8.6 10.3 10.13)
#
# 1. The kernel library (CPU + CUDA for sm_87) and the ONNX Runtime op library; the kernel tests
#    run under qemu (the CUDA launch test skips: no device).
# 2. The TensorRT plugin + CPU conformance harness against each TensorRT header tree, through
#    scripts/trt_compile_matrix.sh with the cross toolchain; the harness runs under qemu (the GPU
#    group skips: no device).
# 3. The glibc floor: every aarch64 ELF built here may need at most GLIBC_$GLIBC_FLOOR (2.31 =
#    JetPack 5 / Ubuntu 20.04); the highest version needed is printed, anything newer fails.
#
# Environment (make cross-aarch64 sets them): ZIG (the zig binary: C/C++ compiler and linker with
# the glibc 2.31 symbol set), CUDART_DIR (aarch64 libcudart_static.a + libcudart.so), BUILD_ROOT
# (default build/cross), CUDA_ARCHS (default 87), JOBS, QEMU_LD_PREFIX (aarch64 sysroot, default
# /usr/aarch64-linux-gnu), GLIBC_FLOOR (default 2.31). Needs Debian's crossbuild-essential-arm64
# (aarch64-linux-gnu-g++ is nvcc's host compiler for the CUDA file; binutils) and qemu-user.
set -u -o pipefail

if [ "$#" -eq 0 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
build_root="${BUILD_ROOT:-$repo/build/cross}"
archs="${CUDA_ARCHS:-87}"
jobs="${JOBS:-2}"
floor="${GLIBC_FLOOR:-2.31}"
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"

missing=""
for tool in aarch64-linux-gnu-g++ aarch64-linux-gnu-readelf qemu-aarch64 nvcc cmake; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
[ -x "${ZIG:-}" ] || missing="$missing zig(ZIG=$ZIG)"
[ -f "${CUDART_DIR:-}/libcudart_static.a" ] || missing="$missing aarch64-libcudart_static.a(CUDART_DIR=${CUDART_DIR:-})"
if [ -n "$missing" ]; then
  echo "cross_aarch64: missing:$missing (make cross-aarch64 installs them)" >&2
  exit 2
fi

# zig as a C/C++ compiler pinned to aarch64 and glibc 2.31: CMake wants one executable per language.
mkdir -p "$build_root/bin"
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$build_root/zig-cache}"
for lang in cc c++; do
  printf '#!/bin/sh\nexec "%s" %s -target aarch64-linux-gnu.%s "$@"\n' "$ZIG" "$lang" "$floor" \
    >"$build_root/bin/zig-$lang"
  chmod +x "$build_root/bin/zig-$lang"
done
export SIMAM_CROSS_CC="$build_root/bin/zig-cc" SIMAM_CROSS_CXX="$build_root/bin/zig-c++"
export SIMAM_CROSS_CUDART_DIR="$CUDART_DIR"
toolchain=(--toolchain "$repo/cmake/aarch64-linux-gnu.cmake" -DSIMAM_EXCLUDE_LIBS=OFF)

status=0
started=$SECONDS

# ---- 1. kernel library + ONNX Runtime op library ---------------------------------------------------
echo "== aarch64: kernel library (CPU + CUDA sm_$archs) and ONNX Runtime op library"
kdir="$build_root/kernels"
if cmake -S "$repo" -B "$kdir" "${toolchain[@]}" -DSIMAM_WITH_CUDA=ON -DSIMAM_WITH_TENSORRT=OFF \
     -DSIMAM_WITH_ONNXRUNTIME=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$archs" \
     -DCMAKE_CXX_FLAGS=-Werror >"$kdir.log" 2>&1 \
   && cmake --build "$kdir" -j "$jobs" >>"$kdir.log" 2>&1; then
  if ctest --test-dir "$kdir/plugins" --output-on-failure -V >>"$kdir.log" 2>&1; then
    kernels="$(grep -oE '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$kdir.log" | tail -1)"
    skipped="$(grep -c '(Skipped)' "$kdir.log" || true)"
    [ "$skipped" = "0" ] || kernels="$kernels, $skipped skipped (no GPU)"
    # The CPU test runs the SIMD kernel on every Highway target the (emulated) CPU offers.
    targets="$(grep -oE 'target [A-Z0-9_]+: worst error' "$kdir.log" | awk '{print $2}' | tr -d ':' \
               | sort -u | tr '\n' ' ')"
    [ -z "$targets" ] || kernels="$kernels; SIMD targets run: $targets"
  else
    kernels="FAIL (see $kdir.log)"; status=1
  fi
else
  kernels="BUILD FAIL (see $kdir.log)"; status=1
fi
echo "kernel tests under qemu-aarch64: $kernels"

# ---- 2. TensorRT plugin + harness per header set ---------------------------------------------------
echo "== aarch64: TensorRT plugin + CPU harness under qemu-aarch64"
BUILD_ROOT="$build_root/trt" CUDA_ARCHS="$archs" JOBS="$jobs" CMAKE_EXTRA_ARGS="${toolchain[*]}" \
  bash "$repo/scripts/trt_compile_matrix.sh" "$@" || status=1

# ---- 3. glibc floor --------------------------------------------------------------------------------
echo "== aarch64: glibc symbol versions (floor GLIBC_$floor)"
worst="0"; worst_file=""; count=0; over=0
while IFS= read -r elf; do
  aarch64-linux-gnu-readelf -h "$elf" 2>/dev/null | grep -q 'AArch64' || continue
  count=$((count + 1))
  need="$(aarch64-linux-gnu-readelf -V --wide "$elf" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' \
          | sed 's/GLIBC_//' | sort -uV | tail -1)"
  [ -n "$need" ] || continue
  if [ "$(printf '%s\n%s\n' "$need" "$worst" | sort -V | tail -1)" = "$need" ] && [ "$need" != "$worst" ]; then
    worst="$need"; worst_file="$elf"
  fi
  if [ "$(printf '%s\n%s\n' "$need" "$floor" | sort -V | tail -1)" != "$floor" ]; then
    echo "  needs GLIBC_$need > GLIBC_$floor: ${elf#"$repo"/}"
    over=$((over + 1))
  fi
done < <(find "$build_root/kernels" "$build_root/trt" -type f \( -perm -u+x -o -name '*.so' \) \
           -not -path '*/CMakeFiles/*' 2>/dev/null | sort)
if [ "$count" -eq 0 ]; then
  echo "glibc floor: no aarch64 binaries found"; status=1
elif [ "$over" -gt 0 ]; then
  echo "glibc floor: FAIL: $over of $count aarch64 binaries need more than GLIBC_$floor"; status=1
else
  echo "glibc floor: $count aarch64 binaries need at most GLIBC_$worst (${worst_file#"$repo"/}); limit GLIBC_$floor: ok"
fi
echo "cross_aarch64: $((SECONDS - started)) s, $([ "$status" = 0 ] && echo ok || echo FAILED)"
exit $status
