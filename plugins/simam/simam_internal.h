/* Pieces shared by the CPU and CUDA translation units of the kernel library (not installed). */
#ifndef SIMAM_SIMAM_INTERNAL_H
#define SIMAM_SIMAM_INTERNAL_H

#include <stdint.h>

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

/* The variance divisor: H*W - 1 (unbiased) or H*W. */
inline double variance_divisor(int64_t plane_size, int unbiased) {
    return static_cast<double>(unbiased ? plane_size - 1 : plane_size);
}

}  // namespace simam_detail

#endif /* SIMAM_SIMAM_INTERNAL_H */
