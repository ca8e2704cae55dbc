// SimAM forward on CUDA for channel-last tensors: NHWC with a pixel stride S >= C (TensorRT's
// kHWC: S = C; kHWC8 / kHWC16: S = C rounded up to 8 / 16, the padding channels neither read nor
// written). Element (n, p, c) of the H*W = P pixels lives at x[(n * P + p) * S + c].
//
// The statistics are per (n, c) but channels are the contiguous axis, so a block takes one sample
// and a tile of CT channels: lanes_x threads across the tile (VEC channels each: 16-byte loads when
// C, S and every pointer allow, else one element) times 256 / lanes_x rows across the pixels.
// A warp therefore reads whole pixel rows of the tile (CT * sizeof(T) >= 32 bytes, one sector,
// where the channels allow). Per-channel sums are reduced across the rows with warp shuffles and
// then across the 8 warps through shared memory. Numerics are those of simam_cuda.cu: shifted
// sums s1 = sum(x - K), s2 = sum((x - K)^2), c = s1 / P, M2 = s2 - s1 * c, fp32 throughout; the
// fused epilogue z = act(y * scale[c] + bias[c] + residual) is one more fp32 step, one rounding.
//
// Paths, chosen per shape and device (plan_for):
//   tile     the sample's tile (P x CT elements) fits in shared memory (<= kTileBudget and the
//            device's opt-in limit): one read of x from global memory. Sweep 1 copies the tile to
//            shared memory and sums it (shift K = the exact fp32 mean, as in simam_cuda.cu), sweep 2
//            takes the shifted sums from shared memory, sweep 3 writes y (and reads the residual).
//   stream   it does not fit: two reads of x. K = the mean of the tile's first 256 / lanes_x
//            pixels; sweep 1 accumulates the shifted sums from global memory, sweep 2 writes y.
//            With scratch (cuda_nhwc_workspace_size) a plane of more than kChunkPixels pixels is
//            split over several blocks: one kernel writes per-chunk partial sums (all chunks of a
//            plane use the same K, so partials simply add), a second one adds them (in the same
//            order in every block) and writes its chunk of y.
// Every thread only ever touches the pixels p = ty (mod rows) of its own channels, in every sweep
// and every kernel, so y may equal x and the tile needs no barrier between sweeps.
//
// Which path the shapes of the networks take (plan_for; vectorised, H100 / A100: tile budget
// 100 KB; sm_86's 99 KB and sm_75's 64 KB opt-in limits halve CT at 56x56):
//   ResNet-50 at batch 32, fp16/bf16: 56x56 C 256: CT 16, 100 KB tile; 56x56 C 64: CT 8, 50 KB
//     (CT halves while the grid has fewer than 2 blocks per SM); 28x28, 14x14, 7x7     -> tile
//   ResNet-50 fp32 at 56x56: CT 8 (4 channels per thread) 100 KB, or CT 4, 50 KB       -> tile
//   ResNet-20 (CIFAR) at batch 64: 32x32, 16x16, 8x8 (C 16 / 32 / 64)                  -> tile
//   planes over ~6300 pixels (16 bytes per pixel at the narrowest vectorised tile), e.g.
//     96x96, 1024x1024; scalar accesses (C or the stride not a multiple of 16 bytes): over
//     ~51000 pixels in fp16, ~25000 in fp32                                             -> stream
// At batch 1 a sample has only C / CT tiles (ResNet-50 56x56 C 64 in fp16: 8 blocks): CT shrinks
// down to one 16-byte pack, and a shape with fewer tiles than SMs runs below the memory
// bandwidth (unmeasured).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "simam.h"
#include "simam_cuda_common.cuh"
#include "simam_internal.h"

