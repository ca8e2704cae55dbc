// SimAM forward on CUDA: one pass over HBM for every plane that fits on chip.
//
// Numerics (same as the CPU path): shift = fp32 mean; s1 = sum(x - shift), s2 = sum((x - shift)^2);
// c = s1 / P; M2 = s2 - s1 * c; y = x * sigmoid(((x - shift) - c)^2 / (4 (M2 / div + lambda)) + 0.5).
// x - shift is exact when |mean| >> std, so the statistics stay accurate there.
//
// Launch policy by plane size P = H*W (the plane lives in registers for the first three):
//   P <= 256            one warp per plane, cub::WarpReduce          (7x7, 14x14)
//   P <= 16384          one block per plane, cub::BlockReduce        (28x28 .. 128x128)
//   P >  16384, scratch several blocks per plane: kernel 1 writes per-chunk (shift, c, M2),
//                       kernel 2 merges each plane's chunks (Chan), kernel 3 writes y
//                                                                    (1024x1024 ...)
//   P >  16384, none    one block per plane, three sweeps over global memory (L2)
// Grids stride over planes, so N*C in the millions needs no grid.y; every element index is int64.
//
// The fused epilogue (simam.h: z = act(y * scale[c] + bias[c] + residual)) is applied where each
// path writes y, in fp32, with one rounding to the storage type. Every kernel takes it as a
// template flag: without it (EPI = false) the kernels are the plain SimAM ones, not a register
// or a branch more.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include "simam.h"
#include "simam_cuda_common.cuh"
#include "simam_internal.h"

namespace {

using simam_detail::kChunkPerBlock;

constexpr int kWarp = 32;
constexpr int kWarpKernelThreads = 256;
constexpr int64_t kMaxGrid = int64_t{1} << 20;  // grid-stride beyond this many blocks

// Element conversions, 128-bit packs, the SimAM formula: shared with simam_cuda_nhwc.cu.
using simam_cuda::from_f32;
using simam_cuda::inverse_denominator;
using simam_cuda::Pack;
using simam_cuda::simam_value;
using simam_cuda::to_f32;

struct SumPair {
    __device__ __forceinline__ float2 operator()(const float2& a, const float2& b) const {
        return make_float2(a.x + b.x, a.y + b.y);
    }
};

// ---- the epilogue ------------------------------------------------------------------------------
template <typename T>
struct Epilogue {
    const T* scale;     // C elements, or NULL (then bias is NULL too)
    const T* bias;
    const T* residual;  // x's shape, or NULL
    int64_t channels;   // plane p is channel p % C
    int activation;     // simam_activation
};

// One plane's share of the epilogue: its channel's scale and bias, its residual plane.
template <typename T>
struct PlaneEpilogue {
    float scale, bias;
    const T* residual;  // the plane's first element, or NULL
    int activation;
};

template <bool EPI, typename T>
__device__ __forceinline__ PlaneEpilogue<T> plane_epilogue(const Epilogue<T>& e, int64_t plane, int64_t plane_size) {
    PlaneEpilogue<T> pe{1.0f, 0.0f, nullptr, SIMAM_ACTIVATION_NONE};
    if (EPI) {
        const int64_t c = plane % e.channels;
        if (e.scale != nullptr) {
            pe.scale = to_f32(e.scale[c]);
            pe.bias = to_f32(e.bias[c]);
        }
        if (e.residual != nullptr) pe.residual = e.residual + plane * plane_size;
        pe.activation = e.activation;
    }
    return pe;
}

// act(y * scale + bias + residual) in fp32. ReLU keeps a NaN (fmaxf would drop it), as the CPU.
// SiLU divides with __fdividef (2 ulp): an IEEE division is a call into a slow path whose ABI
// made the block and sweep kernels spill on sm_80/sm_90; its one difference, 0 instead of a
// denormal-sized -1e-37 once z < -87, is far below any bound.
template <typename T>
__device__ __forceinline__ float finish(float y, float residual, const PlaneEpilogue<T>& pe) {
    const float z = y * pe.scale + pe.bias + residual;
    if (pe.activation == SIMAM_ACTIVATION_RELU) return z < 0.0f ? 0.0f : z;
    if (pe.activation == SIMAM_ACTIVATION_SILU) return __fdividef(z, 1.0f + expf(-z));
    return z;
}

// ---- registers <-> memory: thread t owns packs t, t+THREADS, ... of a span of `len` elements ---
template <typename T, int THREADS, int ITEMS, int VEC>
__device__ __forceinline__ void load_span(const T* src, int len, float (&v)[ITEMS]) {
    constexpr int PACKS = ITEMS / VEC;
#pragma unroll
    for (int k = 0; k < PACKS; ++k) {
        const int first = (threadIdx.x % THREADS + k * THREADS) * VEC;
        if (first < len) {  // len % VEC == 0 when VEC > 1, so the whole pack is inside
            const Pack<T, VEC> p = reinterpret_cast<const Pack<T, VEC>*>(src)[first / VEC];
#pragma unroll
            for (int j = 0; j < VEC; ++j) v[k * VEC + j] = to_f32(p.v[j]);
        } else {
#pragma unroll
            for (int j = 0; j < VEC; ++j) v[k * VEC + j] = 0.0f;
        }
    }
}

// The span's output; with EPI, finished by the plane's epilogue (`residual`: the span's first
// residual element, or NULL).
template <typename T, int THREADS, int ITEMS, int VEC, bool EPI>
__device__ __forceinline__ void store_span(T* dst, int len, const float (&v)[ITEMS], float shift,
                                           float correction, float inv_denominator, const PlaneEpilogue<T>& pe,
                                           const T* residual) {
    constexpr int PACKS = ITEMS / VEC;
#pragma unroll
    for (int k = 0; k < PACKS; ++k) {
        const int first = (threadIdx.x % THREADS + k * THREADS) * VEC;
        if (first < len) {
            Pack<T, VEC> p;
            if (EPI) {
                Pack<T, VEC> r;
                if (residual != nullptr) r = reinterpret_cast<const Pack<T, VEC>*>(residual)[first / VEC];
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float y = simam_value(v[k * VEC + j], shift, correction, inv_denominator);
                    p.v[j] = from_f32<T>(finish(y, residual != nullptr ? to_f32(r.v[j]) : 0.0f, pe));
                }
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j)
                    p.v[j] = from_f32<T>(simam_value(v[k * VEC + j], shift, correction, inv_denominator));
            }
            reinterpret_cast<Pack<T, VEC>*>(dst)[first / VEC] = p;
        }
    }
}

