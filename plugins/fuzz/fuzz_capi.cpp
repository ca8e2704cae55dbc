// libFuzzer target: the kernel library's C API (simam.h) on the CPU: shapes, dtype codes, e_lambda
// bit patterns, plane ranges, in place, null pointers. Beyond "no sanitizer report" it checks the
// contract of simam.h: bad arguments are refused with a message and touch no memory; good ones
// succeed; in place equals out of place bit for bit; a plane range writes only its planes.
//
// Input layout (little endian; scripts/fuzz_seeds.py writes the seeds):
//   u8 dtype code (low 2 bits) | u8 flags | f32 e_lambda bits | 4 x i16 dims (or 4 x i64 with kRawDims)
//   | 2 x i64 plane range (with kPlanes) | element bytes (repeated to fill the tensor)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "simam.h"

namespace {

enum Flags : uint8_t {
    kUnbiased = 1,
    kInPlace = 2,
    kPlanes = 4,   // simam_forward_cpu_planes with a fuzzed range
    kRawDims = 8,  // 64-bit dimensions: overflow and negative values (never allocated)
    kNullX = 16,
    kNullY = 32,
};

// Small enough that one case runs in microseconds; big planes are the kernel tests' job.
constexpr int64_t kMaxElements = 1 << 14;

size_t element_size(int dtype) { return dtype == SIMAM_FLOAT32 ? 4 : 2; }

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_capi: contract broken: %s (last error: '%s')\n", what, simam_last_error());
    std::abort();
}

// What simam.h promises to refuse, whatever the buffers.
bool arguments_valid(bool null_ptr, const int64_t d[4], int dtype, float e_lambda, bool unbiased) {
    if (null_ptr) return false;
    for (int i = 0; i < 4; ++i)
        if (d[i] <= 0) return false;
    int64_t total = d[0];
    for (int i = 1; i < 4; ++i)
        if (__builtin_mul_overflow(total, d[i], &total)) return false;
    if (total > INT64_MAX / 4) return false;
    if (dtype < 0 || dtype > 2) return false;
    if (!std::isfinite(e_lambda) || !(e_lambda > 0.0f)) return false;
    return !(unbiased && d[2] * d[3] == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    simam_fuzz::Input in(data, size);
    // 0-2 are the dtypes, 3 an unsupported code; wider values are not representable in the C++
    // enum (UBSan -fsanitize=enum) and cannot come from a C++ caller.
    const int dtype = in.take<uint8_t>() & 3;
    const uint8_t flags = in.take<uint8_t>();
    const float e_lambda = in.take<float>();
    int64_t d[4];
    for (int64_t& v : d) v = (flags & kRawDims) ? in.take<int64_t>() : in.take<int16_t>();
    int64_t first = 0, end = 0;
    if (flags & kPlanes) {
        first = in.take<int64_t>();
        end = in.take<int64_t>();
    }
    const bool unbiased = flags & kUnbiased;
    const bool null_ptr = flags & (kNullX | kNullY);

    // Pure arithmetic over any shape: must not overflow (UBSan) whatever it is given.
    (void)simam_cuda_workspace_size(d[0], d[1], d[2], d[3], static_cast<simam_dtype>(dtype));

    const bool valid = arguments_valid(null_ptr, d, dtype, e_lambda, unbiased);
    const int64_t total = valid ? d[0] * d[1] * d[2] * d[3] : 0;
    if (valid && total > kMaxElements) return 0;  // legal but too big to allocate here

    // Invalid arguments get a one-element buffer: a refusal must not read or write it.
    const size_t bytes = valid ? static_cast<size_t>(total) * element_size(dtype) : 4;
    std::vector<uint8_t> x(bytes), y(bytes, 0xA5), y_in_place;
    for (size_t i = 0; i < bytes; ++i) x[i] = in.remaining() ? in.rest()[i % in.remaining()] : uint8_t(i * 37);
    const void* xp = (flags & kNullX) ? nullptr : x.data();
    void* yp = (flags & kNullY) ? nullptr : y.data();
    const auto type = static_cast<simam_dtype>(dtype);

    simam_status status;
    const int64_t planes = valid ? d[0] * d[1] : 0;
    const bool range_ok = !(flags & kPlanes) || (first >= 0 && end >= first && end <= planes);
    if (flags & kPlanes) {
        status = simam_forward_cpu_planes(xp, yp, d[0], d[1], d[2], d[3], type, e_lambda, unbiased, first, end);
    } else {
        status = simam_forward_cpu(xp, yp, d[0], d[1], d[2], d[3], type, e_lambda, unbiased);
    }
    if (!valid || !range_ok) {
        if (status == SIMAM_OK) fail("invalid arguments were accepted");
        if (simam_last_error()[0] == '\0') fail("a refusal came without a message");
        return 0;
    }
    if (status != SIMAM_OK) fail("valid arguments were refused");

    const size_t plane_bytes = static_cast<size_t>(d[2] * d[3]) * element_size(dtype);
    if (flags & kPlanes) {
        // Planes outside [first, end) keep the sentinel.
        for (int64_t p = 0; p < planes; ++p) {
            if (p >= first && p < end) continue;
            for (size_t b = 0; b < plane_bytes; ++b)
                if (y[static_cast<size_t>(p) * plane_bytes + b] != 0xA5) fail("a plane outside the range was written");
        }
    }
    if (flags & kInPlace) {
        y_in_place = x;
        if (flags & kPlanes) {
            status = simam_forward_cpu_planes(y_in_place.data(), y_in_place.data(), d[0], d[1], d[2], d[3], type,
                                              e_lambda, unbiased, first, end);
        } else {
            status = simam_forward_cpu(y_in_place.data(), y_in_place.data(), d[0], d[1], d[2], d[3], type, e_lambda,
                                       unbiased);
        }
        if (status != SIMAM_OK) fail("in place was refused where out of place ran");
        const int64_t lo = (flags & kPlanes) ? first : 0, hi = (flags & kPlanes) ? end : planes;
        const size_t from = static_cast<size_t>(lo) * plane_bytes, to = static_cast<size_t>(hi) * plane_bytes;
        if (std::memcmp(y_in_place.data() + from, y.data() + from, to - from) != 0)
            fail("in place differs from out of place");
    }
    return 0;
}
