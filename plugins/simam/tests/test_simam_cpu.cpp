// C++ tests of the kernel library's C API (CPU path) and its fp16/bf16 conversions. No framework:
// each check prints what failed; the exit status is the number of failures (CTest: simam_kernel_cpu).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "simam.h"
#include "simam_internal.h"

namespace {

int g_failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAIL: %s\n", what);
        ++g_failures;
    }
}

bool last_error_mentions(const char* words) { return std::strstr(simam_last_error(), words) != nullptr; }

void test_refusals() {
    float buf[16] = {};
    using S = simam_status;
    S s = simam_forward_cpu(nullptr, buf, 1, 1, 2, 2, SIMAM_FLOAT32, 1e-4f, 1);
    check(s == SIMAM_ERR_INVALID_ARGUMENT && last_error_mentions("non-null"), "null x is refused");
    s = simam_forward_cpu(buf, buf, 1, 0, 2, 2, SIMAM_FLOAT32, 1e-4f, 1);
    check(s == SIMAM_ERR_INVALID_ARGUMENT && last_error_mentions("C=0"), "C = 0 is refused, naming C");
    // 3: the one unknown code a C++ caller can hold in simam_dtype (larger values are undefined
    // behaviour in C++, flagged by clang's -fsanitize=enum in make sanitize).
    s = simam_forward_cpu(buf, buf, 1, 1, 2, 2, static_cast<simam_dtype>(3), 1e-4f, 1);
    check(s == SIMAM_ERR_UNSUPPORTED_DTYPE, "dtype 3 is refused");
    s = simam_forward_cpu(buf, buf, 1, 1, 2, 2, SIMAM_FLOAT32, -1.0f, 1);
    check(s == SIMAM_ERR_INVALID_ARGUMENT && last_error_mentions("e_lambda"), "e_lambda < 0 is refused");
    s = simam_forward_cpu(buf, buf, 1, 1, 2, 2, SIMAM_FLOAT32, NAN, 1);
    check(s == SIMAM_ERR_INVALID_ARGUMENT, "e_lambda NaN is refused");
    s = simam_forward_cpu(buf, buf, 1, 1, 1, 1, SIMAM_FLOAT32, 1e-4f, 1);
    check(s == SIMAM_ERR_INVALID_ARGUMENT && last_error_mentions("H*W-1"), "1x1 unbiased plane is refused");
    s = simam_forward_cpu(buf, buf, 1, 1, 1, 1, SIMAM_FLOAT32, 1e-4f, 0);
    check(s == SIMAM_OK && simam_last_error()[0] == '\0', "success clears the last error");
    check(std::string(simam_status_string(SIMAM_ERR_CUDA)) == "CUDA error", "status strings");
}

void test_last_error_is_thread_local() {
    float buf[4] = {};
    simam_forward_cpu(buf, buf, 1, 1, 2, 2, SIMAM_FLOAT32, 0.0f, 1);  // fails on this thread
    std::string other = "unset";
    std::thread([&] { other = simam_last_error(); }).join();
    check(other.empty(), "another thread does not see this thread's error");
    check(last_error_mentions("e_lambda"), "this thread still sees it");
}

void test_values_and_planes() {
    // Plane 0: {1, 2, 3, 4}, plane 1 has a NaN. Expected values from the formula in double.
    std::vector<float> x = {1, 2, 3, 4, 5, NAN, 7, 8}, y(8);
    check(simam_forward_cpu(x.data(), y.data(), 1, 2, 2, 2, SIMAM_FLOAT32, 0.5f, 1) == SIMAM_OK, "runs");
    const double mean = 2.5, var = 5.0 / 3.0;  // sum of squared deviations 5, divided by 4 - 1
    bool close = true;
    for (int i = 0; i < 4; ++i) {
        const double d = (x[i] - mean) * (x[i] - mean);
        const double want = x[i] / (1.0 + std::exp(-(d / (4.0 * (var + 0.5)) + 0.5)));
        close = close && std::fabs(y[i] - want) <= 1e-6 * std::fabs(want);
    }
    check(close, "plane 0 matches the formula");
    bool nan_plane = true;
    for (int i = 4; i < 8; ++i) nan_plane = nan_plane && std::isnan(y[i]);
    check(nan_plane, "a NaN makes its whole plane NaN");
    check(simam_forward_cpu(x.data(), x.data(), 1, 2, 2, 2, SIMAM_FLOAT32, 0.5f, 1) == SIMAM_OK &&
              std::memcmp(x.data(), y.data(), 4 * sizeof(float)) == 0,
          "in place equals out of place");
}

void test_half_conversions_exhaustively() {
    using namespace simam_detail;
    long bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {  // every half survives half -> float -> half
        const float f = half_to_float(static_cast<uint16_t>(h));
        if (!std::isnan(f) && float_to_half(f) != h) ++bad;
        if (std::isnan(f) != ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0)) ++bad;
    }
    check(bad == 0, "half -> float -> half is the identity on every non-NaN half");
    // float -> half rounds to nearest even: compare with the two neighbouring halves in double.
    bad = 0;
    for (uint64_t u = 0; u < (uint64_t{1} << 31); u += 4099) {
        const float f = float_of(static_cast<uint32_t>(u));
        if (std::isnan(f) || f > 65519.0f) continue;
        const uint16_t h = float_to_half(f);
        const double got = half_to_float(h);
        const double below = half_to_float(static_cast<uint16_t>(h - (h > 0 ? 1 : 0)));
        const double above = half_to_float(static_cast<uint16_t>(h + 1));
        const double err = std::fabs(got - f);
        const bool nearest = err <= std::fabs(below - f) && err <= std::fabs(above - f);
        const bool tie_even = (err != std::fabs(below - f) && err != std::fabs(above - f)) || (h & 1u) == 0;
        if (!nearest || !tie_even) ++bad;
    }
    check(bad == 0, "float -> half rounds to nearest, ties to even");
    check(float_to_half(1e6f) == 0x7c00u && float_to_half(-INFINITY) == 0xfc00u, "overflow -> inf");
}

void test_bf16_conversions() {
    using namespace simam_detail;
    check(float_to_bf16(1.0f) == 0x3f80u, "bf16(1)");
    check(float_to_bf16(float_of(0x3f808000u)) == 0x3f80u, "tie rounds to even (down)");
    check(float_to_bf16(float_of(0x3f818000u)) == 0x3f82u, "tie rounds to even (up)");
    check(float_to_bf16(float_of(0x3f808001u)) == 0x3f81u, "above the tie rounds up");
    check(std::isnan(bf16_to_float(float_to_bf16(NAN))), "NaN stays NaN");
    check(bf16_to_float(0x4049u) == float_of(0x40490000u), "bf16 -> float is a shift");
}

}  // namespace

int main() {
    test_refusals();
    test_last_error_is_thread_local();
    test_values_and_planes();
    test_half_conversions_exhaustively();
    test_bf16_conversions();
    std::printf("%s (%d failures)\n", g_failures == 0 ? "ok" : "FAILED", g_failures);
    return g_failures;
}