// sum(x - shift), sum((x - shift)^2) over this thread's valid elements.
template <int THREADS, int ITEMS, int VEC>
__device__ __forceinline__ float2 shifted_sums(const float (&v)[ITEMS], int len, float shift) {
    constexpr int PACKS = ITEMS / VEC;
    float2 acc = make_float2(0.0f, 0.0f);
#pragma unroll
    for (int k = 0; k < PACKS; ++k) {
        const int first = (threadIdx.x % THREADS + k * THREADS) * VEC;
        if (first < len) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float d = v[k * VEC + j] - shift;
                acc.x += d;
                acc.y += d * d;
            }
        }
    }
    return acc;
}

template <int ITEMS>
__device__ __forceinline__ float sum_of(const float (&v)[ITEMS]) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) s += v[i];  // padding slots hold 0
    return s;
}

// ---- small planes: one warp per plane --------------------------------------------------------
template <typename T, int ITEMS, bool EPI>
__global__ void __launch_bounds__(kWarpKernelThreads)
    simam_warp_kernel(const T* x, T* y, int64_t planes, int plane_size, float e_lambda, float inv_divisor,
                      Epilogue<T> epi) {
    constexpr int kWarps = kWarpKernelThreads / kWarp;
    using Reduce1 = cub::WarpReduce<float>;
    using Reduce2 = cub::WarpReduce<float2>;
    union WarpTemp {  // one union per warp: warps never share bytes
        typename Reduce1::TempStorage r1;
        typename Reduce2::TempStorage r2;
    };
    __shared__ WarpTemp temp[kWarps];
    const int warp = threadIdx.x / kWarp;
    // Every lane of a warp takes the same planes, so the shuffles below see full warps.
    for (int64_t plane = int64_t{blockIdx.x} * kWarps + warp; plane < planes;
         plane += int64_t{gridDim.x} * kWarps) {
        const T* src = x + plane * plane_size;
        float v[ITEMS];
        load_span<T, kWarp, ITEMS, 1>(src, plane_size, v);
        const float total = __shfl_sync(0xffffffffu, Reduce1(temp[warp].r1).Sum(sum_of(v)), 0);
        const float shift = total / static_cast<float>(plane_size);
        __syncwarp();  // temp[warp] is reused as r2
        float2 sums = Reduce2(temp[warp].r2).Reduce(shifted_sums<kWarp, ITEMS, 1>(v, plane_size, shift), SumPair());
        sums.x = __shfl_sync(0xffffffffu, sums.x, 0);
        sums.y = __shfl_sync(0xffffffffu, sums.y, 0);
        __syncwarp();  // and as r1 by the next plane
        const float correction = sums.x / static_cast<float>(plane_size);
        const float inv_den = inverse_denominator(sums.y - sums.x * correction, inv_divisor, e_lambda);
        const PlaneEpilogue<T> pe = plane_epilogue<EPI>(epi, plane, plane_size);
        store_span<T, kWarp, ITEMS, 1, EPI>(y + plane * plane_size, plane_size, v, shift, correction, inv_den, pe,
                                            pe.residual);
    }
}

