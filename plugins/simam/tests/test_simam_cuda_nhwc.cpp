// The channel-last CUDA kernels (simam_cuda_nhwc.cu, through simam_run_cuda with layout NHWC) against
// the CPU path (simam_run_cpu, layout NHWC), as one small binary for compute-sanitizer
// (scripts/gpu_acceptance.py) and CTest: every dtype x pixel stride (kHWC = C, kHWC8, kHWC16) x
// epilogue x path (tile in shared memory, one block per plane streaming twice, several blocks per
// plane with workspace), vectorised and scalar accesses, in place, an unaligned pointer, a
// non-default stream. The padding channels of x and of the residual hold NaN (reading one poisons
// its channel's statistics) and those of y a sentinel that must survive.
// Exit status: 0 passed, 1 a check failed, 77 (CTest: skipped) without a GPU.
//
//   simam_kernel_cuda_nhwc_tests                 the checks
//   simam_kernel_cuda_nhwc_tests --bench FILE    NHWC fp16 at ResNet-50 shapes (batch 32) beside a
//                                                device-to-device copy of the same bytes, as JSON
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "simam.h"
#include "simam_internal.h"

namespace {

int g_failures = 0;

bool cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::printf("FAIL: %s: %s\n", what, cudaGetErrorString(e));
        ++g_failures;
        return false;
    }
    return true;
}

size_t elem_size(simam_dtype t) { return t == SIMAM_FLOAT32 ? 4 : 2; }
const char* dtype_name(simam_dtype t) {
    return t == SIMAM_FLOAT32 ? "fp32" : (t == SIMAM_FLOAT16 ? "fp16" : "bf16");
}

void put(std::vector<unsigned char>& buf, int64_t i, float v, simam_dtype t) {
    unsigned char* at = buf.data() + static_cast<size_t>(i) * elem_size(t);
    if (t == SIMAM_FLOAT32) {
        std::memcpy(at, &v, 4);
    } else {
        const uint16_t h = t == SIMAM_FLOAT16 ? simam_detail::float_to_half(v) : simam_detail::float_to_bf16(v);
        std::memcpy(at, &h, 2);
    }
}

float get(const std::vector<unsigned char>& buf, int64_t i, simam_dtype t) {
    const unsigned char* at = buf.data() + static_cast<size_t>(i) * elem_size(t);
    if (t == SIMAM_FLOAT32) {
        float v;
        std::memcpy(&v, at, 4);
        return v;
    }
    uint16_t h;
    std::memcpy(&h, at, 2);
    return t == SIMAM_FLOAT16 ? simam_detail::half_to_float(h) : simam_detail::bf16_to_float(h);
}

enum Epi { kNone, kAffine, kResidual, kRelu, kSilu, kAll };
const char* epi_name(Epi e) {
    static const char* names[] = {"none", "scale+bias", "residual", "relu", "silu", "scale+bias+residual+silu"};
    return names[e];
}

struct Case {
    int64_t n, c, h, w, stride;
    simam_dtype dtype;
    Epi epi;
    bool workspace;
    bool in_place;
    int offset;  // elements added to every device pointer (1: unaligned, scalar accesses)
    cudaStream_t stream;
};

// A device buffer with `offset` elements of headroom at the front.
struct Device {
    void* base = nullptr;
    ~Device() {
        if (base) cudaFree(base);
    }
    unsigned char* alloc(size_t bytes, size_t headroom) {
        if (!cuda_ok(cudaMalloc(&base, bytes + headroom + 16), "cudaMalloc")) return nullptr;
        return static_cast<unsigned char*>(base) + headroom;
    }
};

