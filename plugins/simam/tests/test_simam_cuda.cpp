// The CUDA kernels' launch paths against the CPU kernel, as one small binary for compute-sanitizer
// (memcheck, racecheck, synccheck, initcheck: scripts/gpu_acceptance.py) and CTest. Each shape picks
// one path of simam_cuda.cu: warp per plane, block per plane (vector and scalar loads), several
// blocks per plane with workspace, the no-workspace sweep; plus in place, an unaligned pointer and
// a non-default stream. Then the fused epilogue (simam_run_cuda: scale/bias, residual, activation)
// on each path against simam_run_cpu of the same problem, and NHWC through simam_run_cuda.
// Exit status: the number of failures; 77 (CTest: skipped) without a GPU.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "simam.h"
#include "simam_internal.h"

namespace {

int g_failures = 0;

void check(bool ok, const char* what, int64_t n, int64_t c, int64_t h, int64_t w) {
    if (!ok) {
        std::printf("FAIL: %s (shape %lldx%lldx%lldx%lld)\n", what, static_cast<long long>(n),
                    static_cast<long long>(c), static_cast<long long>(h), static_cast<long long>(w));
        ++g_failures;
    }
}

bool cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::printf("FAIL: %s: %s\n", what, cudaGetErrorString(e));
        ++g_failures;
        return false;
    }
    return true;
}

// fp32 only: the fp16/bf16 paths share the reductions and are covered by tests/test_kernel_gpu.py.
void run_case(int64_t n, int64_t c, int64_t h, int64_t w, bool workspace, bool in_place, int offset,
              cudaStream_t stream) {
    const int64_t total = n * c * h * w;
    std::vector<float> x(static_cast<size_t>(total)), expected(x.size()), got(x.size());
    for (int64_t i = 0; i < total; ++i) x[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i)) * 3.0f + 0.5f;
    if (simam_forward_cpu(x.data(), expected.data(), n, c, h, w, SIMAM_FLOAT32, 1e-4f, 1) != SIMAM_OK) {
        check(false, simam_last_error(), n, c, h, w);
        return;
    }
    const size_t bytes = x.size() * sizeof(float);
    char* dx = nullptr;
    char* dy = nullptr;
    void* ws = nullptr;
    const size_t ws_bytes = workspace ? simam_cuda_workspace_size(n, c, h, w, SIMAM_FLOAT32) : 0;
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dx), bytes + 16), "cudaMalloc x")) return;
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dy), bytes + 16), "cudaMalloc y")) return;
    if (ws_bytes > 0 && !cuda_ok(cudaMalloc(&ws, ws_bytes), "cudaMalloc workspace")) return;
    float* xp = reinterpret_cast<float*>(dx + offset);
    float* yp = in_place ? xp : reinterpret_cast<float*>(dy + offset);
    cuda_ok(cudaMemcpyAsync(xp, x.data(), bytes, cudaMemcpyHostToDevice, stream), "copy in");
    const simam_status s =
        simam_forward_cuda_ws(xp, yp, n, c, h, w, SIMAM_FLOAT32, 1e-4f, 1, ws, ws_bytes, stream);
    check(s == SIMAM_OK, "launch", n, c, h, w);
    cuda_ok(cudaMemcpyAsync(got.data(), yp, bytes, cudaMemcpyDeviceToHost, stream), "copy out");
    cuda_ok(cudaStreamSynchronize(stream), "synchronize");
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        worst = std::fmax(worst, std::fabs(double(got[i]) - double(expected[i])) / (1.0 + std::fabs(double(expected[i]))));
    }
    // Both kernels accumulate in fp32 in different orders: agreement to a few ulps of the scale.
    check(worst < 1e-5, "CUDA and CPU results differ", n, c, h, w);
    cudaFree(dx);
    cudaFree(dy);
    if (ws) cudaFree(ws);
}

// ---- the fused epilogue, NCHW: simam_run_cuda against simam_run_cpu ---------------------------
struct EpilogueCase {
    int64_t n, c, h, w;
    simam_dtype dtype;
    bool affine, residual;
    int activation;
    bool workspace, in_place;
    int offset;  // bytes added to x, y and the residual (4: unaligned, scalar loads)
    simam_layout layout;     // NHWC: dispatched by simam_run_cuda to simam_cuda_nhwc.cu
    int64_t channel_stride;  // NHWC pixel stride (0 = C)
};

size_t element_size(simam_dtype t) { return t == SIMAM_FLOAT32 ? 4 : 2; }

void put(std::vector<unsigned char>& buf, simam_dtype t, size_t i, float v) {
    if (t == SIMAM_FLOAT32) {
        std::memcpy(&buf[i * 4], &v, 4);
        return;
    }
    const uint16_t h = t == SIMAM_FLOAT16 ? simam_detail::float_to_half(v) : simam_detail::float_to_bf16(v);
    std::memcpy(&buf[i * 2], &h, 2);
}

