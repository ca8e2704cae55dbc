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
#include <cstring>

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
using MF = hn::Mask<DF>;
using DU = hn::RebindToUnsigned<DF>;
constexpr int64_t kBlock = 1024;  // elements per fp32 partial sum
// Software prefetch distance: the statistics sweep is the first touch of each plane, and with
// planes of a few KiB the hardware prefetcher barely starts before a plane ends (measured on a
// Xeon VM: 56x56 fp16 planes coming from L3 ran ~4x slower than from L2). Prefetching this far
// ahead (crossing into the next plane; prefetches never fault) keeps enough lines in flight.
constexpr int64_t kPrefetchBytes = 4096;

// ---- loads and stores: a unit of 2N elements as two fp32 vectors ---------------------------------
// Every sweep moves units of 2N elements (N = fp32 lanes): two independent vectors per step, and
// for bf16 the cheapest widening there is (below). Per storage type T:
//   Load(df, p, a, b)            the unit at p
//   LoadN(df, p, count, a, b)    its first count < 2N elements (lanes past them are zero)
//   Valid(df, count, ma, mb)     which lanes of a and b LoadN filled
//   Store(df, a, b, p) / StoreN(df, a, b, p, count)
//   First(p)                     element 0 as a float
//   kHalves                      a holds elements [0, N), b [N, 2N): a tail of count <= N
//                                needs a only
// Lanes may hold the elements in any order (bf16 splits even and odd ones): SimAM is elementwise
// after the statistics, and Store puts every lane back where Load found it.
template <class T>
struct Io;

template <>
struct Io<float> {
    static constexpr bool kHalves = true;
    static HWY_INLINE void Load(DF df, const float* HWY_RESTRICT p, VF& a, VF& b) {
        a = hn::LoadU(df, p);
        b = hn::LoadU(df, p + hn::Lanes(df));
    }
    static HWY_INLINE void LoadN(DF df, const float* HWY_RESTRICT p, size_t count, VF& a, VF& b) {
        const size_t N = hn::Lanes(df);
        a = hn::LoadN(df, p, HWY_MIN(count, N));
        b = count > N ? hn::LoadN(df, p + N, count - N) : hn::Zero(df);
    }
    static HWY_INLINE void Valid(DF df, size_t count, MF& ma, MF& mb) {
        const size_t N = hn::Lanes(df);
        ma = hn::FirstN(df, count);
        mb = hn::FirstN(df, count > N ? count - N : 0);
    }
    static HWY_INLINE void Store(DF df, VF a, VF b, float* HWY_RESTRICT p) {
        hn::StoreU(a, df, p);
        hn::StoreU(b, df, p + hn::Lanes(df));
    }
    static HWY_INLINE void StoreN(DF df, VF a, VF b, float* HWY_RESTRICT p, size_t count) {
        const size_t N = hn::Lanes(df);
        hn::StoreN(a, df, p, HWY_MIN(count, N));
        if (count > N) hn::StoreN(b, df, p + N, count - N);
    }
    static HWY_INLINE float First(const float* p) { return *p; }
};

