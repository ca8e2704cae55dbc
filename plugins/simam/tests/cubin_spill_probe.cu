// Test-only kernels for tests/test_cubin_resources.py: they show that scripts/cubin_resources.py
// (the CI check on every cubin) catches local memory. Never compiled into a library.
//   default               48 accumulators live across a loop: fits in registers, the check passes
//   -maxrregcount=16      the same kernel must spill: the check fails
//   -DSIMAM_PROBE_STACK   a per-thread array indexed at run time: a local stack frame, the check fails

#if defined(SIMAM_PROBE_STACK)
__global__ void probe_stack_kernel(float const* in, float* out, int pick)
{
    // Stores and loads at runtime indices into more values than registers can hold: the array
    // lives in local memory.
    float table[256];
    for (int i = 0; i < 256; ++i)
    {
        table[i] = 0.0f;
    }
    for (int i = 0; i < 256; ++i)
    {
        table[(pick * i + threadIdx.x) & 255] += in[i * blockDim.x + threadIdx.x];
    }
    out[threadIdx.x] = table[(pick + threadIdx.x) & 255];
}
#else
__global__ void probe_spill_kernel(float const* in, float* out, int n)
{
    float acc[48];
#pragma unroll
    for (int i = 0; i < 48; ++i)
    {
        acc[i] = in[i * 32 + threadIdx.x];
    }
    for (int k = 0; k < n; ++k)
    {
#pragma unroll
        for (int i = 0; i < 48; ++i)
        {
            acc[i] = acc[i] * acc[(i + 1) % 48] + 1.0f;
        }
    }
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < 48; ++i)
    {
        sum += acc[i];
    }
    out[threadIdx.x] = sum;
}
#endif
