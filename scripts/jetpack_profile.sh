#!/usr/bin/env bash
# The CUDA architectures of a JetPack release, after checking that the TensorRT headers and the
# nvcc that will build the plugin are the ones that JetPack ships.
#
#   scripts/jetpack_profile.sh JETPACK [TENSORRT_ROOT]     (make plugin JETPACK=6.2 calls it)
#
# Prints the CMAKE_CUDA_ARCHITECTURES list on stdout; exit 2 with the reason and the fix on stderr
# when the JetPack is unknown, no headers are found, their NvInferVersion.h is another TensorRT
# release, or nvcc is another CUDA major version (its runtime would need a newer driver than the
# board has; cubins for an architecture nvcc cannot target cannot be built at all).
# Environment: CUDACXX (the nvcc CMake will use; default: nvcc on PATH, else
# /usr/local/cuda/bin/nvcc, where JetPack puts it).
set -u -o pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ "$#" -ge 1 ] && [ "$#" -le 2 ] || usage
jetpack="$1"
root="${2:-}"

# JetPack -> TensorRT major.minor, CUDA major, GPU architectures (Xavier sm_72, Orin sm_87,
# Thor sm_110). 6.1 ships the same TensorRT 10.3 / CUDA 12.6 as 6.2.
case "$jetpack" in
  5.1) trt="8.5";  cuda="11"; archs="72;87"; boards="Xavier, Orin" ;;
  6.0) trt="8.6";  cuda="12"; archs="87";    boards="Orin" ;;
  6.1|6.2) trt="10.3"; cuda="12"; archs="87"; boards="Orin" ;;
  7.0) trt="10.13"; cuda="13"; archs="110";  boards="Thor" ;;
  *) echo "jetpack_profile: unknown JETPACK=$jetpack: known 5.1, 6.0, 6.1, 6.2, 7.0" >&2; exit 2 ;;
esac

# Where the headers are: TENSORRT_ROOT as the plugin's CMake reads it, else JetPack's own place.
if [ -n "$root" ]; then
  dirs=("$root/include" "$root/include/aarch64-linux-gnu" "$root/include/x86_64-linux-gnu" "$root")
else
  dirs=(/usr/include/aarch64-linux-gnu /usr/include/x86_64-linux-gnu /usr/local/tensorrt/include /usr/include)
fi
header=""
for dir in "${dirs[@]}"; do
  if [ -f "$dir/NvInferVersion.h" ]; then header="$dir/NvInferVersion.h"; break; fi
done
if [ -z "$header" ]; then
  echo "jetpack_profile: no NvInferVersion.h in ${dirs[*]}: install TensorRT $trt (JetPack $jetpack:" \
       "apt-get install nvidia-tensorrt-dev) or set TENSORRT_ROOT=DIR (DIR/include/NvInfer.h)" >&2
  exit 2
fi
found="$(grep -hE '#define (NV_TENSORRT|TRT)_(MAJOR|MINOR|PATCH)(_ENTERPRISE)? +[0-9]+' "$header" \
  | awk '{v[$2]=$3} END {
      ma = ("TRT_MAJOR_ENTERPRISE" in v) ? v["TRT_MAJOR_ENTERPRISE"] : v["NV_TENSORRT_MAJOR"];
      mi = ("TRT_MINOR_ENTERPRISE" in v) ? v["TRT_MINOR_ENTERPRISE"] : v["NV_TENSORRT_MINOR"];
      pa = ("TRT_PATCH_ENTERPRISE" in v) ? v["TRT_PATCH_ENTERPRISE"] : v["NV_TENSORRT_PATCH"];
      if (ma != "" && mi != "") print ma "." mi "." pa }')"
if [ -z "$found" ]; then
  echo "jetpack_profile: $header names no TensorRT version (NV_TENSORRT_MAJOR/MINOR): not TensorRT's header?" >&2
  exit 2
fi
case "$found" in
  "$trt".*) ;;
  *) echo "jetpack_profile: JetPack $jetpack ships TensorRT $trt, but the headers at $header are" \
          "TensorRT $found: a plugin built against them would not load there. Set TENSORRT_ROOT to" \
          "TensorRT $trt's headers (on the board: TENSORRT_ROOT=/usr)" >&2
     exit 2 ;;
esac

nvcc="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
if ! version="$("$nvcc" --version 2>/dev/null | grep -oE 'release [0-9]+\.[0-9]+' | cut -d' ' -f2)" \
   || [ -z "$version" ]; then
  echo "jetpack_profile: no working nvcc ($nvcc): JetPack $jetpack has CUDA $cuda.x in /usr/local/cuda/bin;" \
       "put it on PATH or set CUDACXX" >&2
  exit 2
fi
if [ "${version%%.*}" != "$cuda" ]; then
  echo "jetpack_profile: JetPack $jetpack ships CUDA $cuda.x, but $nvcc is CUDA $version: its runtime" \
       "needs a newer driver than the board's. Build with JetPack's own nvcc (on the board:" \
       "/usr/local/cuda/bin/nvcc; set CUDACXX=/usr/local/cuda/bin/nvcc)" >&2
  exit 2
fi
supported="$("$nvcc" --list-gpu-arch 2>/dev/null | tr '\n' ' ')"
for arch in ${archs//;/ }; do
  case " $supported" in
    *" compute_$arch "*) ;;
    *) echo "jetpack_profile: $nvcc (CUDA $version) cannot compile sm_$arch, which JetPack $jetpack" \
            "needs ($boards)" >&2
       exit 2 ;;
  esac
done
echo "jetpack_profile: JetPack $jetpack ($boards): TensorRT $found headers at $header, CUDA $version," \
     "architectures $archs" >&2
echo "$archs"