namespace {

using simam_cuda::from_f32;
using simam_cuda::inverse_denominator;
using simam_cuda::Pack;
using simam_cuda::simam_value;
using simam_cuda::to_f32;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Blocks per SM the register allocation must allow (<= 128 registers). Without it ptxas aims at
// 64 registers and spills the 16-byte epilogue variants; 2 blocks is also what a 100 KB tile allows.
constexpr int kMinBlocks = 2;
constexpr int kMaxLanesX = 32;           // lanes across channels: a power of two, at most a warp
constexpr int kRowBytes = 32;            // aim for one 32-byte sector per pixel row of a tile
constexpr size_t kTileBudget = 100 * 1024;  // shared memory of one tile block (2 blocks / SM on H100)
constexpr int64_t kChunkPixels = 4096;   // pixels of one block of the multi-block stream path
constexpr int64_t kMaxGrid = int64_t{1} << 20;  // grid-stride beyond this many blocks

struct Geometry {
    int64_t samples, channels, pixels, stride;
    int64_t tiles;         // channel tiles per sample: ceil(C / CT)
    int64_t chunks;        // pixel chunks per tile (multi-block stream path), else 1
    int lanes_x;           // threads across the channels of a tile (power of two <= 32)
    float e_lambda, inv_divisor;
};

template <typename T>
struct Epilogue {
    const T* scale;  // scale and bias: both or neither (simam_problem_validate)
    const T* bias;
    const T* residual;
    int activation;  // simam_activation
};

// One block's job: sample n, channel tile, pixel chunk [first, end).
struct Job {
    int64_t n, tile, chunk, first, end;
};

__device__ __forceinline__ Job job_of(const Geometry& g, int64_t job) {
    Job j;
    j.chunk = job % g.chunks;
    const int64_t rest = job / g.chunks;
    j.tile = rest % g.tiles;
    j.n = rest / g.tiles;
    j.first = g.chunks == 1 ? 0 : j.chunk * kChunkPixels;
    j.end = g.chunks == 1 ? g.pixels : min(g.pixels, j.first + kChunkPixels);
    return j;
}

template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> load_pack(const T* p) {
    return *reinterpret_cast<const Pack<T, VEC>*>(p);
}

// Per-channel block totals of acc (this thread's VEC channels): returns, in thread t < CT, the
// sum over all rows of tile channel t. red holds kWarps * CT float2. Contains one barrier (after
// the writes to red); the caller must pass another before red is written again.
template <int VEC>
__device__ __forceinline__ float2 reduce_channels(float2 (&acc)[VEC], float2* red, int lanes_x, int tx, int ct) {
    // Lanes lanes_x apart hold the same channels (rows of the warp): fold them.
    for (int offset = 16; offset >= lanes_x; offset >>= 1) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            acc[j].x += __shfl_xor_sync(0xffffffffu, acc[j].x, offset);
            acc[j].y += __shfl_xor_sync(0xffffffffu, acc[j].y, offset);
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane < lanes_x) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) red[warp * ct + tx * VEC + j] = acc[j];
    }
    __syncthreads();
    float2 total = make_float2(0.0f, 0.0f);
    if (static_cast<int>(threadIdx.x) < ct) {
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
            total.x += red[w * ct + threadIdx.x].x;
            total.y += red[w * ct + threadIdx.x].y;
        }
    }
    return total;
}

// Statistics of tile channel t from its shift and shifted sums (s1, s2) over `pixels` pixels:
// (K, c, 1 / (4 (M2 / div + lambda))).
__device__ __forceinline__ float4 plane_stats(float shift, float2 sums, int64_t pixels, const Geometry& g) {
    const float correction = sums.x / static_cast<float>(pixels);
    return make_float4(shift, correction,
                       inverse_denominator(sums.y - sums.x * correction, g.inv_divisor, g.e_lambda), 0.0f);
}

// A thread's channel statistics (K, c, 1 / (4 (M2 / div + lambda))) as three register arrays: the
// fourth lane of the float4 in shared memory is not worth registers.
template <int VEC>
struct ChannelStats {
    float shift[VEC], correction[VEC], inv_den[VEC];

