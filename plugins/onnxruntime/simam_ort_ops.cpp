// libsimam_ort_ops.so: SimAM as an ONNX Runtime custom op (domain com.simam_deploy, version 1).
//
// A thin adapter over the kernel library (simam.h): it only reads attributes and shapes, picks the
// storage type and hands the tensors over. Loaded by any ONNX Runtime >= the API version of the
// headers it was built against (ORT_API_VERSION, 21 for ONNX Runtime 1.21) through
// RegisterCustomOps: Python SessionOptions.register_custom_ops_library, C/C++
// RegisterCustomOpsLibrary, Triton's `model_operations { op_library_filename }`.
//
// One OrtCustomOp per (execution provider, element type): ONNX Runtime merges ops that share a
// name and domain into one schema whose type constraint is the union (float, float16, bfloat16).
//
// CPU threading: the planes are split into ranges that run on ONNX Runtime's own intra-op thread
// pool (KernelContext_ParallelFor), never on a second pool: ONNX Runtime's workers spin between
// parallel sections, so a second pool on the same cores would compete with them. The session's
// intra_op_num_threads is therefore SimAM's too (1 = the calling thread only). Measured against the
// kernel library's own pool in whole networks: at least as fast (docs/onnxruntime.md).
#include <onnxruntime_c_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "simam.h"

static_assert(ORT_API_VERSION >= 18, "libsimam_ort_ops needs ONNX Runtime headers of API version 18 or newer");

namespace {

constexpr const char* kDomain = "com.simam_deploy";
constexpr const char* kOpType = "SimAM";
constexpr const char* kCudaProvider = "CUDAExecutionProvider";

// Below this many elements per range, handing a range to another thread costs more than it saves.
constexpr int64_t kMinElementsPerRange = 1 << 15;

const OrtApi* g_api = nullptr;  // set by the first RegisterCustomOps, before any op callback can run

// ---- errors -------------------------------------------------------------------------------------
OrtStatus* make_error(OrtErrorCode code, const std::string& message) {
    return g_api->CreateStatus(code, message.c_str());
}

// "SimAM node 'name'": every message names the node so that a model with 16 of them is debuggable.
std::string node_label(const std::string& node_name) {
    return std::string(kOpType) + " node '" + (node_name.empty() ? std::string("(unnamed)") : node_name) + "'";
}

#define SIMAM_ORT_RETURN_IF_ERROR(expr)                   \
    do {                                                  \
        OrtStatus* simam_ort_status_ = (expr);            \
        if (simam_ort_status_) return simam_ort_status_;  \
    } while (0)

// Callbacks are called from C: nothing may escape them (only std::bad_alloc can be thrown here).
template <typename Body>
OrtStatus* no_throw(Body&& body) noexcept {
    try {
        return body();
    } catch (...) {
        return g_api->CreateStatus(ORT_FAIL, "SimAM: out of memory");
    }
}

OrtErrorCode error_code(simam_status status) {
    return status == SIMAM_ERR_INVALID_ARGUMENT ? ORT_INVALID_ARGUMENT : ORT_FAIL;
}

// ---- the kernel -------------------------------------------------------------------------------
struct SimamKernel {
    std::string node_name;
    float e_lambda;
    int unbiased;
    int affine;      // 1: inputs 1 and 2 are scale and bias
    int residual;    // 1: the next input is R
    int activation;  // simam_activation
    simam_dtype dtype;
    bool on_cuda;

