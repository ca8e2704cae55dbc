// SimAM of whole planes on the CPU, vectorised with Google Highway. Highway compiles this file
// once per SIMD target (foreach_target.h re-includes it) and HWY_DYNAMIC_DISPATCH picks the best
// one this CPU has, once per range of planes.
//
// Per plane, two sweeps; only the first comes from memory, the second hits L1/L2 (a 56x56 fp32
// plane is 12 KiB):
//   0. shift  = mean of 4 vectors spread over the plane (only needs to be close; checked)
//   1. s1 = sum(x - shift), s2 = sum((x - shift)^2) in one sweep  -> exact-enough mean and M2
//   2. y  = x * sigmoid(((x - shift) - c)^2 * k + 0.5)             with c = s1 / P
//      (the sigmoid from FMAs only: 2^t and a reciprocal by Newton steps, see below)
// Subtracting the shift first keeps the statistics accurate when |mean| >> std: x - shift is
// exact there (Sterbenz), so nothing cancels catastrophically. Partial sums run in fp32 vector
// lanes (two vectors per step, short chains) over blocks of 1024 elements; blocks merge in double.
// fp16/bf16 are widened to fp32 in registers as they are loaded and narrowed as they are stored
// (round to nearest even): no scratch buffer, and each 16-bit element moves half the bytes.
#include "simam_cpu_simd.h"

#include <stddef.h>
#include <stdint.h>

#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simam_cpu_simd.cpp"
#include <hwy/cache_control.h>  // Prefetch
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace simam_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr int64_t kBlock = 1024;  // elements per fp32 partial sum
// Software prefetch distance: the statistics sweep is the first touch of each plane, and with
// planes of a few KiB the hardware prefetcher barely starts before a plane ends (measured on a
// Xeon VM: 56x56 fp16 planes coming from L3 ran ~4x slower than from L2). Prefetching this far
// ahead (crossing into the next plane; prefetches never fault) keeps enough lines in flight.
constexpr int64_t kPrefetchBytes = 4096;

// ---- loads and stores: every storage type as fp32 lanes ----------------------------------------
// fp16 travels as hwy::float16_t (Highway converts with F16C / NEON / SVE instructions, or exactly
// in software on older targets); bf16 travels as its raw uint16_t bits (widening is a shift).
HWY_INLINE VF Load(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadN(DF df, const float* p, size_t count) { return hn::LoadN(df, p, count); }
HWY_INLINE void Store(DF df, VF v, float* p) { hn::StoreU(v, df, p); }
HWY_INLINE void StoreN(DF df, VF v, float* p, size_t count) { hn::StoreN(v, df, p, count); }

HWY_INLINE VF Load(DF df, const hwy::float16_t* p) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
}
HWY_INLINE VF LoadN(DF df, const hwy::float16_t* p, size_t count) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadN(dh, p, count));
}
HWY_INLINE void Store(DF /*df*/, VF v, hwy::float16_t* p) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, p);
}
HWY_INLINE void StoreN(DF /*df*/, VF v, hwy::float16_t* p, size_t count) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    hn::StoreN(hn::DemoteTo(dh, v), dh, p, count);
}

HWY_INLINE VF WidenBf16(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> bits) {
    const hn::RebindToUnsigned<DF> du32;
    return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits)));
}
// Round to nearest even, NaN stays a quiet NaN: the same bits as simam_internal.h's float_to_bf16.
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> NarrowBf16(DF /*df*/, VF v) {
    const hn::RebindToUnsigned<DF> du32;
    const hn::Rebind<uint16_t, DF> du16;
    const auto bits = hn::BitCast(du32, v);
    const auto odd = hn::And(hn::ShiftRight<16>(bits), hn::Set(du32, 1u));
    const auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(du32, 0x7fffu), odd)));
    const auto quiet_nan = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du32, 0x40u));
    return hn::TruncateTo(du16, hn::IfThenElse(hn::RebindMask(du32, hn::IsNaN(v)), quiet_nan, rounded));
}
HWY_INLINE VF Load(DF df, const uint16_t* p) {
    const hn::Rebind<uint16_t, DF> du16;
    return WidenBf16(df, hn::LoadU(du16, p));
}
HWY_INLINE VF LoadN(DF df, const uint16_t* p, size_t count) {
    const hn::Rebind<uint16_t, DF> du16;
    return WidenBf16(df, hn::LoadN(du16, p, count));
}
HWY_INLINE void Store(DF df, VF v, uint16_t* p) {
    const hn::Rebind<uint16_t, DF> du16;
    hn::StoreU(NarrowBf16(df, v), du16, p);
}
HWY_INLINE void StoreN(DF df, VF v, uint16_t* p, size_t count) {
    const hn::Rebind<uint16_t, DF> du16;
    hn::StoreN(NarrowBf16(df, v), du16, p, count);
}