    __device__ __forceinline__ void load(const float4* stats, int first) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const float4 s = stats[first + j];
            shift[j] = s.x;
            correction[j] = s.y;
            inv_den[j] = s.z;
        }
    }
    __device__ __forceinline__ float value(float v, int j) const {
        return simam_value(v, shift[j], correction[j], inv_den[j]);
    }
};

// Per-thread view of the epilogue's per-channel operands.
template <typename T, int VEC, bool FUSED>
struct ChannelOperands {
    float scale[FUSED ? VEC : 1];
    float bias[FUSED ? VEC : 1];

    __device__ __forceinline__ void load(const Epilogue<T>& e, int64_t c, bool active) {
        if constexpr (FUSED) {
            if (active && e.scale != nullptr) {
                const Pack<T, VEC> s = load_pack<T, VEC>(e.scale + c);
                const Pack<T, VEC> b = load_pack<T, VEC>(e.bias + c);
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    scale[j] = to_f32(s.v[j]);
                    bias[j] = to_f32(b.v[j]);
                }
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    scale[j] = 1.0f;
                    bias[j] = 0.0f;
                }
            }
        }
    }
};

// y (and the epilogue) for one pack: x values v at element offset `at` of the tensor.
template <typename T, int VEC, bool FUSED>
__device__ __forceinline__ void write_pack(T* y, int64_t at, const Pack<T, VEC>& v, const ChannelStats<VEC>& st,
                                           const ChannelOperands<T, VEC, FUSED>& ops, const Epilogue<T>& e) {
    Pack<T, VEC> out;
    if constexpr (FUSED) {
        Pack<T, VEC> r;
        if (e.residual != nullptr) r = load_pack<T, VEC>(e.residual + at);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            float z = st.value(to_f32(v.v[j]), j) * ops.scale[j] + ops.bias[j];
            if (e.residual != nullptr) z += to_f32(r.v[j]);
            if (e.activation == SIMAM_ACTIVATION_RELU) z = z < 0.0f ? 0.0f : z;  // NaN stays NaN
            else if (e.activation == SIMAM_ACTIVATION_SILU) z = z / (1.0f + expf(-z));
            out.v[j] = from_f32<T>(z);
        }
    } else {
#pragma unroll
        for (int j = 0; j < VEC; ++j) out.v[j] = from_f32<T>(st.value(to_f32(v.v[j]), j));
    }
    *reinterpret_cast<Pack<T, VEC>*>(y + at) = out;
}

// Shared memory of a block: red [kWarps][CT] float2, stats [CT] float4, then (tile path) the
// tile [P][CT] of T. Every part is a multiple of 16 bytes.
__host__ __device__ constexpr size_t shared_bytes(int ct, int64_t tile_pixels, size_t elem) {
    return static_cast<size_t>(kWarps * ct) * sizeof(float2) + static_cast<size_t>(ct) * sizeof(float4) +
           (static_cast<size_t>(tile_pixels) * ct * elem + 15) / 16 * 16;
}

