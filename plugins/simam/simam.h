/* SimAM forward: the one home of the math (CPU + CUDA), behind a small C API.
 *
 * For every plane (n, c) of a contiguous NCHW tensor X with P = H*W elements:
 *   mean = sum(x) / P
 *   d    = (x - mean)^2
 *   v    = sum(d) / (P - 1)        when unbiased != 0 (the paper)
 *        = sum(d) / P              when unbiased == 0 (a variant in public YOLO code)
 *   y    = x * sigmoid(d / (4 * (v + e_lambda)) + 0.5)
 * Statistics accumulate in fp32 whatever the storage type.
 *
 * Adapters (Python binding, TensorRT plugin, ONNX Runtime op) call only this header.
 * No function throws; each returns a status and, on failure, leaves a message readable
 * with simam_last_error() (thread-local).
 */
#ifndef SIMAM_SIMAM_H
#define SIMAM_SIMAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum simam_dtype {
    SIMAM_FLOAT32 = 0,
    SIMAM_FLOAT16 = 1,
    SIMAM_BFLOAT16 = 2
} simam_dtype;

typedef enum simam_status {
    SIMAM_OK = 0,
    SIMAM_ERR_INVALID_ARGUMENT = 1, /* bad shape, null pointer, e_lambda <= 0 or not finite */
    SIMAM_ERR_UNSUPPORTED_DTYPE = 2,
    SIMAM_ERR_CUDA = 3,             /* a CUDA call failed: the message holds cudaGetErrorString */
    SIMAM_ERR_NO_CUDA = 4,          /* this build has no CUDA kernels */
    SIMAM_ERR_INTERNAL = 5          /* out of host memory or a worker thread could not start */
} simam_status;

/* Run on the CPU. x and y are host pointers to N*C*H*W elements of `dtype`; y may equal x. */
simam_status simam_forward_cpu(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                               simam_dtype dtype, float e_lambda, int unbiased);

/* simam_forward_cpu for planes [first_plane, end_plane) of the N*C planes only, on the calling
 * thread (no worker pool). For adapters that bring their own thread pool (ONNX Runtime's intra-op
 * threads): they split the planes into ranges and call this once per range. An empty range only
 * validates the arguments. */
simam_status simam_forward_cpu_planes(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                      simam_dtype dtype, float e_lambda, int unbiased, int64_t first_plane,
                                      int64_t end_plane);

/* Launch on a CUDA stream (a cudaStream_t passed as void*; NULL = legacy default stream).
 * x and y are device pointers; y may equal x. Asynchronous: errors of the launch itself are
 * reported, errors of the running kernel surface at the next synchronisation.
 * Allocates nothing. */
simam_status simam_forward_cuda(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                simam_dtype dtype, float e_lambda, int unbiased, void* stream);

/* Bytes of device scratch that lets simam_forward_cuda_ws spread huge planes (more than 16384
 * elements) over several blocks per plane; 0 when the shape needs none. Pure arithmetic: it calls
 * no CUDA function and works in CPU-only builds too. */
size_t simam_cuda_workspace_size(int64_t N, int64_t C, int64_t H, int64_t W, simam_dtype dtype);

/* simam_forward_cuda with caller-owned device scratch (e.g. TensorRT's workspace). With
 * workspace_bytes >= simam_cuda_workspace_size(...) huge planes use several blocks each (partial
 * statistics merged with Chan's formula); with less (or NULL) they fall back to one block per
 * plane reading the plane from global memory / L2 three times. The result is the same either way
 * up to fp32 rounding. workspace must be 16-byte aligned. */
simam_status simam_forward_cuda_ws(const void* x, void* y, int64_t N, int64_t C, int64_t H, int64_t W,
                                   simam_dtype dtype, float e_lambda, int unbiased, void* workspace,
                                   size_t workspace_bytes, void* stream);

/* ---- The full problem: layouts and a fused epilogue ---------------------------------------
 * The entry points above are NCHW without an epilogue; they are wrappers of the ones below.
 *
 * Layouts: NCHW (planes contiguous) or NHWC (channels innermost: TensorRT's kHWC, and kHWC8 /
 * kHWC16, whose pixel stride is C rounded up to 8 / 16; the padding channels are neither read nor
 * written). The statistics are still per (n, c) plane.
 *
 * Epilogue, applied to SimAM's output inside the same pass (what TensorRT fuses after SimAM in a
 * ResNet block: BatchNorm's per-channel affine, the residual add, the activation):
 *   z = act(y * scale[c] + bias[c] + residual)
 * scale and bias: C elements of `dtype`, both or neither (NULL); residual: a tensor of x's shape,
 * layout, channel stride and dtype, or NULL; it must not overlap y. act: none, relu, silu
 * (z * sigmoid(z)). The epilogue math runs in fp32 and rounds once to `dtype`.
 */
typedef enum simam_layout {
    SIMAM_LAYOUT_NCHW = 0,
    SIMAM_LAYOUT_NHWC = 1
} simam_layout;

typedef enum simam_activation {
    SIMAM_ACTIVATION_NONE = 0,
    SIMAM_ACTIVATION_RELU = 1,
    SIMAM_ACTIVATION_SILU = 2
} simam_activation;

typedef struct simam_problem {
    int64_t N, C, H, W;
    simam_dtype dtype;
    simam_layout layout;
    int64_t channel_stride; /* NHWC: elements from one pixel to the next (>= C); 0 means C */
    float e_lambda;
    int32_t unbiased;
    const void* scale;      /* epilogue, see above; NULL = none */
    const void* bias;
    const void* residual;
    int32_t activation;     /* simam_activation */
} simam_problem;

/* A problem with NCHW layout and no epilogue (every other field zeroed/NULL). */
simam_problem simam_problem_make(int64_t N, int64_t C, int64_t H, int64_t W, simam_dtype dtype,
                                 float e_lambda, int unbiased);

/* Every field checked (shape, dtype, layout, channel stride, e_lambda, scale/bias both or neither,
 * activation code, residual not overlapping y); SIMAM_OK or the failure with its message. */
simam_status simam_problem_validate(const simam_problem* problem, const void* x, const void* y);

/* CPU, every plane, on the library's worker pool. y may equal x (not the residual). */
simam_status simam_run_cpu(const simam_problem* problem, const void* x, void* y);

/* CPU, planes [first_plane, end_plane) of the N*C planes (plane index n*C + c, whatever the
 * layout) on the calling thread, for adapters with their own thread pool. */
simam_status simam_run_cpu_planes(const simam_problem* problem, const void* x, void* y, int64_t first_plane,
                                  int64_t end_plane);

/* CUDA scratch that simam_run_cuda can use for this problem (0 when it needs none). */
size_t simam_run_cuda_workspace_size(const simam_problem* problem);

/* CUDA launch on `stream`, with optional caller-owned scratch (see simam_forward_cuda_ws). */
simam_status simam_run_cuda(const simam_problem* problem, const void* x, void* y, void* workspace,
                            size_t workspace_bytes, void* stream);

/* 1 when this build has the CUDA kernels compiled in, else 0. */
int simam_has_cuda(void);

/* The SIMD instruction set the CPU kernel dispatches to on this machine (chosen once at run
 * time): Highway's target name, e.g. "AVX3_SPR" or "AVX3" (AVX-512), "AVX2", "NEON", "SVE". */
const char* simam_cpu_simd_target(void);

/* A static description of a status code. */
const char* simam_status_string(simam_status status);

/* The message of the last failure on this thread ("" if none). */
const char* simam_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SIMAM_SIMAM_H */
