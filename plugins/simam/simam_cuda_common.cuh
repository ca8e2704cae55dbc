// Device helpers of the CUDA kernels (element conversions, 128-bit packs, the SimAM formula and
// its denominator), so every CUDA translation unit of the kernel library computes an element the
// same way. Not installed.
#ifndef SIMAM_CUDA_COMMON_CUH
#define SIMAM_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace simam_cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// VEC elements moved as one load/store (16 bytes when VEC = 16 / sizeof(T)).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
    T v[VEC];
};

// The output of one element given its plane's statistics: shift K, correction c = mean - K and
// 1 / (4 (M2 / div + lambda)).
__device__ __forceinline__ float simam_value(float v, float shift, float correction, float inv_denominator) {
    const float d = (v - shift) - correction;
    const float z = d * d * inv_denominator + 0.5f;
    return v / (1.0f + expf(-z));
}

// 1 / (4 (M2 / div + lambda)); M2 < 0 only by rounding. NaN stays NaN.
__device__ __forceinline__ float inverse_denominator(float m2, float inv_divisor, float e_lambda) {
    m2 = m2 < 0.0f ? 0.0f : m2;
    return 1.0f / (4.0f * (m2 * inv_divisor + e_lambda));
}

}  // namespace simam_cuda

#endif  // SIMAM_CUDA_COMMON_CUH
