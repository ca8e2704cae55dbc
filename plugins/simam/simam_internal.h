/* Pieces shared by the CPU and CUDA translation units of the kernel library (not installed). */
#ifndef SIMAM_SIMAM_INTERNAL_H
#define SIMAM_SIMAM_INTERNAL_H

#include <stdint.h>
#include <cstring>

#include "simam.h"

namespace simam_detail {

/* Planes with more elements than this do not fit the on-chip CUDA kernels (registers). */
constexpr int64_t kOnChipMaxPlane = 16384;
/* Elements of a huge plane that one block of the multi-block CUDA path summarises. */
constexpr int64_t kChunkPerBlock = 16384;

/* Workspace per chunk: (shift, correction, M2, unused) as a float4. */
constexpr int64_t kWorkspaceFloatsPerChunk = 4;

inline int64_t chunks_per_plane(int64_t plane_size) {
    return (plane_size + kChunkPerBlock - 1) / kChunkPerBlock;
}

/* Record `message` as this thread's last error and return `status` (SIMAM_OK clears it). */
simam_status set_error(simam_status status, const char* message);

/* Checks shared by every entry point: pointers, shape, dtype, e_lambda, the 0/0 plane. */
simam_status validate(const void* x, const void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                      simam_dtype dtype, float e_lambda, int unbiased);

/* The NHWC CUDA kernels (simam_cuda_nhwc.cu), called by simam_run_cuda for a problem that
 * simam_problem_validate accepted and whose layout is SIMAM_LAYOUT_NHWC. stream is a cudaStream_t. */
simam_status launch_cuda_nhwc(const simam_problem& problem, const void* x, void* y, void* workspace,
                              size_t workspace_bytes, void* stream);
size_t cuda_nhwc_workspace_size(const simam_problem& problem);

/* The variance divisor: H*W - 1 (unbiased) or H*W. */
inline double variance_divisor(int64_t plane_size, int unbiased) {
    return static_cast<double>(unbiased ? plane_size - 1 : plane_size);
}


// ---- fp16 / bf16 <-> fp32, round to nearest even ------------------------------------------
inline uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t magnitude = h & 0x7fffu;
    // Move exponent+mantissa into place; scaling by 2^112 rebias the exponent (15 -> 127) and
    // turns half subnormals into the right normal floats in one exact multiply.
    const uint32_t finite = bits_of(float_of(magnitude << 13) * 0x1p112f);
    const uint32_t inf_or_nan = (magnitude << 13) | 0x7f800000u;
    // select by mask, not by branch, so that loops over it vectorise
    const uint32_t special = 0u - static_cast<uint32_t>(magnitude >= 0x7c00u);
    return float_of((inf_or_nan & special) | (finite & ~special) | sign);
}

// Branch-free (every case computed, one selected) so that loops over it vectorise.
inline uint16_t float_to_half(float value) {
    uint32_t f = bits_of(value);
    const uint32_t sign = (f >> 16) & 0x8000u;
    f &= 0x7fffffffu;
    // nan stays a quiet nan with its top payload bits; >= 65520 (incl. inf) rounds to inf
    const uint32_t nan_or_inf = f > 0x7f800000u ? 0x7e00u | ((f >> 13) & 0x3ffu) : 0x7c00u;
    // below 2^-14 (half subnormal or 0): adding 0.5 makes the float rounder compute round(x * 2^24)
    const uint32_t subnormal = bits_of(float_of(f) + 0.5f) - 0x3f000000u;
    // normal: rebias the exponent (0xc8000000 = (15 - 127) << 23 mod 2^32), round to nearest even
    const uint32_t normal = (f + 0xc8000fffu + ((f >> 13) & 1u)) >> 13;
    // selects by mask: a data-dependent branch here mispredicts on data like ReLU's output (half
    // zeros), and masks let the loops that call this vectorise
    const uint32_t big = 0u - static_cast<uint32_t>(f >= 0x477ff000u);
    const uint32_t small = 0u - static_cast<uint32_t>(f < 0x38800000u);
    const uint32_t finite = (subnormal & small) | (normal & ~small);
    const uint32_t h = (nan_or_inf & big) | (finite & ~big);
    return static_cast<uint16_t>(h | sign);
}

inline float bf16_to_float(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

inline uint16_t float_to_bf16(float value) {
    const uint32_t f = bits_of(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((f >> 16) | 0x40u);  // quiet nan
    return static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

}  // namespace simam_detail

#endif /* SIMAM_SIMAM_INTERNAL_H */