    size_t input_count() const { return static_cast<size_t>(1 + 2 * affine + residual); }
};

// The most inputs a node can have: X, scale, bias, R.
constexpr size_t kMaxInputs = 4;

std::string read_node_name(const OrtKernelInfo* info) {
    size_t size = 0;
    OrtStatus* status = g_api->KernelInfo_GetNodeName(info, nullptr, &size);
    if (status != nullptr || size == 0) {
        if (status) g_api->ReleaseStatus(status);
        return "";
    }
    std::string name(size, '\0');
    status = g_api->KernelInfo_GetNodeName(info, name.data(), &size);
    if (status != nullptr) {
        g_api->ReleaseStatus(status);
        return "";
    }
    name.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
    return name;
}

// Whether the node has an attribute `name` of any scalar or list type: the C API has no "get the
// type" call, so each getter is tried and only success counts (their failure messages differ
// between releases and are not parsed).
bool has_attribute(const OrtKernelInfo* info, const char* name) {
    auto ok = [](OrtStatus* status) {
        if (status == nullptr) return true;
        g_api->ReleaseStatus(status);
        return false;
    };
    float f = 0.0f;
    int64_t i = 0;
    size_t size = 0;
    return ok(g_api->KernelInfoGetAttribute_float(info, name, &f)) ||
           ok(g_api->KernelInfoGetAttribute_int64(info, name, &i)) ||
           ok(g_api->KernelInfoGetAttribute_string(info, name, nullptr, &size)) ||
           ok(g_api->KernelInfoGetAttributeArray_float(info, name, nullptr, &size)) ||
           ok(g_api->KernelInfoGetAttributeArray_int64(info, name, nullptr, &size));
}

// An optional INT attribute 0 or 1 (default 0): the epilogue's affine and residual.
OrtStatus* read_flag(const OrtKernelInfo* info, const std::string& label, const char* name, const char* meaning,
                     int& out) {
    int64_t value = 0;
    OrtStatus* status = g_api->KernelInfoGetAttribute_int64(info, name, &value);
    if (status != nullptr) {
        g_api->ReleaseStatus(status);
        if (has_attribute(info, name)) {
            return make_error(ORT_INVALID_ARGUMENT,
                              label + ": attribute " + name + " must be an INT 0 or 1 (" + meaning + ")");
        }
        value = 0;
    }
    if (value != 0 && value != 1) {
        return make_error(ORT_INVALID_ARGUMENT, label + ": " + name + " must be 0 or 1 (" + meaning + "), got " +
                                                    std::to_string(value));
    }
    out = static_cast<int>(value);
    return nullptr;
}

// activation: optional STRING none | relu | silu (default none).
OrtStatus* read_activation(const OrtKernelInfo* info, const std::string& label, int& out) {
    size_t size = 0;
    OrtStatus* status = g_api->KernelInfoGetAttribute_string(info, "activation", nullptr, &size);
    if (status != nullptr) {
        g_api->ReleaseStatus(status);
        if (has_attribute(info, "activation")) {
            return make_error(ORT_INVALID_ARGUMENT,
                              label + ": attribute activation must be a STRING: none, relu or silu");
        }
        out = SIMAM_ACTIVATION_NONE;
        return nullptr;
    }
    std::string text(size, '\0');
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelInfoGetAttribute_string(info, "activation", text.data(), &size));
    text.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
    if (text == "none") {
        out = SIMAM_ACTIVATION_NONE;
    } else if (text == "relu") {
        out = SIMAM_ACTIVATION_RELU;
    } else if (text == "silu") {
        out = SIMAM_ACTIVATION_SILU;
    } else {
        for (char& c : text) c = (c >= 0x20 && c < 0x7F) ? c : '?';  // keep the message printable
        return make_error(ORT_INVALID_ARGUMENT,
                          label + ": activation must be none, relu or silu, got '" + text + "'");
    }
    return nullptr;
}

// The attribute contract (simam_deploy/graph/contract.py): e_lambda FLOAT, finite, > 0 (required);
// unbiased INT 0 or 1 (default 1); the epilogue: affine, residual INT 0/1 (default 0), activation
// STRING none/relu/silu (default none), with 1 + 2*affine + residual inputs.
OrtStatus* read_attributes(const OrtKernelInfo* info, SimamKernel& kernel) {
    const std::string label = node_label(kernel.node_name);
    float e_lambda = 0.0f;
    OrtStatus* status = g_api->KernelInfoGetAttribute_float(info, "e_lambda", &e_lambda);
    if (status != nullptr) {
        g_api->ReleaseStatus(status);
        const bool present = has_attribute(info, "e_lambda");
        return make_error(ORT_INVALID_ARGUMENT,
                          label + (present ? ": attribute e_lambda must be a FLOAT"
                                           : " has no e_lambda attribute (FLOAT, e.g. 1e-4 or 0.1)"));
    }
    if (!std::isfinite(e_lambda) || !(e_lambda > 0.0f)) {
        char value[64];
        std::snprintf(value, sizeof value, "%g", static_cast<double>(e_lambda));
        return make_error(ORT_INVALID_ARGUMENT, label + ": e_lambda must be a finite number > 0, got " + value);
    }
    int64_t unbiased = 1;
    status = g_api->KernelInfoGetAttribute_int64(info, "unbiased", &unbiased);
    if (status != nullptr) {
        g_api->ReleaseStatus(status);
        if (has_attribute(info, "unbiased")) {
            return make_error(ORT_INVALID_ARGUMENT, label + ": attribute unbiased must be an INT 0 or 1");
        }
        unbiased = 1;
    }
    if (unbiased != 0 && unbiased != 1) {
        return make_error(ORT_INVALID_ARGUMENT,
                          label + ": unbiased must be 0 or 1, got " + std::to_string(unbiased) +
                              " (1 divides the variance by H*W-1 as in the paper, 0 by H*W)");
    }
    kernel.e_lambda = e_lambda;
    kernel.unbiased = static_cast<int>(unbiased);
    SIMAM_ORT_RETURN_IF_ERROR(read_flag(info, label, "affine", "1: inputs 1 and 2 are scale and bias", kernel.affine));
    SIMAM_ORT_RETURN_IF_ERROR(read_flag(info, label, "residual", "1: the last input is added", kernel.residual));
    SIMAM_ORT_RETURN_IF_ERROR(read_activation(info, label, kernel.activation));
    // The input count follows from the attributes (the schema lets inputs 1..3 be absent).
    size_t inputs = 0;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelInfo_GetInputCount(info, &inputs));
    if (inputs != kernel.input_count()) {
        return make_error(ORT_INVALID_ARGUMENT,
                          label + " has " + std::to_string(inputs) + " inputs; with affine=" +
                              std::to_string(kernel.affine) + " residual=" + std::to_string(kernel.residual) +
                              " it takes " + std::to_string(kernel.input_count()) + " (X" +
                              (kernel.affine ? ", scale, bias" : "") + (kernel.residual ? ", R" : "") + ")");
    }
    return nullptr;
}

