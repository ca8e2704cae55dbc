// simam_deploy._C: a thin nanobind layer over the C API in simam.h.
//
// Tensors arrive as raw data pointers (torch's data_ptr(), numpy's ctypes.data) plus shape and a
// dtype code; the Python side (simam_deploy/ops.py) checks devices, dtypes and contiguity first.
// Status codes become Python exceptions carrying simam_last_error()'s text:
//   invalid argument -> ValueError, unsupported dtype -> TypeError, anything else -> RuntimeError.
// Importing this module makes no CUDA call, so it loads on machines without a GPU driver.
#include <nanobind/nanobind.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "simam.h"

namespace nb = nanobind;

namespace {

void raise_on_failure(simam_status status) {
    if (status == SIMAM_OK) return;
    const char* detail = simam_last_error();
    const std::string message = (detail != nullptr && *detail != '\0') ? detail : simam_status_string(status);
    switch (status) {
        case SIMAM_ERR_INVALID_ARGUMENT: throw nb::value_error(message.c_str());
        case SIMAM_ERR_UNSUPPORTED_DTYPE: throw nb::type_error(message.c_str());
        default: throw std::runtime_error(message);
    }
}

simam_dtype dtype_from_code(int code) { return static_cast<simam_dtype>(code); }  // validated in C

void forward_cpu(uintptr_t x, uintptr_t y, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, float e_lambda,
                 bool unbiased) {
    simam_status status;
    {
        nb::gil_scoped_release released;  // worker threads run; other Python threads may too
        status = simam_forward_cpu(reinterpret_cast<const void*>(x), reinterpret_cast<void*>(y), n, c, h, w,
                                   dtype_from_code(dtype), e_lambda, unbiased ? 1 : 0);
    }
    raise_on_failure(status);
}

void forward_cuda(uintptr_t x, uintptr_t y, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, float e_lambda,
                  bool unbiased, uintptr_t stream, uintptr_t workspace, size_t workspace_bytes) {
    const simam_status status = simam_forward_cuda_ws(
        reinterpret_cast<const void*>(x), reinterpret_cast<void*>(y), n, c, h, w, dtype_from_code(dtype), e_lambda,
        unbiased ? 1 : 0, reinterpret_cast<void*>(workspace), workspace_bytes, reinterpret_cast<void*>(stream));
    raise_on_failure(status);
}

// The full problem (simam.h): NCHW or NHWC, and the fused epilogue. Pointers of 0 mean "none".
simam_problem make_problem(int64_t n, int64_t c, int64_t h, int64_t w, int dtype, float e_lambda, bool unbiased,
                           uintptr_t scale, uintptr_t bias, uintptr_t residual, int activation, int layout,
                           int64_t channel_stride) {
    if (layout != SIMAM_LAYOUT_NCHW && layout != SIMAM_LAYOUT_NHWC) {
        throw nb::value_error(("simam: unknown layout code " + std::to_string(layout) + " (use 0 NCHW, 1 NHWC)").c_str());
    }
    simam_problem p = simam_problem_make(n, c, h, w, dtype_from_code(dtype), e_lambda, unbiased ? 1 : 0);
    p.scale = reinterpret_cast<const void*>(scale);
    p.bias = reinterpret_cast<const void*>(bias);
    p.residual = reinterpret_cast<const void*>(residual);
    p.activation = activation;
    p.layout = static_cast<simam_layout>(layout);  // validated in C
    p.channel_stride = channel_stride;
    return p;
}

void run_cpu(uintptr_t x, uintptr_t y, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, float e_lambda,
             bool unbiased, uintptr_t scale, uintptr_t bias, uintptr_t residual, int activation, int layout,
             int64_t channel_stride) {
    const simam_problem p =
        make_problem(n, c, h, w, dtype, e_lambda, unbiased, scale, bias, residual, activation, layout, channel_stride);
    simam_status status;
    {
        nb::gil_scoped_release released;
        status = simam_run_cpu(&p, reinterpret_cast<const void*>(x), reinterpret_cast<void*>(y));
    }
    raise_on_failure(status);
}

void run_cuda(uintptr_t x, uintptr_t y, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, float e_lambda,
              bool unbiased, uintptr_t scale, uintptr_t bias, uintptr_t residual, int activation, int layout,
              int64_t channel_stride, uintptr_t stream, uintptr_t workspace, size_t workspace_bytes) {
    const simam_problem p =
        make_problem(n, c, h, w, dtype, e_lambda, unbiased, scale, bias, residual, activation, layout, channel_stride);
    raise_on_failure(simam_run_cuda(&p, reinterpret_cast<const void*>(x), reinterpret_cast<void*>(y),
                                    reinterpret_cast<void*>(workspace), workspace_bytes,
                                    reinterpret_cast<void*>(stream)));
}

}  // namespace