// ---- block-wide statistics of a span held in registers ---------------------------------------
// Writes (shift, correction, M2) of the span, identical in every thread. Uses and releases the
// block's shared memory (ends with a barrier, so the caller may reuse it).
template <int THREADS, int ITEMS, int VEC>
struct BlockStats {
    using Reduce1 = cub::BlockReduce<float, THREADS>;
    using Reduce2 = cub::BlockReduce<float2, THREADS>;
    struct Shared {
        union {
            typename Reduce1::TempStorage r1;
            typename Reduce2::TempStorage r2;
        } temp;
        float shift;
        float2 sums;
    };

    __device__ static float3 compute(Shared& sh, const float (&v)[ITEMS], int len) {
        const float total = Reduce1(sh.temp.r1).Sum(sum_of(v));
        if (threadIdx.x == 0) sh.shift = total / static_cast<float>(len);
        __syncthreads();  // publishes shift; temp.r1 is free for temp.r2
        const float shift = sh.shift;
        const float2 sums = Reduce2(sh.temp.r2).Reduce(shifted_sums<THREADS, ITEMS, VEC>(v, len, shift), SumPair());
        if (threadIdx.x == 0) sh.sums = sums;
        __syncthreads();  // publishes sums
        const float2 s = sh.sums;
        const float correction = s.x / static_cast<float>(len);
        __syncthreads();  // everyone has read sh.*: the next call may overwrite it
        return make_float3(shift, correction, s.y - s.x * correction);
    }
};

// ---- medium planes: one block per plane, plane in registers ---------------------------------
// With the epilogue, one block per SM is the floor ptxas must allow (minBlocks 1): otherwise, to
// keep two blocks resident, it spilled a few registers (the 512-thread kernel on sm_80, the chunk
// kernel on sm_75, the sweep on sm_80). Without it the bounds are as before (0: no floor given).
template <typename T, int THREADS, int ITEMS, int VEC, bool EPI>
__global__ void __launch_bounds__(THREADS, EPI ? 1 : 0)
    simam_block_kernel(const T* x, T* y, int64_t planes, int plane_size, float e_lambda, float inv_divisor,
                       Epilogue<T> epi) {
    using Stats = BlockStats<THREADS, ITEMS, VEC>;
    __shared__ typename Stats::Shared shared;
    for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
        float v[ITEMS];
        load_span<T, THREADS, ITEMS, VEC>(x + plane * plane_size, plane_size, v);
        const float3 st = Stats::compute(shared, v, plane_size);
        const PlaneEpilogue<T> pe = plane_epilogue<EPI>(epi, plane, plane_size);
        store_span<T, THREADS, ITEMS, VEC, EPI>(y + plane * plane_size, plane_size, v, st.x, st.y,
                                                inverse_denominator(st.z, inv_divisor, e_lambda), pe, pe.residual);
    }
}