// ---- the ops ----------------------------------------------------------------------------------
struct SimamOp : OrtCustomOp {
    ONNXTensorElementDataType element_type;
    simam_dtype dtype;
    bool on_cuda;
};

const SimamOp& as_op(const OrtCustomOp* op) { return *static_cast<const SimamOp*>(op); }

OrtStatusPtr ORT_API_CALL create_kernel(const OrtCustomOp* op, const OrtApi* /*api*/, const OrtKernelInfo* info,
                                        void** out) {
    *out = nullptr;
    SimamKernel* kernel = new (std::nothrow) SimamKernel{};
    if (kernel == nullptr) return make_error(ORT_FAIL, "SimAM: out of memory creating the kernel");
    try {
        kernel->node_name = read_node_name(info);
    } catch (...) {
        // An unnamed node in messages is better than no kernel.
    }
    kernel->dtype = as_op(op).dtype;
    kernel->on_cuda = as_op(op).on_cuda;
    OrtStatus* status = no_throw([&] { return read_attributes(info, *kernel); });
    if (status != nullptr) {
        delete kernel;
        return status;
    }
    *out = kernel;
    return nullptr;
}

void ORT_API_CALL destroy_kernel(void* kernel) { delete static_cast<SimamKernel*>(kernel); }

// One range of planes per call, on whichever thread of ONNX Runtime's pool picks it up.
struct PlaneRanges {
    const SimamKernel* kernel;
    simam_problem problem;
    const void* x;
    void* y;
    int64_t planes;
    int64_t ranges;
    std::atomic<bool> failed{false};
    std::string error;  // written by the first failing range only
};

void run_range(void* data, size_t index) {
    PlaneRanges& job = *static_cast<PlaneRanges*>(data);
    const int64_t i = static_cast<int64_t>(index);
    const int64_t first = i * job.planes / job.ranges;
    const int64_t end = (i + 1) * job.planes / job.ranges;
    const simam_status status = simam_run_cpu_planes(&job.problem, job.x, job.y, first, end);
    if (status != SIMAM_OK && !job.failed.exchange(true)) {
        try {
            job.error = simam_last_error();
        } catch (...) {
        }
    }
}

// Enough ranges to balance the threads, each big enough to be worth a hand-off.
int64_t range_count(int64_t planes, int64_t plane_size) {
    static const int64_t max_ranges = 4 * static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
    const int64_t by_work = std::max<int64_t>(1, planes * plane_size / kMinElementsPerRange);
    return std::min({planes, by_work, max_ranges});
}