// fp16 travels as hwy::float16_t: Highway converts with F16C / AVX-512 / NEON / SVE instructions,
// in software on targets without them (x86 before F16C: SSE4, SSSE3, SSE2; the portable ones).
// That software widening (Highway 1.2, generic_ops-inl.h) reads the exponent 31 of Inf and NaN
// as an ordinary one: 65536 .. 131008 instead. No finite fp16 is that large (65504 at most), so
// those targets turn such values back into NaN, which makes the plane NaN as the float64
// reference does (found by the every-target NaN test).
template <>
struct Io<hwy::float16_t> {
    static constexpr bool kHalves = true;
    using DH = hn::Rebind<hwy::float16_t, DF>;
    static HWY_INLINE VF Widen(DF df, hn::Vec<DH> h) {
        const VF v = hn::PromoteTo(df, h);
#if (HWY_ARCH_X86 && HWY_TARGET >= HWY_SSE4) || HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
        return hn::IfThenElse(hn::Ge(hn::Abs(v), hn::Set(df, 65536.0f)), hn::NaN(df), v);
#else
        return v;
#endif
    }
    static HWY_INLINE void Load(DF df, const hwy::float16_t* HWY_RESTRICT p, VF& a, VF& b) {
        const DH dh;
        a = Widen(df, hn::LoadU(dh, p));
        b = Widen(df, hn::LoadU(dh, p + hn::Lanes(df)));
    }
    static HWY_INLINE void LoadN(DF df, const hwy::float16_t* HWY_RESTRICT p, size_t count, VF& a, VF& b) {
        const DH dh;
        const size_t N = hn::Lanes(df);
        a = Widen(df, hn::LoadN(dh, p, HWY_MIN(count, N)));
        b = count > N ? Widen(df, hn::LoadN(dh, p + N, count - N)) : hn::Zero(df);
    }
    static HWY_INLINE void Valid(DF df, size_t count, MF& ma, MF& mb) { Io<float>::Valid(df, count, ma, mb); }
    static HWY_INLINE void Store(DF df, VF a, VF b, hwy::float16_t* HWY_RESTRICT p) {
        const DH dh;
        hn::StoreU(hn::DemoteTo(dh, a), dh, p);
        hn::StoreU(hn::DemoteTo(dh, b), dh, p + hn::Lanes(df));
    }
    static HWY_INLINE void StoreN(DF df, VF a, VF b, hwy::float16_t* HWY_RESTRICT p, size_t count) {
        const DH dh;
        const size_t N = hn::Lanes(df);
        hn::StoreN(hn::DemoteTo(dh, a), dh, p, HWY_MIN(count, N));
        if (count > N) hn::StoreN(hn::DemoteTo(dh, b), dh, p + N, count - N);
    }
    static HWY_INLINE float First(const hwy::float16_t* p) { return hwy::F32FromF16(*p); }
};

// bf16 travels as its raw uint16_t bits. A unit is one vector of 2N bf16 read as N 32-bit lanes:
// the even element is the low half of each lane, the odd one the high half, and a bf16 is the
// high half of its float. So widening is one shift (even) or one AND (odd) with no shuffle, and
// narrowing two rounded floats back into one lane is a shift and one OR-AND (AVX-512: a single
// ternary-logic instruction). Little-endian lane order assumed (x86, aarch64): checked below.
#if !HWY_IS_LITTLE_ENDIAN
#error "simam_cpu_simd.cpp: the bf16 even/odd split assumes little-endian lanes"
#endif
template <>
struct Io<uint16_t> {
    static constexpr bool kHalves = false;
    using D16 = hn::Repartition<uint16_t, DF>;  // 2N lanes
    static HWY_INLINE void Split(DF df, hn::Vec<D16> bits, VF& a, VF& b) {
        const DU du;
        const auto w = hn::BitCast(du, bits);
        a = hn::BitCast(df, hn::ShiftLeft<16>(w));
        b = hn::BitCast(df, hn::And(w, hn::Set(du, 0xffff0000u)));
    }
    // Round to nearest even in the high half (the bits of simam_internal.h's float_to_bf16 for
    // every value but NaN; no NaN reaches a store here but FillNaN's quiet NaN, which stays one).
    static HWY_INLINE hn::Vec<DU> RoundHigh(DF /*df*/, VF v) {
        const DU du;
        const auto bits = hn::BitCast(du, v);
        const auto odd = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
        return hn::Add(bits, hn::Add(odd, hn::Set(du, 0x7fffu)));
    }
    static HWY_INLINE hn::Vec<D16> Join(DF df, VF a, VF b) {
        const DU du;
        const D16 d16;
        const auto low = hn::ShiftRight<16>(RoundHigh(df, a));
        return hn::BitCast(d16, hn::OrAnd(low, RoundHigh(df, b), hn::Set(du, 0xffff0000u)));
    }
    static HWY_INLINE void Load(DF df, const uint16_t* HWY_RESTRICT p, VF& a, VF& b) {
        Split(df, hn::LoadU(D16(), p), a, b);
    }
    static HWY_INLINE void LoadN(DF df, const uint16_t* HWY_RESTRICT p, size_t count, VF& a, VF& b) {
        Split(df, hn::LoadN(D16(), p, count), a, b);
    }
    static HWY_INLINE void Valid(DF df, size_t count, MF& ma, MF& mb) {
        ma = hn::FirstN(df, (count + 1) / 2);  // elements 0, 2, 4, ...
        mb = hn::FirstN(df, count / 2);        // elements 1, 3, 5, ...
    }
    static HWY_INLINE void Store(DF df, VF a, VF b, uint16_t* HWY_RESTRICT p) {
        hn::StoreU(Join(df, a, b), D16(), p);
    }
    static HWY_INLINE void StoreN(DF df, VF a, VF b, uint16_t* HWY_RESTRICT p, size_t count) {
        hn::StoreN(Join(df, a, b), D16(), p, count);
    }
    static HWY_INLINE float First(const uint16_t* p) {
        const uint32_t bits = static_cast<uint32_t>(*p) << 16;
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    }
};