void run_case(const Case& k) {
    const simam_dtype t = k.dtype;
    const size_t es = elem_size(t);
    const int64_t pixels = k.h * k.w, count = k.n * pixels * k.stride;
    const size_t bytes = static_cast<size_t>(count) * es;
    char label[200];
    std::snprintf(label, sizeof label, "%s %lldx%lldx%lldx%lld stride %lld, %s%s%s%s", dtype_name(t),
                  static_cast<long long>(k.n), static_cast<long long>(k.c), static_cast<long long>(k.h),
                  static_cast<long long>(k.w), static_cast<long long>(k.stride), epi_name(k.epi),
                  k.workspace ? ", workspace" : "", k.in_place ? ", in place" : "", k.offset ? ", unaligned" : "");

    const float sentinel = 77.0f;  // exact in every dtype
    std::vector<unsigned char> x(bytes), res(bytes), y_init(bytes), scale(static_cast<size_t>(k.c) * es),
        bias(scale.size());
    for (int64_t i = 0; i < count; ++i) {
        const int64_t ch = i % k.stride;
        const bool pad = ch >= k.c;
        // Some channels far from 0 (|mean| >> std: the shifted sums matter), one constant channel.
        const float offset = ch % 4 == 1 ? 40.0f : 0.0f;
        const float xv = ch == 2 ? 1.5f : std::sin(0.37f * static_cast<float>(i)) * 3.0f + 0.25f + offset;
        put(x, i, pad ? NAN : xv, t);
        put(res, i, pad ? NAN : std::cos(0.11f * static_cast<float>(i)), t);
        put(y_init, i, sentinel, t);
    }
    for (int64_t ch = 0; ch < k.c; ++ch) {
        put(scale, ch, 0.5f + 0.1f * static_cast<float>(ch % 7), t);
        put(bias, ch, -0.3f + 0.05f * static_cast<float>(ch % 5), t);
    }

    simam_problem p = simam_problem_make(k.n, k.c, k.h, k.w, t, 1e-4f, 1);
    p.layout = SIMAM_LAYOUT_NHWC;
    p.channel_stride = k.stride;
    const bool affine = k.epi == kAffine || k.epi == kAll, residual = k.epi == kResidual || k.epi == kAll;
    p.activation = k.epi == kRelu ? SIMAM_ACTIVATION_RELU
                                  : (k.epi == kSilu || k.epi == kAll ? SIMAM_ACTIVATION_SILU : SIMAM_ACTIVATION_NONE);

    // The reference: the CPU path on host copies.
    std::vector<unsigned char> expected = k.in_place ? x : y_init;
    simam_problem host = p;
    host.scale = affine ? scale.data() : nullptr;
    host.bias = affine ? bias.data() : nullptr;
    host.residual = residual ? res.data() : nullptr;
    const void* host_x = k.in_place ? static_cast<const void*>(expected.data()) : x.data();
    if (simam_run_cpu(&host, host_x, expected.data()) != SIMAM_OK) {
        std::printf("FAIL: %s: CPU reference: %s\n", label, simam_last_error());
        ++g_failures;
        return;
    }

    const size_t head = static_cast<size_t>(k.offset) * es;
    Device dx, dy, dr, ds, db, dw;
    unsigned char* gx = dx.alloc(bytes, head);
    unsigned char* gy = k.in_place ? gx : dy.alloc(bytes, head);
    unsigned char* gr = residual ? dr.alloc(bytes, head) : nullptr;
    unsigned char* gs = affine ? ds.alloc(scale.size(), head) : nullptr;
    unsigned char* gb = affine ? db.alloc(bias.size(), head) : nullptr;
    if (!gx || !gy || (residual && !gr) || (affine && (!gs || !gb))) return;
    cudaStream_t s = k.stream;
    cuda_ok(cudaMemcpyAsync(gx, x.data(), bytes, cudaMemcpyHostToDevice, s), "copy x");
    if (!k.in_place) cuda_ok(cudaMemcpyAsync(gy, y_init.data(), bytes, cudaMemcpyHostToDevice, s), "copy y");
    if (residual) cuda_ok(cudaMemcpyAsync(gr, res.data(), bytes, cudaMemcpyHostToDevice, s), "copy residual");
    if (affine) {
        cuda_ok(cudaMemcpyAsync(gs, scale.data(), scale.size(), cudaMemcpyHostToDevice, s), "copy scale");
        cuda_ok(cudaMemcpyAsync(gb, bias.data(), bias.size(), cudaMemcpyHostToDevice, s), "copy bias");
    }
    p.scale = gs;
    p.bias = gb;
    p.residual = gr;
    const size_t ws_bytes = k.workspace ? simam_run_cuda_workspace_size(&p) : 0;
    if (k.workspace && ws_bytes == 0) {
        std::printf("FAIL: %s: no workspace asked for (the multi-block path is not exercised)\n", label);
        ++g_failures;
    }
    void* ws = ws_bytes ? dw.alloc(ws_bytes, 0) : nullptr;
    if (simam_run_cuda(&p, gx, gy, ws, ws_bytes, s) != SIMAM_OK) {
        std::printf("FAIL: %s: launch: %s\n", label, simam_last_error());
        ++g_failures;
        return;
    }
    std::vector<unsigned char> got(bytes);
    cuda_ok(cudaMemcpyAsync(got.data(), gy, bytes, cudaMemcpyDeviceToHost, s), "copy out");
    if (!cuda_ok(cudaStreamSynchronize(s), label)) return;

    // Both sides compute in fp32 in different orders and round once: fp32 agrees to a few ulps of
    // the scale, fp16 / bf16 to one ulp of the stored value.
    const double tol = t == SIMAM_FLOAT32 ? 2e-5 : (t == SIMAM_FLOAT16 ? 1e-3 : 8e-3);
    double worst = 0.0;
    int64_t worst_at = -1, pad_changed = 0;
    for (int64_t i = 0; i < count; ++i) {
        const double g = get(got, i, t), e = get(expected, i, t);
        if (i % k.stride >= k.c) {
            // In place the padding is x's NaN; otherwise y's sentinel. Either way untouched.
            if (std::memcmp(got.data() + i * es, expected.data() + i * es, es) != 0) ++pad_changed;
            continue;
        }
        const double err = std::isnan(g) != std::isnan(e) ? INFINITY
                           : std::isnan(g)                ? 0.0
                                                          : std::fabs(g - e) / (1.0 + std::fabs(e));
        if (err > worst) worst = err, worst_at = i;
    }
    if (!(worst <= tol)) {
        std::printf("FAIL: %s: CUDA and CPU differ by %.3g at element %lld (got %g, CPU %g)\n", label, worst,
                    static_cast<long long>(worst_at), get(got, worst_at, t), get(expected, worst_at, t));
        ++g_failures;
    }
    if (pad_changed) {
        std::printf("FAIL: %s: %lld padding elements written\n", label, static_cast<long long>(pad_changed));
        ++g_failures;
    }
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

void run_checks(cudaStream_t stream) {
    const simam_dtype dtypes[] = {SIMAM_FLOAT32, SIMAM_FLOAT16, SIMAM_BFLOAT16};
    const Epi all_epis[] = {kNone, kAffine, kResidual, kRelu, kSilu, kAll};
    int cases = 0;
    for (simam_dtype t : dtypes) {
        // Tile path, every stride x epilogue: C = 24 (16-byte packs in every dtype at strides 24 and
        // 32), C = 20 (fp16/bf16 scalar, fp32 packs), C = 3 (scalar; most of each pixel is padding).
        const int64_t shapes[][4] = {{2, 24, 14, 14}, {1, 20, 28, 28}, {3, 3, 7, 7}};
        for (const auto& sh : shapes) {
            int64_t strides[] = {sh[1], round_up(sh[1], 8), round_up(sh[1], 16)};
            for (int si = 0; si < 3; ++si) {
                if (si > 0 && strides[si] == strides[si - 1]) continue;
                for (Epi e : all_epis) {
                    run_case({sh[0], sh[1], sh[2], sh[3], strides[si], t, e, false, false, 0, stream});
                    ++cases;
                }
            }
        }
        // A ResNet-50 stage-1 plane: a tile of 8 (fp16/bf16) or 4 (fp32) channels takes ~50 KB, over
        // the 48 KB a block gets without opting in. One sample: compute-sanitizer's racecheck stays quick.
        for (Epi e : {kNone, kAll}) {
            run_case({1, 64, 56, 56, 64, t, e, false, false, 0, stream});
            ++cases;
        }
        // Planes too large for a tile: one block per plane (two reads), then several (workspace).
        for (bool ws : {false, true}) {
            for (Epi e : {kNone, kAll}) {
                run_case({1, 16, 128, 128, 16, t, e, ws, false, 0, stream});  // 16-byte packs
                run_case({1, 5, 256, 256, 8, t, e, ws, false, 0, stream});    // scalar, kHWC8
                cases += 2;
            }
        }
        // In place (tile, and several blocks per plane), an unaligned pointer, the default stream.
        run_case({2, 24, 14, 14, 32, t, kAll, false, true, 0, stream});
        run_case({1, 16, 128, 128, 16, t, kRelu, true, true, 0, stream});
        run_case({2, 24, 14, 14, 24, t, kAll, false, false, 1, stream});
        run_case({4, 32, 7, 7, 32, t, kNone, false, false, 0, nullptr});
        cases += 4;
    }
    std::printf("%d cases\n", cases);
}

// ---- --bench: NHWC fp16 at ResNet-50 shapes beside a device copy of the same bytes ----------------
float time_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, a, b);
    return ms;
}

