#!/usr/bin/env bash
# Compile the SimAM TensorRT plugin and its conformance harness against several TensorRT header
# trees, run the CPU part of the harness for each, and print a table.
#
#   scripts/trt_compile_matrix.sh /opt/trt-8.6 /opt/trt-10.3 /opt/trt-10.16 /opt/trt-11.1
#
# Each argument is a directory with include/NvInfer.h (the `include/` folder of a TensorRT
# tarball, or a checkout of NVIDIA's TensorRT repository at a release branch). Only headers are
# needed: no libnvinfer, no GPU. Warnings from our sources fail the build (-Werror); NVIDIA's
# headers are included as system headers.
#
# Environment: BUILD_ROOT (default: build/trt-matrix), CUDA_ARCHS (default: 80, one arch keeps it
# quick), SANITIZE=1 (AddressSanitizer + UBSan on the plugin and harness), JOBS, CMAKE_EXTRA_ARGS
# (more configure arguments, e.g. a cross toolchain: scripts/cross_aarch64.sh runs the harness under
# qemu this way).
# CI runs it through `make test-trt-matrix` (part of `make test`) on ../shared/third_party/tensorrt-headers;
# the headers are never stored in this repository. Build trees are kept, so a rerun is incremental.
set -u -o pipefail

if [ "$#" -eq 0 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
build_root="${BUILD_ROOT:-$repo/build/trt-matrix}"
archs="${CUDA_ARCHS:-80}"
jobs="${JOBS:-$(nproc)}"
flags="-Werror"
if [ "${SANITIZE:-0}" = "1" ]; then
  flags="$flags -fsanitize=address,undefined -fno-omit-frame-pointer"
fi

read -r -a extra_args <<<"${CMAKE_EXTRA_ARGS:-}"
declare -a rows
status=0
for root in "$@"; do
  if [ ! -f "$root/include/NvInfer.h" ]; then
    rows+=("$(printf '%-28s %-10s %-9s %-10s %s' "$root" "?" "-" "-" "no include/NvInfer.h")")
    status=1
    continue
  fi
  version="$(grep -hE '#define (NV_TENSORRT|TRT)_(MAJOR|MINOR|PATCH)(_ENTERPRISE)? +[0-9]+' "$root/include/NvInferVersion.h" \
    | awk '{v[$2]=$3} END {
        ma = ("TRT_MAJOR_ENTERPRISE" in v) ? v["TRT_MAJOR_ENTERPRISE"] : v["NV_TENSORRT_MAJOR"];
        mi = ("TRT_MINOR_ENTERPRISE" in v) ? v["TRT_MINOR_ENTERPRISE"] : v["NV_TENSORRT_MINOR"];
        pa = ("TRT_PATCH_ENTERPRISE" in v) ? v["TRT_PATCH_ENTERPRISE"] : v["NV_TENSORRT_PATCH"];
        print ma "." mi "." pa }')"
  dir="$build_root/trt-$version"
  log="$dir.log"
  mkdir -p "$build_root"
  echo "== TensorRT $version headers: $root (log: $log)"
  build="FAIL"; warnings="-"; harness="-"; note=""; started=$SECONDS
  # Only what the plugin's CTest needs (not the kernel library's own tests); 8.5 has no registry harness.
  registry="simam_trt_registry_harness"
  case "$version" in 8.5.*|8.4.*) registry="" ;; esac
  if cmake -S "$repo" -B "$dir" "${extra_args[@]}" -DTENSORRT_ROOT="$root" -DSIMAM_WITH_TENSORRT=ON -DSIMAM_WITH_CUDA=ON \
       -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$archs" -DCMAKE_CXX_FLAGS="$flags" \
       -DCMAKE_SHARED_LINKER_FLAGS="${flags/-Werror/}" -DCMAKE_EXE_LINKER_FLAGS="${flags/-Werror/}" >"$log" 2>&1 \
     && cmake --build "$dir" -j "$jobs" --target simam_trt_plugin simam_trt_harness $registry >>"$log" 2>&1; then
    build="ok"
    warnings="$(grep -c 'warning:' "$log" || true)"
    if ctest --test-dir "$dir/plugins/tensorrt" --output-on-failure >>"$log" 2>&1; then
      harness="$(grep -oE '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)"
      [ -n "$harness" ] || harness="ok"
      skipped="$(grep -c '(Skipped)' "$log" || true)"
      [ "$skipped" = "0" ] || note="$skipped skipped (no GPU)"
    else
      harness="FAIL"; status=1
    fi
  else
    status=1
    note="see $log"
  fi
  note="$note ($((SECONDS - started)) s)"
  rows+=("$(printf '%-28s %-10s %-9s %-10s %s' "$root" "$version" "$build" "$warnings" "$harness ${note}")")
done

echo
printf '%-28s %-10s %-9s %-10s %s\n' "headers" "version" "build" "warnings" "CPU harness (ctest)"
passed=0
for row in "${rows[@]}"; do
  echo "$row"
  case "$row" in *" ok "*"100% tests passed"*) passed=$((passed + 1)) ;; esac
done
echo "trt_compile_matrix: $passed/${#rows[@]} header sets built with -Werror and passed the CPU harness"
exit $status