// ---- statistics --------------------------------------------------------------------------------
// A first guess of the mean: the mean of four vectors spread over the plane (start, quarter, half,
// end), or element 0 of a plane smaller than that. It only has to be near the mean relative to
// the spread; Plane checks that and shifts again when it is not. Costs a few instructions per
// plane (7x7 planes are ~3 vectors: per-plane costs matter).
template <class T>
HWY_INLINE float FirstGuess(DF df, const T* HWY_RESTRICT x, int64_t n) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    if (n < 8 * N) return Io<T>::First(x);
    VF a0, a1, b0, b1, c0, c1, e0, e1;
    Io<T>::Load(df, x, a0, a1);
    Io<T>::Load(df, x + (n / 4), b0, b1);
    Io<T>::Load(df, x + (n / 2), c0, c1);
    Io<T>::Load(df, x + (n - 2 * N), e0, e1);
    const VF sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(b0, b1)), hn::Add(hn::Add(c0, c1), hn::Add(e0, e1)));
    return hn::ReduceSum(df, sum) / static_cast<float>(8 * N);
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
            // One prefetch per cache line: a unit of fp32 on AVX-512 spans two lines.
            hwy::Prefetch(p + i + kAhead);
            if (2 * N * static_cast<int64_t>(sizeof(T)) > 64) hwy::Prefetch(p + i + N + kAhead);
            VF v0, v1;
            Io<T>::Load(df, p + i, v0, v1);
            const VF d0 = hn::Sub(v0, vshift);
            const VF d1 = hn::Sub(v1, vshift);
            a0 = hn::Add(a0, d0);
            a1 = hn::Add(a1, d1);
            q0 = hn::MulAdd(d0, d0, q0);
            q1 = hn::MulAdd(d1, d1, q1);
        }
        if (i < len) {
            const size_t count = static_cast<size_t>(len - i);
            VF v0, v1;
            MF m0, m1;
            Io<T>::LoadN(df, p + i, count, v0, v1);
            Io<T>::Valid(df, count, m0, m1);
            // The lanes past the end would add -shift: zero them.
            const VF d0 = hn::IfThenElseZero(m0, hn::Sub(v0, vshift));
            const VF d1 = hn::IfThenElseZero(m1, hn::Sub(v1, vshift));
            a0 = hn::Add(a0, d0);
            a1 = hn::Add(a1, d1);
            q0 = hn::MulAdd(d0, d0, q0);
            q1 = hn::MulAdd(d1, d1, q1);
        }
        s1 += static_cast<double>(hn::ReduceSum(df, hn::Add(a0, a1)));
        s2 += static_cast<double>(hn::ReduceSum(df, hn::Add(q0, q1)));
    }
}