float get(const std::vector<unsigned char>& buf, simam_dtype t, size_t i) {
    if (t == SIMAM_FLOAT32) {
        float f;
        std::memcpy(&f, &buf[i * 4], 4);
        return f;
    }
    uint16_t h;
    std::memcpy(&h, &buf[i * 2], 2);
    return t == SIMAM_FLOAT16 ? simam_detail::half_to_float(h) : simam_detail::bf16_to_float(h);
}

void run_epilogue_case(const EpilogueCase& k, cudaStream_t stream) {
    const int64_t stride = k.channel_stride != 0 ? k.channel_stride : k.c;
    const size_t total = static_cast<size_t>(k.layout == SIMAM_LAYOUT_NHWC ? k.n * k.h * k.w * stride
                                                                          : k.n * k.c * k.h * k.w);
    const size_t es = element_size(k.dtype);
    const size_t bytes = total * es, cbytes = static_cast<size_t>(k.c) * es;
    // expected starts as zeros, like the device y (cudaMemset below): NHWC padding must stay 0.
    std::vector<unsigned char> x(bytes), r(bytes), scale(cbytes), bias(cbytes), expected(bytes), got(bytes);
    for (size_t i = 0; i < total; ++i) {
        put(x, k.dtype, i, std::sin(0.37f * static_cast<float>(i)) * 3.0f + 0.5f);
        put(r, k.dtype, i, std::cos(0.11f * static_cast<float>(i)) * 2.0f);
    }
    for (size_t i = 0; i < static_cast<size_t>(k.c); ++i) {
        put(scale, k.dtype, i, 0.5f + 0.25f * static_cast<float>(i % 5) - (i % 3 == 0 ? 1.5f : 0.0f));
        put(bias, k.dtype, i, 0.1f * static_cast<float>(i % 7) - 0.3f);
    }
    simam_problem p = simam_problem_make(k.n, k.c, k.h, k.w, k.dtype, 1e-4f, 1);
    p.scale = k.affine ? scale.data() : nullptr;
    p.bias = k.affine ? bias.data() : nullptr;
    p.residual = k.residual ? r.data() : nullptr;
    p.activation = k.activation;
    p.layout = k.layout;
    p.channel_stride = k.channel_stride;
    if (k.in_place) expected = x;
    if (simam_run_cpu(&p, x.data(), expected.data()) != SIMAM_OK) {
        check(false, simam_last_error(), k.n, k.c, k.h, k.w);
        return;
    }
    char* dx = nullptr;
    char* dy = nullptr;
    char* dr = nullptr;
    void* dscale = nullptr;
    void* dbias = nullptr;
    void* ws = nullptr;
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dx), bytes + 16), "cudaMalloc x")) return;
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dy), bytes + 16), "cudaMalloc y")) return;
    if (!cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dr), bytes + 16), "cudaMalloc residual")) return;
    if (!cuda_ok(cudaMalloc(&dscale, cbytes), "cudaMalloc scale")) return;
    if (!cuda_ok(cudaMalloc(&dbias, cbytes), "cudaMalloc bias")) return;
    void* xp = dx + k.offset;
    void* yp = k.in_place ? xp : dy + k.offset;
    void* rp = dr + k.offset;
    simam_problem dp = p;
    dp.scale = k.affine ? dscale : nullptr;
    dp.bias = k.affine ? dbias : nullptr;
    dp.residual = k.residual ? rp : nullptr;
    const size_t ws_bytes = k.workspace ? simam_run_cuda_workspace_size(&dp) : 0;
    if (ws_bytes > 0 && !cuda_ok(cudaMalloc(&ws, ws_bytes), "cudaMalloc workspace")) return;
    cuda_ok(cudaMemsetAsync(dy, 0, bytes + 16, stream), "clear y");
    cuda_ok(cudaMemcpyAsync(xp, x.data(), bytes, cudaMemcpyHostToDevice, stream), "copy x");
    cuda_ok(cudaMemcpyAsync(rp, r.data(), bytes, cudaMemcpyHostToDevice, stream), "copy residual");
    cuda_ok(cudaMemcpyAsync(dscale, scale.data(), cbytes, cudaMemcpyHostToDevice, stream), "copy scale");
    cuda_ok(cudaMemcpyAsync(dbias, bias.data(), cbytes, cudaMemcpyHostToDevice, stream), "copy bias");
    const simam_status s = simam_run_cuda(&dp, xp, yp, ws, ws_bytes, stream);
    check(s == SIMAM_OK, "simam_run_cuda launch", k.n, k.c, k.h, k.w);
    cuda_ok(cudaMemcpyAsync(got.data(), yp, bytes, cudaMemcpyDeviceToHost, stream), "copy out");
    cuda_ok(cudaStreamSynchronize(stream), "synchronize");
    double worst = 0.0;
    for (size_t i = 0; i < total; ++i) {
        const double g = get(got, k.dtype, i), e = get(expected, k.dtype, i);
        double bound = 1e-5 * (1.0 + std::fabs(e));
        // fp16/bf16: the two fp32 results may round to neighbouring values: 2 ULP of the type.
        if (k.dtype != SIMAM_FLOAT32) {
            const int mantissa = k.dtype == SIMAM_FLOAT16 ? 10 : 7;
            const double ulp = std::ldexp(1.0, std::max(std::ilogb(std::fmax(std::fabs(e), 1e-4)), -14) - mantissa);
            bound += 2.0 * ulp;
        }
        const double err = std::fabs(g - e) / bound;
        if (!(err <= worst)) worst = err;  // a NaN fails
    }
    char what[160];
    std::snprintf(what, sizeof what,
                  "epilogue layout %d stride %lld dtype %d affine %d residual %d act %d workspace %d in_place %d "
                  "offset %d: CUDA and CPU differ (worst %.3g of the bound)",
                  static_cast<int>(k.layout), static_cast<long long>(k.channel_stride), static_cast<int>(k.dtype),
                  k.affine, k.residual, k.activation, k.workspace, k.in_place, k.offset, worst);
    check(worst <= 1.0, what, k.n, k.c, k.h, k.w);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dr);
    cudaFree(dscale);
    cudaFree(dbias);
    if (ws) cudaFree(ws);
}

}  // namespace