template <typename F>
double median_ms(F&& body, cudaStream_t s, int reps) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    for (int i = 0; i < 3; ++i) body();  // warm-up
    std::vector<float> times;
    for (int i = 0; i < reps; ++i) {
        cudaEventRecord(a, s);
        body();
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        times.push_back(time_ms(a, b));
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

int run_bench(const char* path, cudaStream_t s) {
    // ResNet-50's four SimAM stages at batch 32 (C of the 3x3 convolution's output) and its first
    // stage at C = 256, plus ResNet-20's first stage at batch 64.
    const int64_t shapes[][4] = {{32, 64, 56, 56},  {32, 256, 56, 56}, {32, 128, 28, 28},
                                 {32, 256, 14, 14}, {32, 512, 7, 7},   {64, 16, 32, 32}};
    std::string json = "{\"schema\": \"simam-deploy/nhwc-kernel-bench/1\", \"dtype\": \"fp16\", \"rows\": [";
    int rows = 0;
    for (const auto& sh : shapes) {
        const int64_t n = sh[0], c = sh[1], h = sh[2], w = sh[3];
        const size_t bytes = static_cast<size_t>(n * c * h * w) * 2;
        Device dx, dy, dr, ds, db;
        unsigned char* x = dx.alloc(bytes, 0);
        unsigned char* y = dy.alloc(bytes, 0);
        unsigned char* r = dr.alloc(bytes, 0);
        unsigned char* sc = ds.alloc(static_cast<size_t>(c) * 2, 0);
        unsigned char* bi = db.alloc(static_cast<size_t>(c) * 2, 0);
        if (!x || !y || !r || !sc || !bi) return 1;
        cudaMemsetAsync(x, 0x3c, bytes, s);  // 0x3c3c: 1.06 in fp16, every element
        cudaMemsetAsync(r, 0x3c, bytes, s);
        cudaMemsetAsync(sc, 0x3c, static_cast<size_t>(c) * 2, s);
        cudaMemsetAsync(bi, 0, static_cast<size_t>(c) * 2, s);
        simam_problem p = simam_problem_make(n, c, h, w, SIMAM_FLOAT16, 1e-4f, 1);
        p.layout = SIMAM_LAYOUT_NHWC;
        simam_problem fused = p;
        fused.scale = sc;
        fused.bias = bi;
        fused.residual = r;
        fused.activation = SIMAM_ACTIVATION_RELU;
        bool ok = true;
        const double plain_ms =
            median_ms([&] { ok = ok && simam_run_cuda(&p, x, y, nullptr, 0, s) == SIMAM_OK; }, s, 50);
        const double fused_ms =
            median_ms([&] { ok = ok && simam_run_cuda(&fused, x, y, nullptr, 0, s) == SIMAM_OK; }, s, 50);
        const double copy_ms = median_ms([&] { cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, s); }, s, 50);
        if (!ok || !cuda_ok(cudaStreamSynchronize(s), "bench")) {
            std::printf("FAIL: bench %lldx%lldx%lldx%lld: %s\n", static_cast<long long>(n), static_cast<long long>(c),
                        static_cast<long long>(h), static_cast<long long>(w), simam_last_error());
            return 1;
        }
        char row[400];
        std::snprintf(row, sizeof row,
                      "%s{\"shape\": [%lld, %lld, %lld, %lld], \"layout\": \"NHWC\", \"simam_ms\": %.5f, "
                      "\"fused_relu_residual_affine_ms\": %.5f, \"copy_ms\": %.5f, \"fraction_of_copy\": %.4f}",
                      rows++ ? ", " : "", static_cast<long long>(n), static_cast<long long>(c),
                      static_cast<long long>(h), static_cast<long long>(w), plain_ms, fused_ms, copy_ms,
                      copy_ms / plain_ms);
        json += row;
        std::printf("NHWC fp16 %lldx%lldx%lldx%lld: simam %.4f ms, fused %.4f ms, copy %.4f ms (%.2f of copy)\n",
                    static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(h),
                    static_cast<long long>(w), plain_ms, fused_ms, copy_ms, copy_ms / plain_ms);
    }
    json += "]}\n";
    FILE* f = std::fopen(path, "w");
    if (!f || std::fputs(json.c_str(), f) < 0 || std::fclose(f) != 0) {
        std::printf("FAIL: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const bool bench = argc == 3 && std::strcmp(argv[1], "--bench") == 0;
    if (argc != 1 && !bench) {
        std::printf("usage: %s [--bench FILE.json]\n", argv[0]);
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("SKIP: no CUDA device\n");
        return 77;
    }
    cudaStream_t stream = nullptr;
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream")) return 1;
    int rc;
    if (bench) {
        rc = run_bench(argv[2], stream);
    } else {
        run_checks(stream);
        std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "ok", g_failures);
        rc = g_failures ? 1 : 0;
    }
    cudaStreamDestroy(stream);
    return rc;
}