// ---- tile path: the sample's channel tile in shared memory, one read of x ---------------------
template <typename T, int VEC, bool FUSED>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    simam_nhwc_tile_kernel(const T* x, T* y, Geometry g, Epilogue<T> e) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ct = g.lanes_x * VEC;
    float2* red = reinterpret_cast<float2*>(smem);
    float4* stats = reinterpret_cast<float4*>(red + kWarps * ct);
    T* tile = reinterpret_cast<T*>(stats + ct);
    const int tx = threadIdx.x & (g.lanes_x - 1);
    const int ty = threadIdx.x / g.lanes_x;
    const int rows = kThreads / g.lanes_x;
    const int pixels = static_cast<int>(g.pixels);  // the tile fits in shared memory
    for (int64_t job = blockIdx.x; job < g.samples * g.tiles; job += gridDim.x) {
        const Job jb = job_of(g, job);
        const int64_t c = jb.tile * ct + tx * VEC;  // this thread's first channel
        const bool active = c < g.channels;         // VEC > 1 only when C % VEC == 0
        const int64_t base = jb.n * g.pixels * g.stride + c;
        T* mine = tile + tx * VEC;

        // Sweep 1: global -> shared, plain sums for the shift (the fp32 mean).
        float2 acc[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[j] = make_float2(0.0f, 0.0f);
        if (active) {
#pragma unroll 4
            for (int p = ty; p < pixels; p += rows) {
                const Pack<T, VEC> v = load_pack<T, VEC>(x + base + static_cast<int64_t>(p) * g.stride);
                *reinterpret_cast<Pack<T, VEC>*>(mine + p * ct) = v;
#pragma unroll
                for (int j = 0; j < VEC; ++j) acc[j].x += to_f32(v.v[j]);
            }
        }
        float2 total = reduce_channels<VEC>(acc, red, g.lanes_x, tx, ct);
        if (static_cast<int>(threadIdx.x) < ct)
            stats[threadIdx.x] = make_float4(total.x / static_cast<float>(g.pixels), 0.0f, 0.0f, 0.0f);
        __syncthreads();  // publishes the shifts; red is free again
        float shift[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) shift[j] = stats[tx * VEC + j].x;

        // Sweep 2: shifted sums from shared memory (this thread's own pixels: no barrier needed).
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[j] = make_float2(0.0f, 0.0f);
        if (active) {
            for (int p = ty; p < pixels; p += rows) {
                const Pack<T, VEC> v = *reinterpret_cast<const Pack<T, VEC>*>(mine + p * ct);
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float d = to_f32(v.v[j]) - shift[j];
                    acc[j].x += d;
                    acc[j].y += d * d;
                }
            }
        }
        total = reduce_channels<VEC>(acc, red, g.lanes_x, tx, ct);
        if (static_cast<int>(threadIdx.x) < ct)
            stats[threadIdx.x] = plane_stats(stats[threadIdx.x].x, total, g.pixels, g);
        __syncthreads();  // publishes the statistics
        ChannelStats<VEC> st;
        st.load(stats, tx * VEC);

        // Sweep 3: y from shared memory (+ epilogue). The next job's first writes to red and
        // stats come after a barrier every thread reaches only once it has read them here.
        ChannelOperands<T, VEC, FUSED> ops;
        ops.load(e, c, active);
        if (active) {
            for (int p = ty; p < pixels; p += rows) {
                const Pack<T, VEC> v = *reinterpret_cast<const Pack<T, VEC>*>(mine + p * ct);
                write_pack<T, VEC, FUSED>(y, base + static_cast<int64_t>(p) * g.stride, v, st, ops, e);
            }
        }
    }
}

// ---- stream path: two reads of x ----------------------------------------------------------------
// The shift of the tile's channels: the mean of its first `rows` pixels (pixel ty for thread ty),
// the same in every block of a sample's tile. Leaves it in stats[t].x and in shift[]; ends with
// a barrier.
template <typename T, int VEC>
__device__ __forceinline__ void stream_shift(const T* x, int64_t base, bool active, const Geometry& g, int tx, int ty,
                                             int rows, float2* red, float4* stats, float (&shift)[VEC]) {
    const int ct = g.lanes_x * VEC;
    float2 acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = make_float2(0.0f, 0.0f);
    if (active && ty < g.pixels) {
        const Pack<T, VEC> v = load_pack<T, VEC>(x + base + ty * g.stride);
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[j].x = to_f32(v.v[j]);
    }
    const float2 total = reduce_channels<VEC>(acc, red, g.lanes_x, tx, ct);
    const int64_t counted = g.pixels < rows ? g.pixels : rows;
    if (static_cast<int>(threadIdx.x) < ct)
        stats[threadIdx.x] = make_float4(total.x / static_cast<float>(counted), 0.0f, 0.0f, 0.0f);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < VEC; ++j) shift[j] = stats[tx * VEC + j].x;
}