OrtStatus* run_cpu(const SimamKernel& kernel, OrtKernelContext* context, const simam_problem& problem,
                   const void* x, void* y) {
    PlaneRanges job;
    job.kernel = &kernel;
    job.problem = problem;
    job.x = x;
    job.y = y;
    job.planes = problem.N * problem.C;
    // Validating once (shape, attributes, epilogue operands) means the ranges below cannot fail on them.
    const simam_status status = simam_problem_validate(&problem, x, y);
    if (status != SIMAM_OK) {
        return make_error(error_code(status), node_label(kernel.node_name) + ": " + simam_last_error());
    }
    job.ranges = range_count(job.planes, problem.H * problem.W);
    if (job.ranges == 1) {
        run_range(&job, 0);
    } else {
        SIMAM_ORT_RETURN_IF_ERROR(
            g_api->KernelContext_ParallelFor(context, run_range, static_cast<size_t>(job.ranges), 0, &job));
    }
    if (job.failed.load()) return make_error(ORT_FAIL, node_label(kernel.node_name) + ": " + job.error);
    return nullptr;
}

OrtStatus* run_cuda(const SimamKernel& kernel, OrtKernelContext* context, const simam_problem& problem,
                    const void* x, void* y) {
    void* stream = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelContext_GetGPUComputeStream(context, &stream));
    // No workspace: planes above 16384 elements take the kernel's one-block-per-plane path, which
    // needs no scratch whose lifetime would have to follow the stream.
    const simam_status status = simam_run_cuda(&problem, x, y, nullptr, 0, stream);
    if (status != SIMAM_OK) {
        const OrtErrorCode code = status == SIMAM_ERR_CUDA ? ORT_EP_FAIL : error_code(status);
        return make_error(code, node_label(kernel.node_name) + ": " + simam_last_error());
    }
    return nullptr;
}

// Rank, dimensions (up to 4 stored) and element type of a tensor.
struct TensorInfo {
    size_t rank = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
};

OrtStatus* tensor_info(const OrtValue* value, TensorInfo& out) {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->GetTensorTypeAndShape(value, &info));
    OrtStatus* status = g_api->GetDimensionsCount(info, &out.rank);
    if (status == nullptr && out.rank <= 4) status = g_api->GetDimensions(info, out.dims, out.rank);
    if (status == nullptr) status = g_api->GetTensorElementType(info, &out.type);
    g_api->ReleaseTensorTypeAndShapeInfo(info);
    return status;
}

std::string type_text(ONNXTensorElementDataType type) {
    switch (type) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
        default: return "element type " + std::to_string(static_cast<int>(type));
    }
}

std::string shape_text(const TensorInfo& t) {
    if (t.rank > 4) return "rank " + std::to_string(t.rank);
    std::string text = "[";
    for (size_t i = 0; i < t.rank; ++i) text += (i ? "," : "") + std::to_string(t.dims[i]);
    return text + "]";
}

// Input `index` of the node, present, of the kernel's element type and the shape its role needs.
OrtStatus* epilogue_input(const SimamKernel& kernel, OrtKernelContext* context, size_t index, const char* role,
                          const TensorInfo& x, const void*& data) {
    const std::string label = node_label(kernel.node_name);
    const OrtValue* value = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelContext_GetInput(context, index, &value));
    if (value == nullptr) {
        return make_error(ORT_INVALID_ARGUMENT, label + ": input " + std::to_string(index) + " (" + role +
                                                    ") is missing; the node's attributes say it is there");
    }
    TensorInfo t;
    SIMAM_ORT_RETURN_IF_ERROR(tensor_info(value, t));
    if (t.type != x.type) {
        return make_error(ORT_INVALID_ARGUMENT, label + ": " + role + " is " + type_text(t.type) + ", X is " +
                                                    type_text(x.type) + "; every input of the node has X's type");
    }
    const bool per_channel = std::string(role) != "R";
    bool ok = per_channel ? (t.rank == 1 && t.dims[0] == x.dims[1]) : t.rank == 4;
    for (size_t i = 0; ok && !per_channel && i < 4; ++i) ok = t.dims[i] == x.dims[i];
    if (!ok) {
        return make_error(ORT_INVALID_ARGUMENT,
                          label + ": " + role + " has shape " + shape_text(t) + "; expected " +
                              (per_channel ? "[" + std::to_string(x.dims[1]) + "] (one value per channel of X)"
                                           : shape_text(x) + " (X's shape)"));
    }
    void* mutable_data = nullptr;
    // The C API has no const getter in every release; the input is only read.
    SIMAM_ORT_RETURN_IF_ERROR(g_api->GetTensorMutableData(const_cast<OrtValue*>(value), &mutable_data));
    data = mutable_data;
    return nullptr;
}