// ---- huge planes with scratch: chunk statistics, then Chan merge + output --------------------
constexpr int kChunkThreads = 512;
constexpr int kChunkItems = static_cast<int>(kChunkPerBlock / kChunkThreads);  // 32

template <typename T, int VEC>
__global__ void __launch_bounds__(kChunkThreads)
    simam_chunk_stats_kernel(const T* x, float4* partials, int64_t planes, int64_t plane_size, int64_t chunks) {
    using Stats = BlockStats<kChunkThreads, kChunkItems, VEC>;
    __shared__ typename Stats::Shared shared;
    for (int64_t job = blockIdx.x; job < planes * chunks; job += gridDim.x) {
        const int64_t plane = job / chunks, chunk = job % chunks;
        const int64_t start = chunk * kChunkPerBlock;
        const int len = static_cast<int>(min(kChunkPerBlock, plane_size - start));
        float v[kChunkItems];
        load_span<T, kChunkThreads, kChunkItems, VEC>(x + plane * plane_size + start, len, v);
        const float3 st = Stats::compute(shared, v, len);
        if (threadIdx.x == 0) partials[job] = make_float4(st.x, st.y, st.z, 0.0f);
    }
}

// Chan's merge of the chunk partials of one plane (one block per plane), relative to chunk 0's
// shift K:  delta_b = (shift_b - K) + c_b = mean_b - K,  mu = sum n_b delta_b / n,
//           M2 = sum M2_b + n_b (delta_b - mu)^2.
// The plane's result (K, mu, 1 / (4 (M2/div + lambda))) overwrites the plane's first partial.
__global__ void __launch_bounds__(kChunkThreads)
    simam_chunk_merge_kernel(float4* partials, int64_t planes, int64_t plane_size, int64_t chunks, float e_lambda,
                             float inv_divisor) {
    using Reduce = cub::BlockReduce<float, kChunkThreads>;
    __shared__ typename Reduce::TempStorage temp;
    __shared__ float s_value;
    for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
        float4* part = partials + plane * chunks;
        const float reference = part[0].x;
        float local = 0.0f;
        for (int64_t b = threadIdx.x; b < chunks; b += kChunkThreads) {
            const float4 pb = part[b];
            const float n_b = static_cast<float>(min(kChunkPerBlock, plane_size - b * kChunkPerBlock));
            local += n_b * ((pb.x - reference) + pb.y);
        }
        float total = Reduce(temp).Sum(local);
        if (threadIdx.x == 0) s_value = total / static_cast<float>(plane_size);
        __syncthreads();
        const float mu = s_value;
        __syncthreads();  // s_value and temp are reused below
        local = 0.0f;
        for (int64_t b = threadIdx.x; b < chunks; b += kChunkThreads) {
            const float4 pb = part[b];
            const float n_b = static_cast<float>(min(kChunkPerBlock, plane_size - b * kChunkPerBlock));
            const float gap = (pb.x - reference) + pb.y - mu;
            local += pb.z + n_b * gap * gap;
        }
        total = Reduce(temp).Sum(local);
        // Every thread's reads of part[] happened before this reduction's barrier, so thread 0
        // may now overwrite part[0].
        if (threadIdx.x == 0) {
            part[0] = make_float4(reference, mu, inverse_denominator(total, inv_divisor, e_lambda), 0.0f);
        }
        __syncthreads();  // temp and s_value are reused by the next plane
    }
}