// ---- the sigmoid ---------------------------------------------------------------------------------
// FMA-only pieces, the same on every target (no division, no hardware estimate whose precision
// varies: Arm's reciprocal estimate is ~1%, x86's 2^-12 or 2^-14). y = x * sigmoid(z), z >= 0.5.
//
// The result is rounded to T, so 16-bit types need less of the sigmoid. Error of the factor
// g = sigmoid(z), relative, against half an ULP of T's result (fp16 2^-11 .. 2^-12 relative, bf16
// 2^-8 .. 2^-9): an error e in 2^-z moves g by at most e * 2^-z / (1 + 2^-z) <= 0.38 e (z >= 0.5).
//   fp32: 2^t degree 5 (1.6e-7), reciprocal to ~1e-7 (degree 4 would leave 1e-6 of g: within the
//         1e-5 bound, but ten times the error of the statistics the tests tell apart).
//   fp16: degree 3 (7.5e-5 -> 2.8e-5 of g); reciprocal: AVX-512's estimate alone (2^-14 = 6e-5),
//         elsewhere one Newton step more than that estimate needs.  <= ~0.2 ULP before rounding.
//   bf16: degree 2 (1.7e-3 -> 6.5e-4 of g); reciprocal: x86's estimate (<= 3.7e-4) alone,
//         elsewhere the linear start and one Newton step (7.8e-4).  <= ~0.4 ULP before rounding.
// tests/test_kernel.py and the C++ test hold every target to 2 ULP (16-bit) and 1e-5 (fp32).
template <class T>
struct Tier {  // fp32
    static constexpr int kExpDegree = 5;
    static constexpr int kNewtonAfterX86Estimate = 1;
    static constexpr int kNewtonAfterAvx512Estimate = 1;
    static constexpr int kNewtonAfterLinearStart = 2;
};
template <>
struct Tier<hwy::float16_t> {
    static constexpr int kExpDegree = 3;
    static constexpr int kNewtonAfterX86Estimate = 1;
    static constexpr int kNewtonAfterAvx512Estimate = 0;
    static constexpr int kNewtonAfterLinearStart = 2;
};
template <>
struct Tier<uint16_t> {  // bf16
    static constexpr int kExpDegree = 2;
    static constexpr int kNewtonAfterX86Estimate = 0;
    static constexpr int kNewtonAfterAvx512Estimate = 0;
    static constexpr int kNewtonAfterLinearStart = 1;
};

// 1 + 2^t for t <= 0: t = k + f with k = round(t), |f| <= 1/2; 2^f by a polynomial fitted for
// relative error on [-1/2, 1/2] (least squares on Chebyshev nodes, reweighted toward minimax;
// degree 5: 1.6e-7, 3: 7.5e-5, 2: 1.7e-3); 2^k by building the float's exponent; the 1 is added
// by the FMA that multiplies by 2^k. Adding
// 2^23 + 127 rounds t to the integer k (round to nearest: the sum's unit is 1) and leaves k + 127
// in the low mantissa bits; shifted up, that is 2^k's exponent; t - k is exact. t < -126 clamps
// so 2^k stays a normal float (2^-126 is nothing next to the 1 it is added to). Callers handle NaN
// planes before this (Max's NaN behaviour differs by target).
template <int kDegree>
HWY_INLINE VF OnePlusExp2NonPositive(DF df, VF t) {
    const DU du;
    const VF magic = hn::Set(df, 8388735.0f);  // 2^23 + 127
    t = hn::Max(t, hn::Set(df, -126.0f));
    const VF biased = hn::Add(t, magic);
    const VF f = hn::Sub(t, hn::Sub(biased, magic));
    VF p;
    if constexpr (kDegree == 5) {
        p = hn::MulAdd(hn::Set(df, 1.3266970e-3f), f, hn::Set(df, 9.6754597e-3f));
        p = hn::MulAdd(p, f, hn::Set(df, 5.5507426e-2f));
        p = hn::MulAdd(p, f, hn::Set(df, 2.4022122e-1f));
        p = hn::MulAdd(p, f, hn::Set(df, 6.9314695e-1f));
        p = hn::MulAdd(p, f, hn::Set(df, 1.0000001f));
    } else if constexpr (kDegree == 3) {
        p = hn::MulAdd(hn::Set(df, 5.5171669e-2f), f, hn::Set(df, 2.4261114e-1f));
        p = hn::MulAdd(p, f, hn::Set(df, 6.9326097e-1f));
        p = hn::MulAdd(p, f, hn::Set(df, 9.9992806e-1f));
    } else {
        static_assert(kDegree == 2, "degrees 2, 3 and 5 are fitted");
        p = hn::MulAdd(hn::Set(df, 2.3842892e-1f), f, hn::Set(df, 7.0344806e-1f));
        p = hn::MulAdd(p, f, hn::Set(df, 1.0004431f));
    }
    return hn::MulAdd(p, hn::BitCast(df, hn::ShiftLeft<23>(hn::BitCast(du, biased))), hn::Set(df, 1.0f));
}