OrtStatus* compute_impl(void* op_kernel, OrtKernelContext* context) {
    const SimamKernel& kernel = *static_cast<const SimamKernel*>(op_kernel);
    const std::string label = node_label(kernel.node_name);
    size_t inputs = 0;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelContext_GetInputCount(context, &inputs));
    if (inputs != kernel.input_count()) {
        return make_error(ORT_INVALID_ARGUMENT, label + " got " + std::to_string(inputs) + " inputs, expected " +
                                                    std::to_string(kernel.input_count()));
    }
    const OrtValue* input = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelContext_GetInput(context, 0, &input));
    TensorInfo x;
    SIMAM_ORT_RETURN_IF_ERROR(tensor_info(input, x));
    if (x.rank != 4) {
        return make_error(ORT_INVALID_ARGUMENT, label + ": input has rank " + std::to_string(x.rank) +
                                                    "; SimAM takes rank-4 NCHW tensors");
    }
    simam_problem problem =
        simam_problem_make(x.dims[0], x.dims[1], x.dims[2], x.dims[3], kernel.dtype, kernel.e_lambda, kernel.unbiased);
    problem.activation = kernel.activation;
    if (kernel.affine) {
        SIMAM_ORT_RETURN_IF_ERROR(epilogue_input(kernel, context, 1, "scale", x, problem.scale));
        SIMAM_ORT_RETURN_IF_ERROR(epilogue_input(kernel, context, 2, "bias", x, problem.bias));
    }
    if (kernel.residual) {
        SIMAM_ORT_RETURN_IF_ERROR(epilogue_input(kernel, context, kernel.input_count() - 1, "R", x, problem.residual));
    }
    OrtValue* output = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(g_api->KernelContext_GetOutput(context, 0, x.dims, 4, &output));
    if (x.dims[0] == 0 || x.dims[1] == 0 || x.dims[2] == 0 || x.dims[3] == 0) return nullptr;  // empty
    void* xp = nullptr;
    void* y = nullptr;
    // The C API has no const getter in every release; the input is only read.
    SIMAM_ORT_RETURN_IF_ERROR(g_api->GetTensorMutableData(const_cast<OrtValue*>(input), &xp));
    SIMAM_ORT_RETURN_IF_ERROR(g_api->GetTensorMutableData(output, &y));
    return kernel.on_cuda ? run_cuda(kernel, context, problem, xp, y) : run_cpu(kernel, context, problem, xp, y);
}

OrtStatusPtr ORT_API_CALL compute(void* op_kernel, OrtKernelContext* context) {
    return no_throw([&] { return compute_impl(op_kernel, context); });
}

