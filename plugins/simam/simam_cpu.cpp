// SimAM forward on the CPU: the shared validation and errors, and the NCHW entry points of the C
// API as wrappers of the full problem (simam_problem.cpp, which splits the planes over the worker
// pool of simam_cpu_pool.cpp). The per-plane math is vectorised with Highway and dispatched to the
// CPU's best SIMD target in simam_cpu_simd.cpp.
#include <cmath>
#include <cstdio>
#include <string>

#include "simam.h"
#include "simam_cpu_simd.h"
#include "simam_internal.h"

namespace simam_detail {

namespace {
thread_local std::string t_last_error;
}  // namespace

simam_status set_error(simam_status status, const char* message) {
    try {
        t_last_error = (status == SIMAM_OK || message == nullptr) ? "" : message;
    } catch (...) {
        // Out of memory while recording the message: keep the status, lose the text.
    }
    return status;
}

simam_status validate(const void* x, const void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                      simam_dtype dtype, float e_lambda, int unbiased) {
    char msg[320];
    if (x == nullptr || y == nullptr) {
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, "simam: x and y must be non-null pointers");
    }
    if (N <= 0 || C <= 0 || H <= 0 || W <= 0) {
        std::snprintf(msg, sizeof msg,
                      "simam: every dimension must be > 0, got N=%lld C=%lld H=%lld W=%lld "
                      "(empty tensors are a no-op for the caller to skip)",
                      static_cast<long long>(N), static_cast<long long>(C), static_cast<long long>(H),
                      static_cast<long long>(W));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    // N*C*H*W * 2 bytes must fit int64 (every index is 64-bit).
    const int64_t limit = INT64_MAX / 4;
    if (C > limit / N || H > limit / (N * C) || W > limit / (N * C * H)) {
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, "simam: N*C*H*W overflows 64-bit indexing");
    }
    if (dtype != SIMAM_FLOAT32 && dtype != SIMAM_FLOAT16 && dtype != SIMAM_BFLOAT16) {
        std::snprintf(msg, sizeof msg, "simam: unsupported dtype code %d (use 0 fp32, 1 fp16, 2 bf16)",
                      static_cast<int>(dtype));
        return set_error(SIMAM_ERR_UNSUPPORTED_DTYPE, msg);
    }
    if (!std::isfinite(e_lambda) || !(e_lambda > 0.0f)) {
        std::snprintf(msg, sizeof msg, "simam: e_lambda must be finite and > 0, got %g",
                      static_cast<double>(e_lambda));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    if (unbiased != 0 && H * W == 1) {
        return set_error(SIMAM_ERR_INVALID_ARGUMENT,
                         "simam: a 1x1 plane with unbiased=1 divides by H*W-1 = 0; use unbiased=0 "
                         "or planes of at least 2 elements");
    }
    return set_error(SIMAM_OK, nullptr);
}

}  // namespace simam_detail

// The NCHW entry points without an epilogue: wrappers of the full problem (simam_problem.cpp).
extern "C" simam_status simam_forward_cpu(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                          simam_dtype dtype, float e_lambda, int unbiased) {
    const simam_problem problem = simam_problem_make(N, C, H, W, dtype, e_lambda, unbiased);
    return simam_run_cpu(&problem, x, y);
}

extern "C" simam_status simam_forward_cpu_planes(const void* x, void* y, int64_t N, int64_t C, int64_t H,
                                                 int64_t W, simam_dtype dtype, float e_lambda, int unbiased,
                                                 int64_t first_plane, int64_t end_plane) {
    const simam_problem problem = simam_problem_make(N, C, H, W, dtype, e_lambda, unbiased);
    return simam_run_cpu_planes(&problem, x, y, first_plane, end_plane);
}

extern "C" size_t simam_cuda_workspace_size(int64_t N, int64_t C, int64_t H, int64_t W, simam_dtype dtype) {
    (void)dtype;
    if (N <= 0 || C <= 0 || H <= 0 || W <= 0) return 0;
    // Shapes the launch refuses (N*C*H*W past 64-bit indexing, the limit in validate()) need no
    // scratch; checking first keeps the products below from overflowing (found by fuzzing).
    const int64_t limit = INT64_MAX / 4;
    if (C > limit / N || H > limit / (N * C) || W > limit / (N * C * H)) return 0;
    const int64_t plane_size = H * W;
    if (plane_size <= simam_detail::kOnChipMaxPlane) return 0;
    return static_cast<size_t>(N * C * simam_detail::chunks_per_plane(plane_size)) *
           simam_detail::kWorkspaceFloatsPerChunk * sizeof(float);
}

extern "C" const char* simam_status_string(simam_status status) {
    switch (status) {
        case SIMAM_OK: return "ok";
        case SIMAM_ERR_INVALID_ARGUMENT: return "invalid argument";
        case SIMAM_ERR_UNSUPPORTED_DTYPE: return "unsupported dtype";
        case SIMAM_ERR_CUDA: return "CUDA error";
        case SIMAM_ERR_NO_CUDA: return "this build has no CUDA kernels";
        case SIMAM_ERR_INTERNAL: return "internal error (out of memory or thread start failure)";
    }
    return "unknown status";
}

extern "C" const char* simam_cpu_simd_target(void) { return simam_detail::simam_cpu_simd_target(); }

extern "C" const char* simam_last_error(void) { return simam_detail::t_last_error.c_str(); }