// Shifted sums of this thread's pixels in [first, end).
template <typename T, int VEC>
__device__ __forceinline__ void stream_sums(const T* x, int64_t base, bool active, const Geometry& g, int ty, int rows,
                                            int64_t first, int64_t end, const float (&shift)[VEC],
                                            float2 (&acc)[VEC]) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[j] = make_float2(0.0f, 0.0f);
    if (!active) return;
#pragma unroll 4
    for (int64_t p = first + ty; p < end; p += rows) {
        const Pack<T, VEC> v = load_pack<T, VEC>(x + base + p * g.stride);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const float d = to_f32(v.v[j]) - shift[j];
            acc[j].x += d;
            acc[j].y += d * d;
        }
    }
}

template <typename T, int VEC, bool FUSED>
__device__ __forceinline__ void stream_write(const T* x, T* y, int64_t base, bool active, const Geometry& g, int ty,
                                             int rows, int64_t first, int64_t end, const ChannelStats<VEC>& st,
                                             const ChannelOperands<T, VEC, FUSED>& ops, const Epilogue<T>& e) {
    if (!active) return;
#pragma unroll 4
    for (int64_t p = first + ty; p < end; p += rows) {
        const int64_t at = base + p * g.stride;
        write_pack<T, VEC, FUSED>(y, at, load_pack<T, VEC>(x + at), st, ops, e);
    }
}

// One block per (sample, tile): both sweeps.
template <typename T, int VEC, bool FUSED>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    simam_nhwc_stream_kernel(const T* x, T* y, Geometry g, Epilogue<T> e) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ct = g.lanes_x * VEC;
    float2* red = reinterpret_cast<float2*>(smem);
    float4* stats = reinterpret_cast<float4*>(red + kWarps * ct);
    const int tx = threadIdx.x & (g.lanes_x - 1);
    const int ty = threadIdx.x / g.lanes_x;
    const int rows = kThreads / g.lanes_x;
    for (int64_t job = blockIdx.x; job < g.samples * g.tiles; job += gridDim.x) {
        const Job jb = job_of(g, job);
        const int64_t c = jb.tile * ct + tx * VEC;
        const bool active = c < g.channels;
        const int64_t base = jb.n * g.pixels * g.stride + c;
        float shift[VEC];
        stream_shift<T, VEC>(x, base, active, g, tx, ty, rows, red, stats, shift);
        float2 acc[VEC];
        stream_sums<T, VEC>(x, base, active, g, ty, rows, 0, g.pixels, shift, acc);
        const float2 total = reduce_channels<VEC>(acc, red, g.lanes_x, tx, ct);
        if (static_cast<int>(threadIdx.x) < ct)
            stats[threadIdx.x] = plane_stats(stats[threadIdx.x].x, total, g.pixels, g);
        __syncthreads();
        ChannelStats<VEC> st;
        st.load(stats, tx * VEC);
        ChannelOperands<T, VEC, FUSED> ops;
        ops.load(e, c, active);
        stream_write<T, VEC, FUSED>(x, y, base, active, g, ty, rows, 0, g.pixels, st, ops, e);
    }
}

