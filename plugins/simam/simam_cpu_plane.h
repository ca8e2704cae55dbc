// SimAM of one fp32 plane. Included by simam_cpu.cpp inside a namespace, once per instruction
// set, hence no include guard (the functions are the same; each copy is vectorised for its target).

// exp(a) for a <= 0, vectorisable, ~1 ulp: Cody-Waite reduction a = k ln2 + r, |r| <= ln2/2,
// then the classic degree-7 expf polynomial. NaN propagates (every comparison with it is false);
// a < -87 clamps so 2^k stays a normal float.
inline float exp_nonpositive(float a) {
    a = a < -87.0f ? -87.0f : a;
    float k = a * 1.44269504f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
    k -= 12582912.0f;
    float r = a - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    // 2^k for integer k in [-126, 0]: k + 2^23 + 127 holds k + 127 in its low mantissa bits.
    const uint32_t biased = bits_of(k + 8388735.0f);
    return p * float_of(biased << 23);
}

// Sum of the lanes as a tree (log2(kLanes) dependent adds instead of kLanes: small planes, such
// as 7x7, are dominated by these fixed costs).
inline float fold_lanes(float (&acc)[kLanes]) {
    for (int width = kLanes / 2; width > 0; width /= 2)
        for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
    return acc[0];
}

// sum(x[i] - shift) in kLanes independent fp32 lanes per block, blocks merged in double.
// (shift = 0 gives the plain sum.) One accumulator array per loop keeps it a simple reduction
// that compilers vectorise along the lanes.
inline double shifted_sum(const float* x, int64_t n, float shift) {
    double total = 0.0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = std::min(kBlock, n - start);
        const float* p = x + start;
        float acc[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes)
            for (int j = 0; j < kLanes; ++j) acc[j] += p[i + j] - shift;
        float block = 0.0f;
        for (; i < len; ++i) block += p[i] - shift;
        total += block + fold_lanes(acc);
    }
    return total;
}

// sum((x[i] - shift)^2), same blocking.
inline double shifted_square_sum(const float* x, int64_t n, float shift) {
    double total = 0.0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = std::min(kBlock, n - start);
        const float* p = x + start;
        float acc[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes) {
            for (int j = 0; j < kLanes; ++j) {
                const float d = p[i + j] - shift;
                acc[j] += d * d;
            }
        }
        float block = 0.0f;
        for (; i < len; ++i) block += (p[i] - shift) * (p[i] - shift);
        total += block + fold_lanes(acc);
    }
    return total;
}

void simam_plane_f32(const float* x, float* y, const PlaneConstants& k) {
    const int64_t n = k.n;
    const float shift = static_cast<float>(shifted_sum(x, n, 0.0f) * k.inv_n);
    const double s1 = shifted_sum(x, n, shift);
    const double s2 = shifted_square_sum(x, n, shift);
    const double correction = s1 * k.inv_n;
    double m2 = s2 - s1 * correction;
    if (m2 < 0.0) m2 = 0.0;  // rounding only; NaN (from NaN/Inf input) stays NaN and poisons the plane
    const double variance = m2 * k.inv_divisor;
    const float inv_denominator = static_cast<float>(1.0 / (4.0 * (variance + k.e_lambda)));
    const float c = static_cast<float>(correction);
    // y may be x (in place): each element is read before it is written, in the same iteration,
    // so there is no loop-carried dependence; tell GCC, whose runtime alias check would
    // otherwise send exact aliasing down the scalar loop.
    SIMAM_IVDEP
    for (int64_t i = 0; i < n; ++i) {
        const float d = (x[i] - shift) - c;
        const float z = d * d * inv_denominator + 0.5f;
        y[i] = x[i] / (1.0f + exp_nonpositive(-z));
    }
}

#ifdef SIMAM_PLANE_F16C
// Hardware fp16 <-> fp32 (F16C, round to nearest even), 8 at a time; scalar tails.
inline void widen(const uint16_t* x, float* s, int64_t n, Half) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(s + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    for (; i < n; ++i) s[i] = Half::load(x[i]);
}
inline void narrow(const float* s, uint16_t* y, int64_t n, Half) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) y[i] = Half::store(s[i]);
}
#endif

template <class Type>
inline void widen(const uint16_t* x, float* s, int64_t n, Type) {
    for (int64_t i = 0; i < n; ++i) s[i] = Type::load(x[i]);
}
template <class Type>
inline void narrow(const float* s, uint16_t* y, int64_t n, Type) {
    for (int64_t i = 0; i < n; ++i) y[i] = Type::store(s[i]);
}

// fp16/bf16 plane: widen to the fp32 scratch, run the fp32 plane in place, narrow back.
template <class Type>
void simam_plane_16bit(const uint16_t* x, uint16_t* y, const PlaneConstants& k, float* scratch) {
    widen(x, scratch, k.n, Type{});
    simam_plane_f32(scratch, scratch, k);
    narrow(scratch, y, k.n, Type{});
}
