// SimAM forward on the CPU, plus the parts of the C API every build shares (validation, errors).
//
// Per plane, three sweeps over data that stays in L1/L2 (a 56x56 fp32 plane is 12 KiB):
//   1. shift  = fp32 mean (approximate, only needs to be close)
//   2. s1 = sum(x - shift), s2 = sum((x - shift)^2)      -> exact-enough mean and M2
//   3. y  = x * sigmoid(((x - shift) - c)^2 * k + 0.5)    with c = s1 / P
// Subtracting the shift first keeps the statistics accurate when |mean| >> std: x - shift is
// exact there (Sterbenz), so nothing cancels catastrophically. Partial sums run in 16 fp32
// lanes over blocks of 1024 elements (vectorisable, short chains) and blocks merge in double.
// Planes are spread over a persistent worker pool (simam_cpu_pool.cpp); fp16/bf16 planes are
// widened to an fp32 scratch.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIMAM_HAVE_AVX2_CLONE 1
#include <immintrin.h>
#endif

#include "simam.h"
#include "simam_cpu_pool.h"
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

constexpr int kLanes = 16;
constexpr int64_t kBlock = 1024;                  // elements per fp32 partial sum
constexpr int64_t kMinElementsPerTask = 1 << 15;  // below this a hand-off costs more than it saves

using simam_detail::bf16_to_float;
using simam_detail::bits_of;
using simam_detail::float_of;
using simam_detail::float_to_bf16;
using simam_detail::float_to_half;
using simam_detail::half_to_float;

// ---- storage types ------------------------------------------------------------------------
struct Half {
    using storage = uint16_t;
    static float load(uint16_t v) { return half_to_float(v); }
    static uint16_t store(float v) { return float_to_half(v); }
};
struct BFloat16 {
    using storage = uint16_t;
    static float load(uint16_t v) { return bf16_to_float(v); }
    static uint16_t store(float v) { return float_to_bf16(v); }
};

#if defined(__GNUC__) && !defined(__clang__)
#define SIMAM_IVDEP _Pragma("GCC ivdep")
#else
#define SIMAM_IVDEP
#endif

// What every plane of one call shares; the reciprocals keep divisions out of the per-plane path.
struct PlaneConstants {
    int64_t n;           // H * W
    float e_lambda;
    double inv_n;        // 1 / n
    double inv_divisor;  // 1 / (n - 1) or 1 / n
};

// ---- per-plane fp32 math, compiled twice on x86-64 GCC: baseline and AVX2+FMA ---------------
namespace baseline {
#include "simam_cpu_plane.h"
}  // namespace baseline

#ifdef SIMAM_HAVE_AVX2_CLONE
// Every CPU with AVX2 (Haswell, Zen and later) also has F16C, so the clone uses it for fp16.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define SIMAM_PLANE_F16C 1
namespace avx2 {
#include "simam_cpu_plane.h"
}  // namespace avx2
#undef SIMAM_PLANE_F16C
#pragma GCC pop_options
#endif

struct PlaneFns {
    void (*f32)(const float*, float*, const PlaneConstants&);
    void (*f16)(const uint16_t*, uint16_t*, const PlaneConstants&, float*);
    void (*bf16)(const uint16_t*, uint16_t*, const PlaneConstants&, float*);
};

// Chosen once: the AVX2 copies when the CPU has AVX2 and FMA.
const PlaneFns& plane_fns() {
    static const PlaneFns fns = [] {
#ifdef SIMAM_HAVE_AVX2_CLONE
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            return PlaneFns{avx2::simam_plane_f32, avx2::simam_plane_16bit<Half>, avx2::simam_plane_16bit<BFloat16>};
        }
#endif
        return PlaneFns{baseline::simam_plane_f32, baseline::simam_plane_16bit<Half>,
                        baseline::simam_plane_16bit<BFloat16>};
    }();
    return fns;
}

struct Job {
    const void* x;
    void* y;
    simam_dtype dtype;
    PlaneConstants constants;
};

// Planes [begin, end); returns false only when the fp32 scratch could not be allocated.
bool run_planes(const Job& job, int64_t begin, int64_t end) noexcept {
    try {
        const PlaneFns& fns = plane_fns();
        const int64_t n = job.constants.n;
        thread_local std::vector<float> scratch;  // reused across calls: one plane of fp32
        if (job.dtype != SIMAM_FLOAT32 && scratch.size() < static_cast<size_t>(n)) scratch.resize(n);
        for (int64_t plane = begin; plane < end; ++plane) {
            const int64_t offset = plane * n;
            if (job.dtype == SIMAM_FLOAT32) {
                const float* x = static_cast<const float*>(job.x) + offset;
                fns.f32(x, static_cast<float*>(job.y) + offset, job.constants);
            } else {
                const uint16_t* x = static_cast<const uint16_t*>(job.x) + offset;
                uint16_t* y = static_cast<uint16_t*>(job.y) + offset;
                const auto fn = job.dtype == SIMAM_FLOAT16 ? fns.f16 : fns.bf16;
                fn(x, y, job.constants, scratch.data());
            }
        }
        return true;
    } catch (...) {
        return false;
    }
}

// The planes cut into `tasks` contiguous ranges, handed out dynamically by the pool.
struct Split {
    const Job* job;
    int64_t planes;
    int64_t tasks;
    std::atomic<bool> failed{false};
};

void run_split(void* context, int64_t index) {
    Split& split = *static_cast<Split*>(context);
    const int64_t begin = index * split.planes / split.tasks;
    const int64_t end = (index + 1) * split.planes / split.tasks;
    if (!run_planes(*split.job, begin, end)) split.failed.store(true);
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
    if (split.failed.load()) return set_error(SIMAM_ERR_INTERNAL, "simam: out of memory for the fp32 plane scratch");
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
    const Job job{x, y, dtype, plane_constants(H, W, e_lambda, unbiased)};
    if (!run_planes(job, first_plane, end_plane)) {
        return set_error(SIMAM_ERR_INTERNAL, "simam: out of memory for the fp32 plane scratch");
    }
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

extern "C" const char* simam_last_error(void) { return simam_detail::t_last_error.c_str(); }
