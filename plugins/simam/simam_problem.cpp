// The full problem on the CPU (simam.h, "The full problem"): its validation, the NCHW path with the
// fused epilogue, the NHWC path (any channel stride), and the split of the work over the pool.
//
// NCHW: the per-plane SIMD kernel (simam_cpu_simd.cpp) does SimAM; with an epilogue, the plane's
// fp32 output is then finished (scale, bias, residual, activation) while it is still in cache.
// For fp16/bf16 the kernel runs on an fp32 copy of the plane so that SimAM's output is never
// rounded to the storage type before the epilogue: one rounding, as on the GPU.
//
// NHWC: channels are innermost, so a plane is strided. Per sample and block of up to kNhwcBlock
// channels, one sweep over the pixels accumulates every channel's shifted sums side by side
// (contiguous channels: the inner loop vectorises), a second sweep writes the output. The
// numerics are the SIMD kernel's: shifted moments, a second shift when the first guess was far
// off, the sigmoid from FMAs and one division.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "simam.h"
#include "simam_cpu_pool.h"
#include "simam_cpu_simd.h"
#include "simam_internal.h"

namespace {

using simam_detail::PlaneConstants;
using simam_detail::set_error;

constexpr int64_t kMinElementsPerTask = 1 << 15;  // below this a hand-off costs more than it saves
constexpr int64_t kNhwcBlock = 64;                // channels whose sums one NHWC sweep carries
constexpr int64_t kNhwcPixelBlock = 256;          // pixels per fp32 partial sum (then merged in double)

int64_t effective_stride(const simam_problem& p) {
    return (p.layout == SIMAM_LAYOUT_NHWC && p.channel_stride != 0) ? p.channel_stride : p.C;
}

size_t element_bytes(simam_dtype dtype) { return dtype == SIMAM_FLOAT32 ? 4 : 2; }

// Bytes from the first to one past the last element of a tensor of the problem's shape/layout.
uint64_t extent_bytes(const simam_problem& p) {
    const int64_t elements =
        p.layout == SIMAM_LAYOUT_NHWC ? (p.N * p.H * p.W - 1) * effective_stride(p) + p.C : p.N * p.C * p.H * p.W;
    return static_cast<uint64_t>(elements) * element_bytes(p.dtype);
}

bool overlaps(const void* a, const void* b, uint64_t bytes) {
    const uintptr_t ua = reinterpret_cast<uintptr_t>(a), ub = reinterpret_cast<uintptr_t>(b);
    return ua < ub + bytes && ub < ua + bytes;
}

// ---- storage types as fp32 --------------------------------------------------------------------
struct Half {
    uint16_t bits;
};
struct BFloat {
    uint16_t bits;
};
inline float load(const float* p) { return *p; }
inline float load(const Half* p) { return simam_detail::half_to_float(p->bits); }
inline float load(const BFloat* p) { return simam_detail::bf16_to_float(p->bits); }
inline void store(float* p, float v) { *p = v; }
inline void store(Half* p, float v) { p->bits = simam_detail::float_to_half(v); }
inline void store(BFloat* p, float v) { p->bits = simam_detail::float_to_bf16(v); }

// ---- the epilogue: z = act(y * scale + bias + residual), fp32 ---------------------------------
template <int ACT>
inline float activate(float z) {
    if (ACT == SIMAM_ACTIVATION_RELU) return z < 0.0f ? 0.0f : z;  // NaN stays NaN (fmax would drop it)
    if (ACT == SIMAM_ACTIVATION_SILU) return z / (1.0f + std::exp(-z));
    return z;
}

template <bool AFFINE, bool RESIDUAL, int ACT>
inline float finish(float y, float scale, float bias, float residual) {
    float z = AFFINE ? y * scale + bias : y;
    if (RESIDUAL) z += residual;
    return activate<ACT>(z);
}

// 2^t for t <= 0 from FMAs and the float's exponent bits (the SIMD kernel's Exp2NonPositive, in
// scalar code the compiler vectorises): relative error < 1e-7.
inline float exp2_nonpositive(float t) {
    t = t < -126.0f ? -126.0f : t;
    const float k = (t + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23 pushes out the fraction
    const float f = t - k;
    float p = 1.3266970e-3f;
    p = p * f + 9.6754597e-3f;
    p = p * f + 5.5507426e-2f;
    p = p * f + 2.4022122e-1f;
    p = p * f + 6.9314695e-1f;
    p = p * f + 1.0000001f;
    // k + 2^23 + 127 holds k + 127 in its low mantissa bits; shifted up, that is 2^k's exponent.
    return p * simam_detail::float_of(simam_detail::bits_of(k + 8388735.0f) << 23);
}

// ---- NCHW -------------------------------------------------------------------------------------
struct Epilogue {
    const void* scale;
    const void* bias;
    const void* residual;
    int activation;
};

template <class T, bool AFFINE, bool RESIDUAL, int ACT>
void finish_plane(const float* src, T* dst, const T* residual, float scale, float bias, int64_t n) {
    if constexpr (std::is_same_v<T, float>) {
        for (int64_t i = 0; i < n; ++i)
            dst[i] = finish<AFFINE, RESIDUAL, ACT>(src[i], scale, bias, RESIDUAL ? residual[i] : 0.0f);
    } else {
        // 16-bit: widen, compute and narrow in separate loops over a stack block, so that each one
        // vectorises; fused into one scalar loop the ReLU's data-dependent branch mispredicted on
        // every other element (fp16 with the epilogue ran at 1/20 of the plain kernel's speed).
        constexpr int64_t kBlock = 256;
        float z[kBlock];
        for (int64_t first = 0; first < n; first += kBlock) {
            const int64_t m = n - first < kBlock ? n - first : kBlock;
            for (int64_t i = 0; i < m; ++i) z[i] = RESIDUAL ? load(residual + first + i) : 0.0f;
            for (int64_t i = 0; i < m; ++i) z[i] = finish<AFFINE, RESIDUAL, ACT>(src[first + i], scale, bias, z[i]);
            for (int64_t i = 0; i < m; ++i) store(dst + first + i, z[i]);
        }
    }
}

template <class T>
using FinishPlane = void (*)(const float*, T*, const T*, float, float, int64_t);

template <class T, bool AFFINE, bool RESIDUAL>
FinishPlane<T> pick_finish(int act) {
    if (act == SIMAM_ACTIVATION_RELU) return finish_plane<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_RELU>;
    if (act == SIMAM_ACTIVATION_SILU) return finish_plane<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_SILU>;
    return finish_plane<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_NONE>;
}

template <class T>
FinishPlane<T> pick_finish(bool affine, bool residual, int act) {
    if (affine) return residual ? pick_finish<T, true, true>(act) : pick_finish<T, true, false>(act);
    return residual ? pick_finish<T, false, true>(act) : pick_finish<T, false, false>(act);
}

// Planes [begin, end) of an NCHW problem with an epilogue. False when the fp32 scratch of a
// 16-bit plane could not be allocated (nothing written then).
template <class T>
bool nchw_epilogue_planes(const simam_problem& p, const PlaneConstants& k, const void* xv, void* yv,
                          int64_t begin, int64_t end) {
    const T* x = static_cast<const T*>(xv);
    T* y = static_cast<T*>(yv);
    const T* residual = static_cast<const T*>(p.residual);
    const T* scale = static_cast<const T*>(p.scale);
    const T* bias = static_cast<const T*>(p.bias);
    const FinishPlane<T> finish_fn = pick_finish<T>(scale != nullptr, residual != nullptr, p.activation);
    const int64_t n = k.n;
    std::unique_ptr<float[]> scratch;
    if constexpr (!std::is_same_v<T, float>) {
        scratch.reset(new (std::nothrow) float[static_cast<size_t>(n)]);
        if (!scratch) return false;
    }
    for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % p.C;
        const float s = scale != nullptr ? load(scale + c) : 1.0f;
        const float b = bias != nullptr ? load(bias + c) : 0.0f;
        const T* r = residual != nullptr ? residual + plane * n : nullptr;
        if constexpr (std::is_same_v<T, float>) {
            // fp32: SimAM into y, then the epilogue over y in place while the plane is in cache.
            simam_detail::simam_planes_simd(x + plane * n, y + plane * n, SIMAM_FLOAT32, k, 0, 1);
            finish_fn(y + plane * n, y + plane * n, r, s, b, n);
        } else {
            float* f = scratch.get();
            for (int64_t i = 0; i < n; ++i) f[i] = load(x + plane * n + i);  // exact widening
            simam_detail::simam_planes_simd(f, f, SIMAM_FLOAT32, k, 0, 1);
            finish_fn(f, y + plane * n, r, s, b, n);
        }
    }
    return true;
}

// ---- NHWC -------------------------------------------------------------------------------------
// Channels [c0, c0 + cb) of sample `sample`, cb <= kNhwcBlock.
template <class T, bool AFFINE, bool RESIDUAL, int ACT>
void nhwc_block(const simam_problem& p, const PlaneConstants& k, const T* x, T* y, int64_t sample, int64_t c0,
                int64_t cb) {
    const int64_t stride = effective_stride(p);
    const int64_t pixels = k.n;
    const int64_t base = sample * pixels * stride + c0;
    const T* xs = x + base;
    T* ys = y + base;
    const T* rs = RESIDUAL ? static_cast<const T*>(p.residual) + base : nullptr;

    // First guess of each channel's mean: three pixels spread over the plane.
    float shift[kNhwcBlock];
    for (int64_t c = 0; c < cb; ++c) {
        const float first = load(xs + c), middle = load(xs + (pixels / 2) * stride + c);
        const float last = load(xs + (pixels - 1) * stride + c);
        shift[c] = (first + middle + last) * (1.0f / 3.0f);
    }
    double s1[kNhwcBlock], s2[kNhwcBlock];
    const auto moments = [&] {
        for (int64_t c = 0; c < cb; ++c) s1[c] = s2[c] = 0.0;
        for (int64_t start = 0; start < pixels; start += kNhwcPixelBlock) {
            const int64_t stop = std::min(pixels, start + kNhwcPixelBlock);
            float a1[kNhwcBlock] = {}, a2[kNhwcBlock] = {};
            for (int64_t q = start; q < stop; ++q) {
                const T* row = xs + q * stride;
                for (int64_t c = 0; c < cb; ++c) {
                    const float d = load(row + c) - shift[c];
                    a1[c] += d;
                    a2[c] += d * d;
                }
            }
            for (int64_t c = 0; c < cb; ++c) {
                s1[c] += a1[c];
                s2[c] += a2[c];
            }
        }
    };
    moments();
    // m2 = s2 - n c^2 loses about (1 + c^2 / var) roundings: where the guess was more than 4
    // standard deviations off, shift by the mean just found and sweep again (as the SIMD kernel).
    bool again = false;
    for (int64_t c = 0; c < cb; ++c) {
        const double correction = s1[c] * k.inv_n;
        const double m2 = s2[c] - s1[c] * correction;
        if (correction * correction * static_cast<double>(pixels) > 16.0 * m2 && std::isfinite(correction)) {
            shift[c] = static_cast<float>(shift[c] + correction);
            again = true;
        }
    }
    if (again) moments();

    constexpr double kLog2e = 1.4426950408889634;
    float corr[kNhwcBlock], slope[kNhwcBlock], scale[kNhwcBlock], bias[kNhwcBlock];
    for (int64_t c = 0; c < cb; ++c) {
        const double correction = s1[c] * k.inv_n;
        const double m2 = s2[c] - s1[c] * correction;
        const double variance = (m2 < 0.0 ? 0.0 : m2) * k.inv_divisor;  // < 0: rounding only
        corr[c] = static_cast<float>(correction);
        // A NaN or Inf in the plane makes the channel NaN, as in the float64 reference.
        const bool bad = std::isnan(m2) || !std::isfinite(shift[c]);
        slope[c] = bad ? NAN : static_cast<float>(kLog2e / (4.0 * (variance + k.e_lambda)));
        scale[c] = AFFINE ? load(static_cast<const T*>(p.scale) + c0 + c) : 1.0f;
        bias[c] = AFFINE ? load(static_cast<const T*>(p.bias) + c0 + c) : 0.0f;
    }
    const float half = static_cast<float>(0.5 * kLog2e);
    for (int64_t q = 0; q < pixels; ++q) {
        const T* row = xs + q * stride;
        T* out = ys + q * stride;
        for (int64_t c = 0; c < cb; ++c) {
            const float v = load(row + c);
            const float d = (v - shift[c]) - corr[c];
            // slope NaN (a NaN/Inf channel) makes e, and so the output, NaN.
            const float simam = v / (1.0f + exp2_nonpositive(-(d * d * slope[c] + half)));
            store(out + c, finish<AFFINE, RESIDUAL, ACT>(simam, scale[c], bias[c],
                                                         RESIDUAL ? load(rs + q * stride + c) : 0.0f));
        }
    }
}

template <class T>
using NhwcBlock = void (*)(const simam_problem&, const PlaneConstants&, const T*, T*, int64_t, int64_t, int64_t);

template <class T, bool AFFINE, bool RESIDUAL>
NhwcBlock<T> pick_nhwc(int act) {
    if (act == SIMAM_ACTIVATION_RELU) return nhwc_block<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_RELU>;
    if (act == SIMAM_ACTIVATION_SILU) return nhwc_block<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_SILU>;
    return nhwc_block<T, AFFINE, RESIDUAL, SIMAM_ACTIVATION_NONE>;
}

template <class T>
void nhwc_planes(const simam_problem& p, const PlaneConstants& k, const void* x, void* y, int64_t begin,
                 int64_t end) {
    const bool affine = p.scale != nullptr, residual = p.residual != nullptr;
    const NhwcBlock<T> block = affine ? (residual ? pick_nhwc<T, true, true>(p.activation)
                                                  : pick_nhwc<T, true, false>(p.activation))
                                      : (residual ? pick_nhwc<T, false, true>(p.activation)
                                                  : pick_nhwc<T, false, false>(p.activation));
    // Walk the range sample by sample, channels in blocks of kNhwcBlock.
    for (int64_t plane = begin; plane < end;) {
        const int64_t sample = plane / p.C, c = plane % p.C;
        const int64_t cb = std::min({kNhwcBlock, p.C - c, end - plane});
        block(p, k, static_cast<const T*>(x), static_cast<T*>(y), sample, c, cb);
        plane += cb;
    }
}

PlaneConstants plane_constants(const simam_problem& p) {
    const int64_t n = p.H * p.W;
    return PlaneConstants{n, p.e_lambda, 1.0 / static_cast<double>(n),
                          1.0 / simam_detail::variance_divisor(n, p.unbiased)};
}

// Planes [begin, end) on the calling thread; false only when scratch memory ran out.
bool run_planes(const simam_problem& p, const PlaneConstants& k, const void* x, void* y, int64_t begin,
                int64_t end) {
    const bool epilogue = p.scale != nullptr || p.residual != nullptr || p.activation != SIMAM_ACTIVATION_NONE;
    if (p.layout == SIMAM_LAYOUT_NHWC) {
        switch (p.dtype) {
            case SIMAM_FLOAT32: nhwc_planes<float>(p, k, x, y, begin, end); break;
            case SIMAM_FLOAT16: nhwc_planes<Half>(p, k, x, y, begin, end); break;
            case SIMAM_BFLOAT16: nhwc_planes<BFloat>(p, k, x, y, begin, end); break;
        }
        return true;
    }
    if (!epilogue) {  // the plain kernel, unchanged
        simam_detail::simam_planes_simd(x, y, p.dtype, k, begin, end);
        return true;
    }
    switch (p.dtype) {
        case SIMAM_FLOAT32: return nchw_epilogue_planes<float>(p, k, x, y, begin, end);
        case SIMAM_FLOAT16: return nchw_epilogue_planes<Half>(p, k, x, y, begin, end);
        case SIMAM_BFLOAT16: return nchw_epilogue_planes<BFloat>(p, k, x, y, begin, end);
    }
    return true;
}

// The work cut into `tasks` contiguous ranges of units, handed out dynamically by the pool. A unit
// is a plane (NCHW) or a block of kNhwcBlock channels of one sample (NHWC), so that NHWC tasks
// never split the channels that share cache lines.
struct Split {
    const simam_problem* problem;
    PlaneConstants constants;
    const void* x;
    void* y;
    int64_t units;
    int64_t units_per_sample;  // NHWC
    int64_t tasks;
    std::atomic<bool> out_of_memory{false};
};

int64_t unit_start(const Split& s, int64_t unit) {
    const simam_problem& p = *s.problem;
    if (p.layout != SIMAM_LAYOUT_NHWC) return unit;
    if (unit == s.units) return p.N * p.C;
    return (unit / s.units_per_sample) * p.C + (unit % s.units_per_sample) * kNhwcBlock;
}

void run_split(void* context, int64_t index) {
    Split& s = *static_cast<Split*>(context);
    const int64_t first = index * s.units / s.tasks, last = (index + 1) * s.units / s.tasks;
    if (!run_planes(*s.problem, s.constants, s.x, s.y, unit_start(s, first), unit_start(s, last)))
        s.out_of_memory.store(true, std::memory_order_relaxed);
}

simam_status out_of_memory(const simam_problem& p) {
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "simam: out of host memory for the fp32 scratch of one %lldx%lld plane (the fused epilogue "
                  "of fp16/bf16 NCHW keeps SimAM's output in fp32)",
                  static_cast<long long>(p.H), static_cast<long long>(p.W));
    return set_error(SIMAM_ERR_INTERNAL, msg);
}

}  // namespace

