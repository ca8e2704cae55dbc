/* A small persistent thread pool for the CPU kernel (internal).
 *
 * Why not a thread per call: starting threads costs tens of microseconds and, on a busy machine,
 * a scheduler time slice each, which dominates the small SimAM calls of a CNN. Why not OpenMP:
 * PyTorch ships its own OpenMP runtime, and two runtimes in one process oversubscribe the cores
 * with spinning threads. Idle workers here sleep on a condition variable (no spinning).
 */
#ifndef SIMAM_SIMAM_CPU_POOL_H
#define SIMAM_SIMAM_CPU_POOL_H

#include <stdint.h>

namespace simam_detail {

/* Calls task(context, i) for every i in [0, count), spread over the pool's workers and the
 * calling thread; returns when all calls have returned. Falls back to running everything on the
 * calling thread when the pool is busy with another caller, could not start, or the process is a
 * fork() child (whose copy of the pool has no threads). `task` must not throw. */
void parallel_for(int64_t count, void (*task)(void* context, int64_t index), void* context);

/* Threads the pool uses including the caller: SIMAM_NUM_THREADS if set (>= 1), else the
 * hardware concurrency. */
int pool_threads();

}  // namespace simam_detail

#endif /* SIMAM_SIMAM_CPU_POOL_H */
