// The CPU-only flavour of the library (simam_nocuda.cpp): the CUDA entry points exist, refuse with
// SIMAM_ERR_NO_CUDA and say how to rebuild. Built and run in every build (CTest: simam_kernel_nocuda).
#include <cstdio>
#include <cstring>

#include "simam.h"

int main() {
    int failures = 0;
    float buf[4] = {};
    if (simam_has_cuda() != 0) {
        std::printf("FAIL: the CPU-only library claims CUDA kernels\n");
        ++failures;
    }
    const simam_status s = simam_forward_cuda(buf, buf, 1, 1, 2, 2, SIMAM_FLOAT32, 1e-4f, 1, nullptr);
    const char* msg = simam_last_error();
    if (s != SIMAM_ERR_NO_CUDA || std::strstr(msg, "nvcc") == nullptr ||
        std::strstr(msg, "pip install -e . --no-build-isolation") == nullptr) {
        std::printf("FAIL: status %d, message '%s'\n", static_cast<int>(s), msg);
        ++failures;
    }
    const simam_problem problem = simam_problem_make(1, 1, 2, 2, SIMAM_FLOAT32, 1e-4f, 1);
    const simam_status run = simam_run_cuda(&problem, buf, buf, nullptr, 0, nullptr);
    if (run != SIMAM_ERR_NO_CUDA || std::strstr(simam_last_error(), "nvcc") == nullptr) {
        std::printf("FAIL: simam_run_cuda: status %d, message '%s'\n", static_cast<int>(run), simam_last_error());
        ++failures;
    }
    // The NCHW scratch size is arithmetic, the same as a CUDA build's (huge planes need some).
    const simam_problem huge = simam_problem_make(2, 3, 256, 256, SIMAM_FLOAT16, 1e-4f, 1);
    if (simam_run_cuda_workspace_size(&huge) != simam_cuda_workspace_size(2, 3, 256, 256, SIMAM_FLOAT16) ||
        simam_run_cuda_workspace_size(&huge) == 0) {
        std::printf("FAIL: simam_run_cuda_workspace_size of an NCHW problem\n");
        ++failures;
    }
    if (simam_forward_cpu(buf, buf, 1, 1, 2, 2, SIMAM_FLOAT32, 1e-4f, 1) != SIMAM_OK) {
        std::printf("FAIL: the CPU path of the CPU-only library\n");
        ++failures;
    }
    std::printf("%s\n", failures == 0 ? "ok" : "FAILED");
    return failures;
}