// ---- schema callbacks ---------------------------------------------------------------------------
const char* ORT_API_CALL op_name(const OrtCustomOp*) { return kOpType; }
const char* ORT_API_CALL op_provider(const OrtCustomOp* op) { return as_op(op).on_cuda ? kCudaProvider : nullptr; }
ONNXTensorElementDataType ORT_API_CALL op_type(const OrtCustomOp* op, size_t) { return as_op(op).element_type; }
size_t ORT_API_CALL one(const OrtCustomOp*) { return 1; }
size_t ORT_API_CALL max_inputs(const OrtCustomOp*) { return kMaxInputs; }
OrtCustomOpInputOutputCharacteristic ORT_API_CALL required(const OrtCustomOp*, size_t) {
    return INPUT_OUTPUT_REQUIRED;
}
// X is required; scale, bias and R are there when the attributes say so (checked when the kernel is made).
OrtCustomOpInputOutputCharacteristic ORT_API_CALL input_characteristic(const OrtCustomOp*, size_t index) {
    return index == 0 ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
}
OrtMemType ORT_API_CALL default_memory(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
int ORT_API_CALL min_arity(const OrtCustomOp*) { return 1; }
int ORT_API_CALL homogeneous(const OrtCustomOp*) { return 1; }
int ORT_API_CALL start_version(const OrtCustomOp*) { return 1; }
int ORT_API_CALL end_version(const OrtCustomOp*) { return INT_MAX; }

// Y may reuse X's buffer (every kernel reads a plane fully before writing it).
size_t ORT_API_CALL may_inplace(int** input_index, int** output_index) {
    *input_index = static_cast<int*>(std::malloc(sizeof(int)));
    *output_index = static_cast<int*>(std::malloc(sizeof(int)));
    if (*input_index == nullptr || *output_index == nullptr) {
        std::free(*input_index);
        std::free(*output_index);
        *input_index = *output_index = nullptr;
        return 0;
    }
    **input_index = 0;
    **output_index = 0;
    return 1;
}
void ORT_API_CALL release_inplace(int* input_index, int* output_index) {
    std::free(input_index);
    std::free(output_index);
}

SimamOp make_op(ONNXTensorElementDataType element_type, simam_dtype dtype, bool on_cuda) {
    SimamOp op{};  // every callback this file does not set stays null
    op.version = ORT_API_VERSION;
    op.GetName = op_name;
    op.GetExecutionProviderType = op_provider;
    op.GetInputType = op_type;
    op.GetInputTypeCount = max_inputs;
    op.GetOutputType = op_type;
    op.GetOutputTypeCount = one;
    op.KernelDestroy = destroy_kernel;
    op.GetInputCharacteristic = input_characteristic;
    op.GetOutputCharacteristic = required;
    op.GetInputMemoryType = default_memory;
    op.GetVariadicInputMinArity = min_arity;
    op.GetVariadicInputHomogeneity = homogeneous;
    op.GetVariadicOutputMinArity = min_arity;
    op.GetVariadicOutputHomogeneity = homogeneous;
    op.CreateKernelV2 = create_kernel;
    op.KernelComputeV2 = compute;
    op.GetStartVersion = start_version;
    op.GetEndVersion = end_version;
    op.GetMayInplace = may_inplace;
    op.ReleaseMayInplace = release_inplace;
    op.element_type = element_type;
    op.dtype = dtype;
    op.on_cuda = on_cuda;
    return op;
}

SimamOp g_ops[] = {
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, SIMAM_FLOAT32, false),
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, SIMAM_FLOAT16, false),
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, SIMAM_BFLOAT16, false),
#ifdef SIMAM_HAVE_CUDA
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, SIMAM_FLOAT32, true),
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, SIMAM_FLOAT16, true),
    make_op(ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, SIMAM_BFLOAT16, true),
#endif
};

// ---- registration -------------------------------------------------------------------------------
// The runtime is older than the headers: GetApi(ORT_API_VERSION) is null there, while version 1
// (which has CreateStatus) exists in every release, so the refusal can still be a proper error.
OrtStatus* refuse_old_runtime(const OrtApiBase* api_base) {
    const OrtApi* oldest = api_base->GetApi(1);
    if (oldest == nullptr) return nullptr;  // not a runtime we can even report to
    const char* version = api_base->GetVersionString ? api_base->GetVersionString() : "unknown";
    char message[400];
    std::snprintf(message, sizeof message,
                  "libsimam_ort_ops was built against ONNX Runtime API version %d (ONNX Runtime 1.%d) "
                  "and needs ONNX Runtime >= 1.%d; this process runs ONNX Runtime %s. Upgrade it "
                  "(pip install 'onnxruntime>=1.%d') or rebuild the library with that release's headers "
                  "(-DONNXRUNTIME_ROOT=.../include).",
                  ORT_API_VERSION, ORT_API_VERSION, ORT_API_VERSION, version, ORT_API_VERSION);
    return oldest->CreateStatus(ORT_FAIL, message);
}

// One domain for the whole process, shared by every session that registers the library: the
// domain must outlive all of them, and nothing tells us when the last one is gone.
std::mutex g_domain_mutex;
OrtCustomOpDomain* g_domain = nullptr;

OrtStatus* shared_domain(const OrtApi* api, OrtCustomOpDomain** out) {
    std::lock_guard<std::mutex> lock(g_domain_mutex);
    if (g_api == nullptr) g_api = api;  // the same table for every caller in a process
    if (g_domain == nullptr) {
        OrtCustomOpDomain* domain = nullptr;
        SIMAM_ORT_RETURN_IF_ERROR(g_api->CreateCustomOpDomain(kDomain, &domain));
        for (SimamOp& op : g_ops) {
            OrtStatus* status = g_api->CustomOpDomain_Add(domain, &op);
            if (status != nullptr) {
                g_api->ReleaseCustomOpDomain(domain);
                return status;
            }
        }
        g_domain = domain;
    }
    *out = g_domain;
    return nullptr;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
    if (api_base == nullptr) return nullptr;
    const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
    if (api == nullptr) return refuse_old_runtime(api_base);
    OrtCustomOpDomain* domain = nullptr;
    SIMAM_ORT_RETURN_IF_ERROR(shared_domain(api, &domain));
    return api->AddCustomOpDomain(options, domain);
}