NB_MODULE(_C, m) {
    m.doc() = "Fused SimAM kernels (CPU always, CUDA when built with nvcc). Use simam_deploy.ops instead.";
    m.attr("FLOAT32") = static_cast<int>(SIMAM_FLOAT32);
    m.attr("FLOAT16") = static_cast<int>(SIMAM_FLOAT16);
    m.attr("BFLOAT16") = static_cast<int>(SIMAM_BFLOAT16);
    m.def("has_cuda", []() { return simam_has_cuda() != 0; }, "True when this build has the CUDA kernels.");
    m.def("cpu_simd_target", []() { return simam_cpu_simd_target(); },
          "The SIMD instruction set the CPU kernel runs on here, e.g. AVX3 (AVX-512), AVX2, NEON, SVE.");
    m.def("forward_cpu", &forward_cpu, nb::arg("x"), nb::arg("y"), nb::arg("n"), nb::arg("c"), nb::arg("h"),
          nb::arg("w"), nb::arg("dtype"), nb::arg("e_lambda"), nb::arg("unbiased"),
          "SimAM on host memory: x, y are data pointers of N*C*H*W contiguous elements (y may be x).");
    m.def("forward_cuda", &forward_cuda, nb::arg("x"), nb::arg("y"), nb::arg("n"), nb::arg("c"), nb::arg("h"),
          nb::arg("w"), nb::arg("dtype"), nb::arg("e_lambda"), nb::arg("unbiased"), nb::arg("stream") = 0,
          nb::arg("workspace") = 0, nb::arg("workspace_bytes") = 0,
          "SimAM on device memory, launched asynchronously on `stream` (a cudaStream_t as int).");
    m.def("cuda_workspace_size",
          [](int64_t n, int64_t c, int64_t h, int64_t w, int dtype) {
              return simam_cuda_workspace_size(n, c, h, w, dtype_from_code(dtype));
          },
          nb::arg("n"), nb::arg("c"), nb::arg("h"), nb::arg("w"), nb::arg("dtype"),
          "Device scratch bytes that let huge planes (> 16384 elements) use several blocks each.");
    m.attr("LAYOUT_NCHW") = static_cast<int>(SIMAM_LAYOUT_NCHW);
    m.attr("LAYOUT_NHWC") = static_cast<int>(SIMAM_LAYOUT_NHWC);
    m.attr("ACTIVATIONS") = nb::make_tuple("none", "relu", "silu");  // index = simam_activation code
    m.def("run_cpu", &run_cpu, nb::arg("x"), nb::arg("y"), nb::arg("n"), nb::arg("c"), nb::arg("h"), nb::arg("w"),
          nb::arg("dtype"), nb::arg("e_lambda"), nb::arg("unbiased"), nb::kw_only(), nb::arg("scale") = 0,
          nb::arg("bias") = 0, nb::arg("residual") = 0, nb::arg("activation") = 0, nb::arg("layout") = 0,
          nb::arg("channel_stride") = 0,
          "SimAM with the fused epilogue act(y * scale[c] + bias[c] + residual) on host memory; scale, bias, "
          "residual are data pointers or 0 (none).");
    m.def("run_cuda", &run_cuda, nb::arg("x"), nb::arg("y"), nb::arg("n"), nb::arg("c"), nb::arg("h"),
          nb::arg("w"), nb::arg("dtype"), nb::arg("e_lambda"), nb::arg("unbiased"), nb::kw_only(),
          nb::arg("scale") = 0, nb::arg("bias") = 0, nb::arg("residual") = 0, nb::arg("activation") = 0,
          nb::arg("layout") = 0, nb::arg("channel_stride") = 0, nb::arg("stream") = 0, nb::arg("workspace") = 0,
          nb::arg("workspace_bytes") = 0, "run_cpu on device memory, launched asynchronously on `stream`.");
    m.def("run_cuda_workspace_size",
          [](int64_t n, int64_t c, int64_t h, int64_t w, int dtype, int layout, int64_t channel_stride) {
              const simam_problem p = make_problem(n, c, h, w, dtype, 1.0f, false, 0, 0, 0, 0, layout, channel_stride);
              return simam_run_cuda_workspace_size(&p);
          },
          nb::arg("n"), nb::arg("c"), nb::arg("h"), nb::arg("w"), nb::arg("dtype"), nb::kw_only(),
          nb::arg("layout") = 0, nb::arg("channel_stride") = 0, "Device scratch bytes run_cuda can use.");
}