// Multi-block stream path, kernel 1: per-chunk partial sums. Scratch: partials[(n*C + c) * chunks
// + chunk] (float2), then shifts[n*C + c] (written by chunk 0).
template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    simam_nhwc_chunk_sums_kernel(const T* x, float2* partials, float* shifts, Geometry g) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ct = g.lanes_x * VEC;
    float2* red = reinterpret_cast<float2*>(smem);
    float4* stats = reinterpret_cast<float4*>(red + kWarps * ct);
    const int tx = threadIdx.x & (g.lanes_x - 1);
    const int ty = threadIdx.x / g.lanes_x;
    const int rows = kThreads / g.lanes_x;
    for (int64_t job = blockIdx.x; job < g.samples * g.tiles * g.chunks; job += gridDim.x) {
        const Job jb = job_of(g, job);
        const int64_t c = jb.tile * ct + tx * VEC;
        const bool active = c < g.channels;
        const int64_t base = jb.n * g.pixels * g.stride + c;
        float shift[VEC];
        stream_shift<T, VEC>(x, base, active, g, tx, ty, rows, red, stats, shift);
        float2 acc[VEC];
        stream_sums<T, VEC>(x, base, active, g, ty, rows, jb.first, jb.end, shift, acc);
        const float2 total = reduce_channels<VEC>(acc, red, g.lanes_x, tx, ct);
        const int64_t channel = jb.tile * ct + threadIdx.x;
        if (static_cast<int>(threadIdx.x) < ct && channel < g.channels) {
            const int64_t plane = jb.n * g.channels + channel;
            partials[plane * g.chunks + jb.chunk] = total;
            if (jb.chunk == 0) shifts[plane] = stats[threadIdx.x].x;
        }
        __syncthreads();  // red and stats are reused by the next job
    }
}

// Multi-block stream path, kernel 2: every block adds its planes' partials (same order in every
// block, so all chunks of a plane use identical statistics) and writes its chunk.
template <typename T, int VEC, bool FUSED>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    simam_nhwc_chunk_apply_kernel(const T* x, T* y, const float2* partials, const float* shifts, Geometry g,
                                  Epilogue<T> e) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ct = g.lanes_x * VEC;
    float4* stats = reinterpret_cast<float4*>(smem + static_cast<size_t>(kWarps * ct) * sizeof(float2));
    const int tx = threadIdx.x & (g.lanes_x - 1);
    const int ty = threadIdx.x / g.lanes_x;
    const int rows = kThreads / g.lanes_x;
    for (int64_t job = blockIdx.x; job < g.samples * g.tiles * g.chunks; job += gridDim.x) {
        const Job jb = job_of(g, job);
        const int64_t channel = jb.tile * ct + threadIdx.x;
        if (static_cast<int>(threadIdx.x) < ct) {
            float4 st = make_float4(0.0f, 0.0f, 0.0f, 0.0f);  // channels past C: never used
            if (channel < g.channels) {
                const int64_t plane = jb.n * g.channels + channel;
                float2 total = make_float2(0.0f, 0.0f);
                for (int64_t b = 0; b < g.chunks; ++b) {
                    const float2 part = partials[plane * g.chunks + b];
                    total.x += part.x;
                    total.y += part.y;
                }
                st = plane_stats(shifts[plane], total, g.pixels, g);
            }
            stats[threadIdx.x] = st;
        }
        __syncthreads();  // publishes the statistics
        const int64_t c = jb.tile * ct + tx * VEC;
        const bool active = c < g.channels;
        ChannelStats<VEC> st;
        st.load(stats, tx * VEC);
        __syncthreads();  // everyone has read stats: the next job may overwrite it
        ChannelOperands<T, VEC, FUSED> ops;
        ops.load(e, c, active);
        stream_write<T, VEC, FUSED>(x, y, jb.n * g.pixels * g.stride + c, active, g, ty, rows, jb.first, jb.end, st,
                                    ops, e);
    }
}