// ---- statistics --------------------------------------------------------------------------------
// A first guess of the mean: the mean of four vectors spread over the plane (start, quarter, half,
// end), or of the first vector of a plane smaller than four. It only has to be near the mean
// relative to the spread; Plane checks that and shifts again when it is not. Costs a few
// instructions per plane (7x7 planes are ~3 vectors: per-plane costs matter).
template <class T>
HWY_INLINE float FirstGuess(DF df, const T* HWY_RESTRICT x, int64_t n) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    if (n < 4 * N) {
        const size_t count = static_cast<size_t>(HWY_MIN(n, N));
        return hn::ReduceSum(df, LoadN(df, x, count)) / static_cast<float>(count);
    }
    const VF a = hn::Add(Load(df, x), Load(df, x + n / 4));
    const VF b = hn::Add(Load(df, x + n / 2), Load(df, x + n - N));
    return hn::ReduceSum(df, hn::Add(a, b)) / static_cast<float>(4 * N);
}

// s1 = sum(x - shift), s2 = sum((x - shift)^2) in one sweep.
template <class T>
HWY_INLINE void ShiftedMoments(DF df, const T* HWY_RESTRICT x, int64_t n, float shift, double& s1,
                               double& s2) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const VF vshift = hn::Set(df, shift);
    constexpr int64_t kAhead = kPrefetchBytes / static_cast<int64_t>(sizeof(T));
    s1 = 0.0;
    s2 = 0.0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = HWY_MIN(kBlock, n - start);
        const T* p = x + start;
        VF a0 = hn::Zero(df), a1 = hn::Zero(df), q0 = hn::Zero(df), q1 = hn::Zero(df);
        int64_t i = 0;
        for (; i + 2 * N <= len; i += 2 * N) {
            // One prefetch per cache line: 2 vectors of fp32 on AVX-512 span two lines.
            hwy::Prefetch(p + i + kAhead);
            if (2 * N * static_cast<int64_t>(sizeof(T)) > 64) hwy::Prefetch(p + i + N + kAhead);
            const VF d0 = hn::Sub(Load(df, p + i), vshift);
            const VF d1 = hn::Sub(Load(df, p + i + N), vshift);
            a0 = hn::Add(a0, d0);
            a1 = hn::Add(a1, d1);
            q0 = hn::MulAdd(d0, d0, q0);
            q1 = hn::MulAdd(d1, d1, q1);
        }
        for (; i < len; i += N) {
            const size_t count = static_cast<size_t>(len - i);
            // The lanes past the end would add -shift: zero them.
            const VF d = hn::IfThenElseZero(hn::FirstN(df, count), hn::Sub(LoadN(df, p + i, count), vshift));
            a0 = hn::Add(a0, d);
            q0 = hn::MulAdd(d, d, q0);
        }
        s1 += static_cast<double>(hn::ReduceSum(df, hn::Add(a0, a1)));
        s2 += static_cast<double>(hn::ReduceSum(df, hn::Add(q0, q1)));
    }
}

// ---- the sigmoid ---------------------------------------------------------------------------------
// FMA-only pieces, the same on every target (no division, no hardware estimate whose precision
// varies: Arm's reciprocal estimate is ~1%, x86's 2^-12 or 2^-14). y = x * sigmoid(z), z >= 0.5.

// 2^t for t <= 0, relative error < 1e-7: t = k + f with k = round(t), |f| <= 1/2; 2^f by a
// degree-5 polynomial (least squares for relative error on Chebyshev nodes: 7.7e-8, better than
// the degree-6 Taylor series); 2^k by building the float's exponent. t < -126 clamps so 2^k
// stays a normal float (2^-126 is nothing next to the 1 it is added to). Callers handle NaN
// planes before this (Max's NaN behaviour differs by target).
HWY_INLINE VF Exp2NonPositive(DF df, VF t) {
    const hn::RebindToUnsigned<DF> du32;
    t = hn::Max(t, hn::Set(df, -126.0f));
    const VF k = hn::Round(t);
    const VF f = hn::Sub(t, k);
    VF p = hn::Set(df, 1.3266970e-3f);
    p = hn::MulAdd(p, f, hn::Set(df, 9.6754597e-3f));
    p = hn::MulAdd(p, f, hn::Set(df, 5.5507426e-2f));
    p = hn::MulAdd(p, f, hn::Set(df, 2.4022122e-1f));
    p = hn::MulAdd(p, f, hn::Set(df, 6.9314695e-1f));
    p = hn::MulAdd(p, f, hn::Set(df, 1.0000001f));
    // k + 2^23 + 127 holds k + 127 in its low mantissa bits; shifted up, that is 2^k's exponent.
    const auto biased = hn::BitCast(du32, hn::Add(k, hn::Set(df, 8388735.0f)));
    return hn::Mul(p, hn::BitCast(df, hn::ShiftLeft<23>(biased)));
}

