/* The vectorised per-plane SimAM of the CPU kernel (internal): simam_cpu_simd.cpp, compiled by
 * Highway once per SIMD target (x86: SSE2 ... AVX2, AVX-512; Arm: NEON, SVE, SVE2) and
 * dispatched at run time to the best one the CPU has. */
#ifndef SIMAM_SIMAM_CPU_SIMD_H
#define SIMAM_SIMAM_CPU_SIMD_H

#include <stdint.h>

#include "simam.h"

namespace simam_detail {

/* What every plane of one call shares; the reciprocals keep divisions out of the per-plane path. */
struct PlaneConstants {
    int64_t n;           /* H * W */
    float e_lambda;
    double inv_n;        /* 1 / n */
    double inv_divisor;  /* 1 / (n - 1) or 1 / n */
};

/* SimAM of planes [begin, end) of x into y (y may be x). dtype must be valid (already checked).
 * Never fails: no allocation, no exceptions. */
void simam_planes_simd(const void* x, void* y, simam_dtype dtype, const PlaneConstants& k, int64_t begin,
                       int64_t end);

/* The SIMD target the dispatcher chose for this CPU, e.g. "AVX3" (AVX-512), "AVX2", "NEON", "SVE". */
const char* simam_cpu_simd_target();

}  // namespace simam_detail

#endif /* SIMAM_SIMAM_CPU_SIMD_H */