template <typename T, int VEC, bool EPI>
__global__ void __launch_bounds__(kChunkThreads, EPI ? 1 : 0)  // as simam_block_kernel
    simam_chunk_apply_kernel(const T* x, T* y, const float4* partials, int64_t planes, int64_t plane_size,
                             int64_t chunks, Epilogue<T> epi) {
    for (int64_t job = blockIdx.x; job < planes * chunks; job += gridDim.x) {
        const int64_t plane = job / chunks, chunk = job % chunks;
        const float4 st = partials[plane * chunks];  // (K, mu, inverse denominator) from the merge
        const int64_t start = chunk * kChunkPerBlock;
        const int len = static_cast<int>(min(kChunkPerBlock, plane_size - start));
        float v[kChunkItems];
        load_span<T, kChunkThreads, kChunkItems, VEC>(x + plane * plane_size + start, len, v);
        const PlaneEpilogue<T> pe = plane_epilogue<EPI>(epi, plane, plane_size);
        store_span<T, kChunkThreads, kChunkItems, VEC, EPI>(y + plane * plane_size + start, len, v, st.x, st.y, st.z,
                                                            pe, pe.residual != nullptr ? pe.residual + start : nullptr);
    }
}

// ---- huge planes without scratch: one block per plane, three sweeps over global memory -------
constexpr int kSweepThreads = 1024;

template <typename T, bool EPI>
__global__ void __launch_bounds__(kSweepThreads, EPI ? 1 : 0)  // as simam_block_kernel
    simam_sweep_kernel(const T* x, T* y, int64_t planes, int64_t plane_size, float e_lambda, float inv_divisor,
                       Epilogue<T> epi) {
    using Reduce1 = cub::BlockReduce<float, kSweepThreads>;
    using Reduce2 = cub::BlockReduce<float2, kSweepThreads>;
    __shared__ union {
        typename Reduce1::TempStorage r1;
        typename Reduce2::TempStorage r2;
    } temp;
    __shared__ float s_shift;
    __shared__ float2 s_sums;
    for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
        const T* src = x + plane * plane_size;
        T* dst = y + plane * plane_size;
        float local = 0.0f;
        for (int64_t i = threadIdx.x; i < plane_size; i += kSweepThreads) local += to_f32(src[i]);
        const float total = Reduce1(temp.r1).Sum(local);
        if (threadIdx.x == 0) s_shift = total / static_cast<float>(plane_size);
        __syncthreads();
        const float shift = s_shift;
        float2 acc = make_float2(0.0f, 0.0f);
        for (int64_t i = threadIdx.x; i < plane_size; i += kSweepThreads) {
            const float d = to_f32(src[i]) - shift;
            acc.x += d;
            acc.y += d * d;
        }
        const float2 sums = Reduce2(temp.r2).Reduce(acc, SumPair());
        if (threadIdx.x == 0) s_sums = sums;
        __syncthreads();
        const float2 s = s_sums;
        const float correction = s.x / static_cast<float>(plane_size);
        const float inv_den = inverse_denominator(s.y - s.x * correction, inv_divisor, e_lambda);
        const PlaneEpilogue<T> pe = plane_epilogue<EPI>(epi, plane, plane_size);
        // Each element is read and written by the same thread, so y == x is safe.
        for (int64_t i = threadIdx.x; i < plane_size; i += kSweepThreads) {
            float out = simam_value(to_f32(src[i]), shift, correction, inv_den);
            if (EPI) out = finish(out, pe.residual != nullptr ? to_f32(pe.residual[i]) : 0.0f, pe);
            dst[i] = from_f32<T>(out);
        }
        __syncthreads();  // s_shift, s_sums, temp are reused by the next plane
    }
}

// ---- host side --------------------------------------------------------------------------------
struct Launch {
    int64_t planes;
    int64_t plane_size;
    float e_lambda;
    float inv_divisor;
    cudaStream_t stream;
};

unsigned grid_for(int64_t jobs) { return static_cast<unsigned>(jobs < kMaxGrid ? jobs : kMaxGrid); }

template <typename T, int ITEMS, bool EPI>
void launch_warp(const T* x, T* y, const Launch& l, const Epilogue<T>& epi) {
    constexpr int64_t kWarps = kWarpKernelThreads / kWarp;
    simam_warp_kernel<T, ITEMS, EPI>
        <<<grid_for((l.planes + kWarps - 1) / kWarps), kWarpKernelThreads, 0, l.stream>>>(
            x, y, l.planes, static_cast<int>(l.plane_size), l.e_lambda, l.inv_divisor, epi);
}