// 1/u for u in [1, 1 + e^-0.5]. x86's reciprocal estimate has relative error <= 1.5 * 2^-12
// (2^-14 with AVX-512): one Newton step (error squared) gives ~1e-7. Elsewhere (Arm's estimate
// is only ~2^-8) the minimax linear start (error 0.028) and two Newton steps give 6e-7.
HWY_INLINE VF ReciprocalNear1(DF df, VF u) {
    const VF one = hn::Set(df, 1.0f);
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR
    VF r = hn::ApproximateReciprocal(u);
#else
    VF r = hn::NegMulAdd(u, hn::Set(df, 0.60513801f), hn::Set(df, 1.5773108f));
    r = hn::MulAdd(r, hn::NegMulAdd(u, r, one), r);
#endif
    return hn::MulAdd(r, hn::NegMulAdd(u, r, one), r);
}

template <class T>
HWY_INLINE void FillNaN(DF df, T* y, int64_t n) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const VF nan = hn::NaN(df);
    int64_t i = 0;
    for (; i + N <= n; i += N) Store(df, nan, y + i);
    if (i < n) StoreN(df, nan, y + i, static_cast<size_t>(n - i));
}

template <class T>
HWY_INLINE void Plane(const T* x, T* y, const PlaneConstants& k) {
    const DF df;
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    const int64_t n = k.n;
    float shift = FirstGuess(df, x, n);
    double s1, s2;
    ShiftedMoments(df, x, n, shift, s1, s2);
    double correction = s1 * k.inv_n;
    double m2 = s2 - s1 * correction;
    // m2 = s2 - n c^2 loses about (1 + c^2 / var) fp32 roundings: when the guessed shift is more
    // than 4 standard deviations off (c^2 > 16 var; rare: outliers where it looked), shift again
    // by the mean just found and sweep again, so the error stays within ~17 roundings.
    if (correction * correction * static_cast<double>(n) > 16.0 * m2) {
        shift = static_cast<float>(shift + correction);
        ShiftedMoments(df, x, n, shift, s1, s2);
        correction = s1 * k.inv_n;
        m2 = s2 - s1 * correction;
    }
    // A NaN or Inf in the plane makes its statistics NaN: the whole plane is NaN, as in the
    // float64 reference (and no NaN reaches the sigmoid below).
    if (std::isnan(m2) || !std::isfinite(shift)) {
        FillNaN(df, y, n);
        return;
    }
    const double variance = (m2 < 0.0 ? 0.0 : m2) * k.inv_divisor;  // < 0: rounding only
    // exp(-z) = 2^(-z log2(e)); z = d^2 / (4 (var + lambda)) + 0.5, both terms scaled by log2(e).
    constexpr double kLog2e = 1.4426950408889634;
    const VF scale = hn::Set(df, static_cast<float>(kLog2e / (4.0 * (variance + k.e_lambda))));
    const VF half = hn::Set(df, static_cast<float>(0.5 * kLog2e));
    const VF vshift = hn::Set(df, shift);
    const VF c = hn::Set(df, static_cast<float>(correction));
    const VF one = hn::Set(df, 1.0f);
    const auto simam_of = [&](VF v) {
        const VF d = hn::Sub(hn::Sub(v, vshift), c);
        const VF t = hn::NegMulSub(hn::Mul(d, d), scale, half);  // -z log2(e)
        return hn::Mul(v, ReciprocalNear1(df, hn::Add(one, Exp2NonPositive(df, t))));
    };
    // y may be x (in place): every vector is loaded before the same vector is stored.
    int64_t i = 0;
    for (; i + N <= n; i += N) Store(df, simam_of(Load(df, x + i)), y + i);
    if (i < n) {
        const size_t count = static_cast<size_t>(n - i);
        StoreN(df, simam_of(LoadN(df, x + i, count)), y + i, count);
    }
}

template <class T>
HWY_INLINE void Planes(const void* x, void* y, const PlaneConstants& k, int64_t begin, int64_t end) {
    const T* in = static_cast<const T*>(x);
    T* out = static_cast<T*>(y);
    for (int64_t plane = begin; plane < end; ++plane) Plane(in + plane * k.n, out + plane * k.n, k);
}

void SimamPlanes(const void* x, void* y, simam_dtype dtype, const PlaneConstants& k, int64_t begin, int64_t end) {
    switch (dtype) {
        case SIMAM_FLOAT32: Planes<float>(x, y, k, begin, end); break;
        case SIMAM_FLOAT16: Planes<hwy::float16_t>(x, y, k, begin, end); break;
        case SIMAM_BFLOAT16: Planes<uint16_t>(x, y, k, begin, end); break;
    }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace simam_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace simam_detail {

HWY_EXPORT(SimamPlanes);
HWY_EXPORT(TargetName);

void simam_planes_simd(const void* x, void* y, simam_dtype dtype, const PlaneConstants& k, int64_t begin,
                       int64_t end) {
    HWY_DYNAMIC_DISPATCH(SimamPlanes)(x, y, dtype, k, begin, end);
}

const char* simam_cpu_simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace simam_detail
#endif  // HWY_ONCE
