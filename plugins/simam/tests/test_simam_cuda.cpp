// The CUDA kernels' launch paths against the CPU kernel, as one small binary for compute-sanitizer
// (memcheck, racecheck, synccheck, initcheck: scripts/gpu_acceptance.py) and CTest. Each shape picks
// one path of simam_cuda.cu: warp per plane, block per plane (vector and scalar loads), several
// blocks per plane with workspace, the no-workspace sweep; plus in place, an unaligned pointer and
// a non-default stream. Exit status: the number of failures; 77 (CTest: skipped) without a GPU.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "simam.h"

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
    cudaStreamDestroy(stream);
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "ok", g_failures);
    return g_failures;
}