HWY_INLINE VF NewtonStep(DF df, VF u, VF r) {
    return hn::MulAdd(r, hn::NegMulAdd(u, r, hn::Set(df, 1.0f)), r);  // error squared
}

// 1/u for u in [1, 1 + e^-0.5]. x86's reciprocal estimate has relative error <= 1.5 * 2^-12
// (2^-14 with AVX-512); each Newton step squares it. Elsewhere (Arm's estimate is only ~2^-8,
// and the portable targets' differs) the minimax linear start (error 0.028) and Newton steps:
// one gives 7.8e-4, two 6e-7.
template <class T>
HWY_INLINE VF ReciprocalNear1(DF df, VF u) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR
    VF r = hn::ApproximateReciprocal(u);
#if HWY_TARGET <= HWY_AVX3
    constexpr int kSteps = Tier<T>::kNewtonAfterAvx512Estimate;
#else
    constexpr int kSteps = Tier<T>::kNewtonAfterX86Estimate;
#endif
#else
    VF r = hn::NegMulAdd(u, hn::Set(df, 0.60513801f), hn::Set(df, 1.5773108f));
    constexpr int kSteps = Tier<T>::kNewtonAfterLinearStart;
#endif
    if constexpr (kSteps >= 1) r = NewtonStep(df, u, r);
    if constexpr (kSteps >= 2) r = NewtonStep(df, u, r);
    return r;
}

template <class T>
HWY_INLINE void FillNaN(DF df, T* y, int64_t n) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    // The quiet NaN 0x7fc00000 (not Highway's NaN(), all ones: rounding that to bf16 would carry).
    const VF nan = hn::BitCast(df, hn::Set(DU(), 0x7fc00000u));
    int64_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) Io<T>::Store(df, nan, nan, y + i);
    if (i < n) Io<T>::StoreN(df, nan, nan, y + i, static_cast<size_t>(n - i));
}

// What the second sweep of a plane needs: s = (x - shift) * a - b (fp32) or x * a - b (16-bit),
// or nan: the plane is all NaN.
template <class T>
constexpr bool kShifted = sizeof(T) == 4;

struct Factors {
    float shift, a, b;
    bool nan;
};

template <class T>
HWY_INLINE Factors Statistics(DF df, const T* HWY_RESTRICT x, const PlaneConstants& k) {
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
    // float64 reference (and no NaN reaches the sigmoid).
    if (std::isnan(m2) || !std::isfinite(shift)) return Factors{0.0f, 0.0f, 0.0f, true};
    const double variance = (m2 < 0.0 ? 0.0 : m2) * k.inv_divisor;  // < 0: rounding only
    // exp(-z) = 2^(-z log2(e)) with z log2(e) = s^2 + 0.5 log2(e), s = (x - mean) * a and
    // a = sqrt(log2(e) / (4 (var + lambda))). One FMA makes s, one more -s^2 - 0.5 log2(e).
    // fp32: s = (x - shift) * a - c * a (c the correction, within 4 standard deviations):
    //       x - shift is exact (Sterbenz), so s stays accurate when |mean| >> std.
    // 16-bit: s = x * a - mean * a, one op less. Rounding mean * a costs an absolute error of
    //       |mean| / std * 2^-24 in s, and a 16-bit plane's |mean| / std is below ~2^11 (its
    //       values would be equal otherwise): < 1e-4 of s, a few percent of an ULP in y.
    constexpr double kLog2e = 1.4426950408889634;
    const double a = std::sqrt(kLog2e / (4.0 * (variance + k.e_lambda)));
    if (kShifted<T>) return Factors{shift, static_cast<float>(a), static_cast<float>(correction * a), false};
    return Factors{0.0f, static_cast<float>(a), static_cast<float>((shift + correction) * a), false};
}

