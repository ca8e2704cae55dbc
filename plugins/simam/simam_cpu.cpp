// SimAM forward on the CPU: the C API's entry points, their validation and errors, and the split
// of planes over the worker pool (simam_cpu_pool.cpp). The per-plane math is vectorised with
// Highway and dispatched to the CPU's best SIMD target in simam_cpu_simd.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "simam.h"
#include "simam_cpu_pool.h"
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

namespace {

using simam_detail::set_error;

constexpr int64_t kMinElementsPerTask = 1 << 15;  // below this a hand-off costs more than it saves

using simam_detail::PlaneConstants;

struct Job {
    const void* x;
    void* y;
    simam_dtype dtype;
    PlaneConstants constants;
};

// The planes cut into `tasks` contiguous ranges, handed out dynamically by the pool.
struct Split {
    const Job* job;
    int64_t planes;
    int64_t tasks;
};

void run_split(void* context, int64_t index) {
    Split& split = *static_cast<Split*>(context);
    const int64_t begin = index * split.planes / split.tasks;
    const int64_t end = (index + 1) * split.planes / split.tasks;
    const Job& job = *split.job;
    simam_detail::simam_planes_simd(job.x, job.y, job.dtype, job.constants, begin, end);
}

// Enough tasks to balance uneven progress across threads, few enough that each is worth a hand-off.
int64_t task_count(int64_t planes, int64_t plane_size) {
    const int64_t by_work = std::max<int64_t>(1, planes * plane_size / kMinElementsPerTask);
    const int64_t by_threads = 4 * static_cast<int64_t>(simam_detail::pool_threads());
    return std::min({planes, by_work, by_threads});
}

PlaneConstants plane_constants(int64_t H, int64_t W, float e_lambda, int unbiased) {
    const int64_t n = H * W;
    return PlaneConstants{n, e_lambda, 1.0 / static_cast<double>(n),
                          1.0 / simam_detail::variance_divisor(n, unbiased)};
}

}  // namespace

extern "C" simam_status simam_forward_cpu(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                          simam_dtype dtype, float e_lambda, int unbiased) {
    const simam_status status = simam_detail::validate(x, y, N, C, H, W, dtype, e_lambda, unbiased);
    if (status != SIMAM_OK) return status;
    const int64_t n = H * W;
    const Job job{x, y, dtype, plane_constants(H, W, e_lambda, unbiased)};
    Split split;
    split.job = &job;
    split.planes = N * C;
    split.tasks = task_count(split.planes, n);
    simam_detail::parallel_for(split.tasks, run_split, &split);
    return SIMAM_OK;
}

extern "C" simam_status simam_forward_cpu_planes(const void* x, void* y, int64_t N, int64_t C, int64_t H,
                                                 int64_t W, simam_dtype dtype, float e_lambda, int unbiased,
                                                 int64_t first_plane, int64_t end_plane) {
    const simam_status status = simam_detail::validate(x, y, N, C, H, W, dtype, e_lambda, unbiased);
    if (status != SIMAM_OK) return status;
    if (first_plane < 0 || end_plane < first_plane || end_plane > N * C) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "simam: plane range [%lld, %lld) is not inside [0, N*C=%lld)",
                      static_cast<long long>(first_plane), static_cast<long long>(end_plane),
                      static_cast<long long>(N * C));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    simam_detail::simam_planes_simd(x, y, dtype, plane_constants(H, W, e_lambda, unbiased), first_plane,
                                    end_plane);
    return SIMAM_OK;
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