int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("SKIP: no CUDA device\n");
        return 77;
    }
    cudaStream_t stream = nullptr;
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream")) return 1;
    run_case(4, 16, 7, 7, false, false, 0, nullptr);     // warp per plane
    run_case(2, 8, 14, 14, false, true, 0, stream);      // warp per plane, in place
    run_case(2, 8, 28, 28, false, false, 0, stream);     // block per plane, vector loads
    run_case(1, 3, 113, 97, false, false, 4, stream);    // block per plane, unaligned: scalar loads
    run_case(1, 2, 129, 129, true, false, 0, stream);    // several blocks per plane (workspace)
    run_case(1, 2, 129, 129, true, true, 0, stream);     // the same, in place
    run_case(1, 2, 129, 129, false, false, 0, stream);   // no workspace: the sweep fallback
    const EpilogueCase epilogue_cases[] = {
        // n, c, h, w, dtype, affine, residual, act, workspace, in_place, offset, layout, channel stride
        // warp
        {4, 16, 7, 7, SIMAM_FLOAT32, true, true, SIMAM_ACTIVATION_RELU, false, false, 0, SIMAM_LAYOUT_NCHW, 0},
        // warp, in place
        {2, 8, 14, 14, SIMAM_FLOAT16, true, false, SIMAM_ACTIVATION_SILU, false, true, 0, SIMAM_LAYOUT_NCHW, 0},
        // block, vector
        {2, 8, 28, 28, SIMAM_FLOAT16, false, true, SIMAM_ACTIVATION_RELU, false, false, 0, SIMAM_LAYOUT_NCHW, 0},
        // block, in place
        {2, 8, 28, 28, SIMAM_FLOAT32, true, true, SIMAM_ACTIVATION_NONE, false, true, 0, SIMAM_LAYOUT_NCHW, 0},
        // block, bf16
        {2, 8, 28, 28, SIMAM_BFLOAT16, true, true, SIMAM_ACTIVATION_SILU, false, false, 0, SIMAM_LAYOUT_NCHW, 0},
        // block, scalar
        {1, 3, 113, 97, SIMAM_FLOAT32, true, true, SIMAM_ACTIVATION_SILU, false, false, 4, SIMAM_LAYOUT_NCHW, 0},
        // chunks
        {1, 2, 129, 129, SIMAM_FLOAT32, true, true, SIMAM_ACTIVATION_RELU, true, false, 0, SIMAM_LAYOUT_NCHW, 0},
        // chunks, in place
        {1, 2, 129, 129, SIMAM_FLOAT16, true, true, SIMAM_ACTIVATION_SILU, true, true, 0, SIMAM_LAYOUT_NCHW, 0},
        // sweep
        {1, 2, 129, 129, SIMAM_FLOAT32, false, true, SIMAM_ACTIVATION_SILU, false, false, 0, SIMAM_LAYOUT_NCHW, 0},
        // sweep, scalar
        {1, 2, 129, 129, SIMAM_BFLOAT16, true, false, SIMAM_ACTIVATION_RELU, false, false, 4, SIMAM_LAYOUT_NCHW, 0},
        // NHWC through simam_run_cuda (the kernels' own test is test_simam_cuda_nhwc.cpp): padding
        // channels (y starts zeroed on both sides) must stay untouched.
        {2, 5, 7, 9, SIMAM_FLOAT16, true, true, SIMAM_ACTIVATION_RELU, false, false, 0, SIMAM_LAYOUT_NHWC, 8},
        {2, 5, 7, 9, SIMAM_BFLOAT16, true, false, SIMAM_ACTIVATION_SILU, false, true, 0, SIMAM_LAYOUT_NHWC, 16},
        {1, 3, 129, 129, SIMAM_FLOAT32, true, true, SIMAM_ACTIVATION_SILU, true, false, 0, SIMAM_LAYOUT_NHWC, 0},
    };
    for (const EpilogueCase& k : epilogue_cases) run_epilogue_case(k, stream);
    cudaStreamDestroy(stream);
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "ok", g_failures);
    return g_failures;
}