extern "C" simam_problem simam_problem_make(int64_t N, int64_t C, int64_t H, int64_t W, simam_dtype dtype,
                                            float e_lambda, int unbiased) {
    simam_problem p{};
    p.N = N;
    p.C = C;
    p.H = H;
    p.W = W;
    p.dtype = dtype;
    p.layout = SIMAM_LAYOUT_NCHW;
    p.channel_stride = 0;
    p.e_lambda = e_lambda;
    p.unbiased = unbiased;
    p.scale = nullptr;
    p.bias = nullptr;
    p.residual = nullptr;
    p.activation = SIMAM_ACTIVATION_NONE;
    return p;
}

extern "C" simam_status simam_problem_validate(const simam_problem* problem, const void* x, const void* y) {
    if (problem == nullptr) return set_error(SIMAM_ERR_INVALID_ARGUMENT, "simam: problem must be a non-null pointer");
    const simam_problem& p = *problem;
    char msg[320];
    // The layout first: every later check (the extent of a strided tensor) depends on it. Read as
    // an int: a C caller may store any int there, and in C++ loading a simam_layout outside 0..1
    // would be undefined (clang's -fsanitize=enum flags it).
    static_assert(sizeof(simam_layout) == sizeof(int), "simam_layout is an int-sized enum");
    int layout;
    std::memcpy(&layout, &p.layout, sizeof layout);
    if (layout != SIMAM_LAYOUT_NCHW && layout != SIMAM_LAYOUT_NHWC) {
        std::snprintf(msg, sizeof msg, "simam: unknown layout code %d (use 0 NCHW, 1 NHWC)", layout);
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    const simam_status status = simam_detail::validate(x, y, p.N, p.C, p.H, p.W, p.dtype, p.e_lambda, p.unbiased);
    if (status != SIMAM_OK) return status;
    if (p.layout == SIMAM_LAYOUT_NCHW && p.channel_stride != 0 && p.channel_stride != p.C) {
        std::snprintf(msg, sizeof msg,
                      "simam: channel_stride=%lld applies to the NHWC layout only; an NCHW problem needs 0 (or C=%lld)",
                      static_cast<long long>(p.channel_stride), static_cast<long long>(p.C));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    if (p.layout == SIMAM_LAYOUT_NHWC && p.channel_stride != 0) {
        if (p.channel_stride < p.C) {
            std::snprintf(msg, sizeof msg,
                          "simam: channel_stride=%lld is less than C=%lld; an NHWC pixel holds at least C elements "
                          "(0 means C)",
                          static_cast<long long>(p.channel_stride), static_cast<long long>(p.C));
            return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
        }
        // N*H*W*channel_stride * 2 bytes must fit int64, like N*C*H*W (checked by validate).
        const int64_t limit = INT64_MAX / 4, pixels = p.N * p.H * p.W;
        if (p.channel_stride > limit / pixels) {
            std::snprintf(msg, sizeof msg, "simam: channel_stride=%lld times N*H*W overflows 64-bit indexing",
                          static_cast<long long>(p.channel_stride));
            return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
        }
    }
    if ((p.scale == nullptr) != (p.bias == nullptr)) {
        return set_error(SIMAM_ERR_INVALID_ARGUMENT,
                         p.scale == nullptr ? "simam: bias is set but scale is NULL; the affine epilogue takes both "
                                              "(pass scale = 1 for a bias only)"
                                            : "simam: scale is set but bias is NULL; the affine epilogue takes both "
                                              "(pass bias = 0 for a scale only)");
    }
    if (p.activation != SIMAM_ACTIVATION_NONE && p.activation != SIMAM_ACTIVATION_RELU &&
        p.activation != SIMAM_ACTIVATION_SILU) {
        std::snprintf(msg, sizeof msg, "simam: unknown activation code %d (use 0 none, 1 relu, 2 silu)",
                      static_cast<int>(p.activation));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    if (p.residual != nullptr && overlaps(p.residual, y, extent_bytes(p))) {
        return set_error(SIMAM_ERR_INVALID_ARGUMENT,
                         "simam: residual overlaps y; the output must not be written over the residual input (it "
                         "may be written over x)");
    }
    return set_error(SIMAM_OK, nullptr);
}

extern "C" simam_status simam_run_cpu(const simam_problem* problem, const void* x, void* y) {
    const simam_status status = simam_problem_validate(problem, x, y);
    if (status != SIMAM_OK) return status;
    const simam_problem& p = *problem;
    Split split;
    split.problem = &p;
    split.constants = plane_constants(p);
    split.x = x;
    split.y = y;
    split.units_per_sample = (p.C + kNhwcBlock - 1) / kNhwcBlock;
    split.units = p.layout == SIMAM_LAYOUT_NHWC ? p.N * split.units_per_sample : p.N * p.C;
    const int64_t elements = p.N * p.C * p.H * p.W;
    const int64_t by_work = std::max<int64_t>(1, elements / kMinElementsPerTask);
    const int64_t by_threads = 4 * static_cast<int64_t>(simam_detail::pool_threads());
    split.tasks = std::min({split.units, by_work, by_threads});
    simam_detail::parallel_for(split.tasks, run_split, &split);
    if (split.out_of_memory.load()) return out_of_memory(p);
    return SIMAM_OK;
}

extern "C" simam_status simam_run_cpu_planes(const simam_problem* problem, const void* x, void* y,
                                             int64_t first_plane, int64_t end_plane) {
    const simam_status status = simam_problem_validate(problem, x, y);
    if (status != SIMAM_OK) return status;
    const simam_problem& p = *problem;
    if (first_plane < 0 || end_plane < first_plane || end_plane > p.N * p.C) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "simam: plane range [%lld, %lld) is not inside [0, N*C=%lld)",
                      static_cast<long long>(first_plane), static_cast<long long>(end_plane),
                      static_cast<long long>(p.N * p.C));
        return set_error(SIMAM_ERR_INVALID_ARGUMENT, msg);
    }
    if (!run_planes(p, plane_constants(p), x, y, first_plane, end_plane)) return out_of_memory(p);
    return SIMAM_OK;
}