// ---- host side ----------------------------------------------------------------------------------
struct Plan {
    bool tile;         // else stream
    int lanes_x;
    int64_t tiles;
    size_t smem;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The path and tile width of a shape: lanes_x starts at one 32-byte sector per pixel row, is no
// wider than the channels, halves while the grid would leave SMs idle, then halves until the tile
// fits in shared memory; stream when it never fits.
Plan plan_for(int64_t N, int64_t C, int64_t P, size_t elem, int vec, size_t smem_limit, int sms) {
    int lanes = static_cast<int>(kRowBytes / (elem * vec));
    lanes = lanes < 1 ? 1 : (lanes > kMaxLanesX ? kMaxLanesX : lanes);
    while (lanes > 1 && int64_t{lanes / 2} * vec >= C) lanes /= 2;
    while (lanes > 1 && N * ceil_div(C, int64_t{lanes} * vec) < 2 * int64_t{sms}) lanes /= 2;
    const size_t budget = smem_limit < kTileBudget ? smem_limit : kTileBudget;
    for (int l = lanes; l >= 1; l /= 2) {
        const size_t bytes = shared_bytes(l * vec, P, elem);
        if (bytes <= budget) return Plan{true, l, ceil_div(C, int64_t{l} * vec), bytes};
    }
    return Plan{false, lanes, ceil_div(C, int64_t{lanes} * vec), shared_bytes(lanes * vec, 0, elem)};
}

unsigned grid_for(int64_t jobs) { return static_cast<unsigned>(jobs < kMaxGrid ? jobs : kMaxGrid); }

template <typename Kernel>
cudaError_t allow_shared(Kernel kernel, size_t bytes) {
    // Above 48 KB dynamic shared memory must be opted into per kernel.
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

size_t workspace_bytes_for(int64_t N, int64_t C, int64_t P) {
    if (P <= kChunkPixels) return 0;
    const int64_t planes = N * C;
    const size_t bytes = static_cast<size_t>(planes * ceil_div(P, kChunkPixels)) * sizeof(float2) +
                         static_cast<size_t>(planes) * sizeof(float);
    return (bytes + 15) / 16 * 16;
}

template <typename T, int VEC, bool FUSED>
cudaError_t launch(const T* x, T* y, Geometry g, const Epilogue<T>& e, const Plan& plan, void* workspace,
                   size_t workspace_bytes, cudaStream_t stream) {
    g.lanes_x = plan.lanes_x;
    g.tiles = plan.tiles;
    g.chunks = 1;
    cudaError_t err;
    if (plan.tile) {
        if ((err = allow_shared(simam_nhwc_tile_kernel<T, VEC, FUSED>, plan.smem)) != cudaSuccess) return err;
        simam_nhwc_tile_kernel<T, VEC, FUSED>
            <<<grid_for(g.samples * g.tiles), kThreads, plan.smem, stream>>>(x, y, g, e);
        return cudaGetLastError();
    }
    const size_t needed = workspace_bytes_for(g.samples, g.channels, g.pixels);
    if (needed > 0 && workspace != nullptr && workspace_bytes >= needed &&
        reinterpret_cast<uintptr_t>(workspace) % 16 == 0) {
        g.chunks = ceil_div(g.pixels, kChunkPixels);
        float2* partials = static_cast<float2*>(workspace);
        float* shifts = reinterpret_cast<float*>(partials + g.samples * g.channels * g.chunks);
        const unsigned grid = grid_for(g.samples * g.tiles * g.chunks);
        simam_nhwc_chunk_sums_kernel<T, VEC><<<grid, kThreads, plan.smem, stream>>>(x, partials, shifts, g);
        if ((err = cudaGetLastError()) != cudaSuccess) return err;
        simam_nhwc_chunk_apply_kernel<T, VEC, FUSED>
            <<<grid, kThreads, plan.smem, stream>>>(x, y, partials, shifts, g, e);
        return cudaGetLastError();
    }
    simam_nhwc_stream_kernel<T, VEC, FUSED><<<grid_for(g.samples * g.tiles), kThreads, plan.smem, stream>>>(x, y, g, e);
    return cudaGetLastError();
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
cudaError_t dispatch(const simam_problem& pr, const void* xv, void* yv, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream) {
    const T* x = static_cast<const T*>(xv);
    T* y = static_cast<T*>(yv);
    const Epilogue<T> e{static_cast<const T*>(pr.scale), static_cast<const T*>(pr.bias),
                        static_cast<const T*>(pr.residual), pr.activation};
    const int64_t stride = pr.channel_stride != 0 ? pr.channel_stride : pr.C;
    const int64_t pixels = pr.H * pr.W;
    Geometry g{};
    g.samples = pr.N;
    g.channels = pr.C;
    g.pixels = pixels;
    g.stride = stride;
    g.e_lambda = pr.e_lambda;
    g.inv_divisor = static_cast<float>(1.0 / simam_detail::variance_divisor(pixels, pr.unbiased));

    // 16-byte packs need every channel run and every pointer on a 16-byte boundary.
    constexpr int kVec = 16 / sizeof(T);
    const bool vectorised = pr.C % kVec == 0 && stride % kVec == 0 && aligned16(x) && aligned16(y) &&
                            (e.scale == nullptr || (aligned16(e.scale) && aligned16(e.bias))) &&
                            (e.residual == nullptr || aligned16(e.residual));
    const bool fused = e.scale != nullptr || e.residual != nullptr || e.activation != SIMAM_ACTIVATION_NONE;

    int device = 0, sms = 0, optin = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err != cudaSuccess) return err;
    const Plan plan = plan_for(pr.N, pr.C, pixels, sizeof(T), vectorised ? kVec : 1, static_cast<size_t>(optin), sms);
    if (vectorised) {
        return fused ? launch<T, kVec, true>(x, y, g, e, plan, workspace, workspace_bytes, stream)
                     : launch<T, kVec, false>(x, y, g, e, plan, workspace, workspace_bytes, stream);
    }
    return fused ? launch<T, 1, true>(x, y, g, e, plan, workspace, workspace_bytes, stream)
                 : launch<T, 1, false>(x, y, g, e, plan, workspace, workspace_bytes, stream);
}

}  // namespace

namespace simam_detail {

size_t cuda_nhwc_workspace_size(const simam_problem& problem) {
    const int64_t N = problem.N, C = problem.C, H = problem.H, W = problem.W;
    if (N <= 0 || C <= 0 || H <= 0 || W <= 0) return 0;
    // Shapes past 64-bit indexing are refused by the launch and need no scratch; checking first
    // keeps the products from overflowing (chunks <= H*W, so the scratch is below 12 * N*C*H*W).
    const int64_t limit = INT64_MAX / 16;
    if (C > limit / N || H > limit / (N * C) || W > limit / (N * C * H)) return 0;
    return workspace_bytes_for(N, C, H * W);
}

simam_status launch_cuda_nhwc(const simam_problem& problem, const void* x, void* y, void* workspace,
                              size_t workspace_bytes, void* stream) {
    // A sticky error from earlier work on this thread would be blamed on us: report it as such.
    const cudaError_t earlier = cudaGetLastError();
    cudaError_t err = earlier;
    const cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (earlier == cudaSuccess) {
        switch (problem.dtype) {
            case SIMAM_FLOAT32: err = dispatch<float>(problem, x, y, workspace, workspace_bytes, s); break;
            case SIMAM_FLOAT16: err = dispatch<__half>(problem, x, y, workspace, workspace_bytes, s); break;
            case SIMAM_BFLOAT16: err = dispatch<__nv_bfloat16>(problem, x, y, workspace, workspace_bytes, s); break;
        }
    }
    if (err != cudaSuccess) {
        char msg[400];
        std::snprintf(msg, sizeof msg, "simam: CUDA error %s%s: %s", cudaGetErrorName(err),
                      earlier != cudaSuccess ? " (pending from earlier CUDA work)" : " launching the NHWC kernel",
                      cudaGetErrorString(err));
        return set_error(SIMAM_ERR_CUDA, msg);
    }
    return SIMAM_OK;
}

}  // namespace simam_detail