// y = x * sigmoid(z) over the plane; y may be x (every unit is loaded before it is stored).
template <class T>
HWY_INLINE void Sweep(DF df, const T* x, T* y, int64_t n, const Factors& f) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(df));
    constexpr double kLog2e = 1.4426950408889634;
    const VF va = hn::Set(df, f.a);
    const VF vb = hn::Set(df, f.b);
    const VF half = hn::Set(df, static_cast<float>(0.5 * kLog2e));
    const VF vshift = hn::Set(df, f.shift);
    const auto simam_of = [&](VF v) {
        const VF s = hn::MulSub(kShifted<T> ? hn::Sub(v, vshift) : v, va, vb);
        const VF t = hn::NegMulSub(s, s, half);  // -z log2(e)
        return hn::Mul(v, ReciprocalNear1<T>(df, OnePlusExp2NonPositive<Tier<T>::kExpDegree>(df, t)));
    };
    int64_t i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
        VF v0, v1;
        Io<T>::Load(df, x + i, v0, v1);
        Io<T>::Store(df, simam_of(v0), simam_of(v1), y + i);
    }
    if (i < n) {
        const size_t count = static_cast<size_t>(n - i);
        VF v0, v1;
        Io<T>::LoadN(df, x + i, count, v0, v1);
        // A short tail (14x14 planes end in 4 elements on AVX-512) is one vector's work, not two.
        const VF y1 = Io<T>::kHalves && count <= static_cast<size_t>(N) ? v1 : simam_of(v1);
        Io<T>::StoreN(df, simam_of(v0), y1, y + i, count);
    }
}

template <class T>
HWY_INLINE void Apply(DF df, const T* x, T* y, int64_t n, const Factors& f) {
    if (f.nan) {
        FillNaN(df, y, n);
    } else {
        Sweep(df, x, y, n, f);
    }
}

// Small planes (7x7, 8x8, 16x16: a few vectors each) go in groups: the statistics of every plane
// of the group, then the sigmoid sweeps. A plane's sweep waits on its statistics (two reductions,
// a division and a square root: ~100 cycles of latency, longer than the sweep itself); in a group
// those latencies overlap the other planes' work instead of stalling each plane. The group stays
// in L1 (kGroupBytes) for its second sweep.
constexpr int64_t kGroupPlanes = 16;
constexpr int64_t kGroupBytes = 16 * 1024;

template <class T>
HWY_INLINE void Planes(const void* x, void* y, const PlaneConstants& k, int64_t begin, int64_t end) {
    const DF df;
    const T* in = static_cast<const T*>(x);
    T* out = static_cast<T*>(y);
    const int64_t n = k.n;
    const int64_t group = HWY_MAX(int64_t{1}, HWY_MIN(kGroupPlanes, kGroupBytes / (n * static_cast<int64_t>(sizeof(T)))));
    Factors factors[kGroupPlanes];
    for (int64_t first = begin; first < end; first += group) {
        const int64_t last = HWY_MIN(end, first + group);
        for (int64_t p = first; p < last; ++p) factors[p - first] = Statistics(df, in + p * n, k);
        for (int64_t p = first; p < last; ++p) Apply(df, in + p * n, out + p * n, n, factors[p - first]);
    }
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