template <typename T, int THREADS, int ITEMS, bool EPI>
void launch_block(const T* x, T* y, const Launch& l, bool vectorised, const Epilogue<T>& epi) {
    constexpr int VEC = 16 / sizeof(T);
    const int n = static_cast<int>(l.plane_size);
    if (vectorised)
        simam_block_kernel<T, THREADS, ITEMS, VEC, EPI><<<grid_for(l.planes), THREADS, 0, l.stream>>>(
            x, y, l.planes, n, l.e_lambda, l.inv_divisor, epi);
    else
        simam_block_kernel<T, THREADS, ITEMS, 1, EPI><<<grid_for(l.planes), THREADS, 0, l.stream>>>(
            x, y, l.planes, n, l.e_lambda, l.inv_divisor, epi);
}

template <typename T, int VEC, bool EPI>
cudaError_t launch_chunks(const T* x, T* y, float4* partials, const Launch& l, const Epilogue<T>& epi) {
    const int64_t chunks = simam_detail::chunks_per_plane(l.plane_size);
    const unsigned grid = grid_for(l.planes * chunks);
    simam_chunk_stats_kernel<T, VEC><<<grid, kChunkThreads, 0, l.stream>>>(x, partials, l.planes, l.plane_size, chunks);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    simam_chunk_merge_kernel<<<grid_for(l.planes), kChunkThreads, 0, l.stream>>>(partials, l.planes, l.plane_size,
                                                                                 chunks, l.e_lambda, l.inv_divisor);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    simam_chunk_apply_kernel<T, VEC, EPI><<<grid, kChunkThreads, 0, l.stream>>>(x, y, partials, l.planes,
                                                                                l.plane_size, chunks, epi);
    return cudaGetLastError();
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, bool EPI>
cudaError_t dispatch(const void* xv, void* yv, const Launch& l, void* workspace, size_t workspace_bytes,
                     const Epilogue<T>& epi) {
    const T* x = static_cast<const T*>(xv);
    T* y = static_cast<T*>(yv);
    constexpr int VEC = 16 / sizeof(T);
    const int64_t n = l.plane_size;
    // The residual is read in packs at y's offsets: it must be aligned like x and y.
    const bool aligned = aligned16(x) && aligned16(y) && (epi.residual == nullptr || aligned16(epi.residual));
    const bool vectorised = aligned && n % VEC == 0;
    if (n <= 32) launch_warp<T, 1, EPI>(x, y, l, epi);
    else if (n <= 64) launch_warp<T, 2, EPI>(x, y, l, epi);
    else if (n <= 128) launch_warp<T, 4, EPI>(x, y, l, epi);
    else if (n <= 256) launch_warp<T, 8, EPI>(x, y, l, epi);
    else if (n <= 1024) launch_block<T, 128, 8, EPI>(x, y, l, vectorised, epi);
    else if (n <= 4096) launch_block<T, 256, 16, EPI>(x, y, l, vectorised, epi);
    else if (n <= simam_detail::kOnChipMaxPlane) launch_block<T, 512, 32, EPI>(x, y, l, vectorised, epi);
    else {
        const size_t needed = static_cast<size_t>(l.planes * simam_detail::chunks_per_plane(n)) *
                              simam_detail::kWorkspaceFloatsPerChunk * sizeof(float);
        const bool have_scratch = workspace != nullptr && workspace_bytes >= needed && aligned16(workspace);
        if (have_scratch) {
            float4* partials = static_cast<float4*>(workspace);
            return vectorised ? launch_chunks<T, VEC, EPI>(x, y, partials, l, epi)
                              : launch_chunks<T, 1, EPI>(x, y, partials, l, epi);
        }
        simam_sweep_kernel<T, EPI><<<grid_for(l.planes), kSweepThreads, 0, l.stream>>>(x, y, l.planes, n, l.e_lambda,
                                                                                     l.inv_divisor, epi);
    }
    return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch_nchw(const simam_problem& p, const void* x, void* y, const Launch& l, void* workspace,
                          size_t workspace_bytes) {
    const Epilogue<T> epi{static_cast<const T*>(p.scale), static_cast<const T*>(p.bias),
                          static_cast<const T*>(p.residual), p.C, p.activation};
    const bool fused = p.scale != nullptr || p.residual != nullptr || p.activation != SIMAM_ACTIVATION_NONE;
    return fused ? dispatch<T, true>(x, y, l, workspace, workspace_bytes, epi)
                 : dispatch<T, false>(x, y, l, workspace, workspace_bytes, epi);
}

}  // namespace

extern "C" size_t simam_run_cuda_workspace_size(const simam_problem* problem) {
    if (problem == nullptr) return 0;
    if (problem->layout == SIMAM_LAYOUT_NHWC) {
        // Pure arithmetic on any input, like simam_cuda_workspace_size: shapes the launch refuses
        // (empty, or past 64-bit indexing) need no scratch, and are kept from the products below.
        const simam_problem& p = *problem;
        if (p.N <= 0 || p.C <= 0 || p.H <= 0 || p.W <= 0) return 0;
        const int64_t limit = INT64_MAX / 4;
        if (p.C > limit / p.N || p.H > limit / (p.N * p.C) || p.W > limit / (p.N * p.C * p.H)) return 0;
        return simam_detail::cuda_nhwc_workspace_size(p);
    }
    return simam_cuda_workspace_size(problem->N, problem->C, problem->H, problem->W, problem->dtype);
}

extern "C" simam_status simam_run_cuda(const simam_problem* problem, const void* x, void* y, void* workspace,
                                       size_t workspace_bytes, void* stream) {
    const simam_status status = simam_problem_validate(problem, x, y);
    if (status != SIMAM_OK) return status;
    const simam_problem& p = *problem;
    if (p.layout == SIMAM_LAYOUT_NHWC) {
        return simam_detail::launch_cuda_nhwc(p, x, y, workspace, workspace_bytes, stream);
    }
    const int64_t plane_size = p.H * p.W;
    const Launch launch{p.N * p.C, plane_size, p.e_lambda,
                        static_cast<float>(1.0 / simam_detail::variance_divisor(plane_size, p.unbiased)),
                        static_cast<cudaStream_t>(stream)};
    // A sticky error from earlier work on this thread would be blamed on us: report it as such.
    const cudaError_t earlier = cudaGetLastError();
    cudaError_t err = earlier;
    if (earlier == cudaSuccess) {
        switch (p.dtype) {
            case SIMAM_FLOAT32: err = dispatch_nchw<float>(p, x, y, launch, workspace, workspace_bytes); break;
            case SIMAM_FLOAT16: err = dispatch_nchw<__half>(p, x, y, launch, workspace, workspace_bytes); break;
            case SIMAM_BFLOAT16:
                err = dispatch_nchw<__nv_bfloat16>(p, x, y, launch, workspace, workspace_bytes);
                break;
        }
    }
    if (err != cudaSuccess) {
        char msg[400];
        std::snprintf(msg, sizeof msg, "simam: CUDA error %s%s: %s", cudaGetErrorName(err),
                      earlier != cudaSuccess ? " (pending from earlier CUDA work)" : " launching the kernel",
                      cudaGetErrorString(err));
        return simam_detail::set_error(SIMAM_ERR_CUDA, msg);
    }
    return SIMAM_OK;
}

// The NCHW entry points without an epilogue: wrappers of simam_run_cuda.
extern "C" simam_status simam_forward_cuda_ws(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                              simam_dtype dtype, float e_lambda, int unbiased, void* workspace,
                                              size_t workspace_bytes, void* stream) {
    const simam_problem problem = simam_problem_make(N, C, H, W, dtype, e_lambda, unbiased);
    return simam_run_cuda(&problem, x, y, workspace, workspace_bytes, stream);
}

extern "C" simam_status simam_forward_cuda(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                           simam_dtype dtype, float e_lambda, int unbiased, void* stream) {
    return simam_forward_cuda_ws(x, y, N, C, H, W, dtype, e_lambda, unbiased, nullptr, 0, stream);
}

extern "C" int simam_has_cuda(void) { return 1; }
