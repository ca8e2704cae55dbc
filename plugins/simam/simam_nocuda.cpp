// CPU-only build: the CUDA entry points exist and say how to get them.
#include "simam.h"
#include "simam_internal.h"

namespace {
simam_status no_cuda() {
    return simam_detail::set_error(
        SIMAM_ERR_NO_CUDA,
        "simam: this build has no CUDA kernels (nvcc was not found when it was compiled); put nvcc on "
        "PATH (or set CUDACXX) and rebuild with `pip install -e . --no-build-isolation`");
}
}  // namespace

extern "C" simam_status simam_forward_cuda(const void*, void*, int64_t, int64_t, int64_t, int64_t, simam_dtype,
                                           float, int, void*) {
    return no_cuda();
}

extern "C" simam_status simam_forward_cuda_ws(const void*, void*, int64_t, int64_t, int64_t, int64_t,
                                              simam_dtype, float, int, void*, size_t, void*) {
    return no_cuda();
}

extern "C" simam_status simam_run_cuda(const simam_problem*, const void*, void*, void*, size_t, void*) {
    return no_cuda();
}

// Pure arithmetic like simam_cuda_workspace_size: the NCHW answer is the CUDA build's; NHWC has no
// kernels here to size scratch for.
extern "C" size_t simam_run_cuda_workspace_size(const simam_problem* problem) {
    if (problem == nullptr || problem->layout != SIMAM_LAYOUT_NCHW) return 0;
    return simam_cuda_workspace_size(problem->N, problem->C, problem->H, problem->W, problem->dtype);
}

extern "C" int simam_has_cuda(void) { return 0; }
