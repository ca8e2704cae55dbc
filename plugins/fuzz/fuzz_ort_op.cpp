// libFuzzer target: the ONNX Runtime op library's attribute and shape handling
// (plugins/onnxruntime/simam_ort_ops.cpp compiled in). The harness plays ONNX Runtime the way the
// TensorRT registry harness plays libnvinfer: it hands RegisterCustomOps an OrtApi table that
// implements, after the C API's documented behaviour, the ~20 calls the library makes, so the
// node's attributes (present, absent, of any type, any value), its name, its input count and the
// inputs' ranks, shapes and aliasing come from the fuzzer. (tests/test_ort_ops.py and
// tests/test_ort_ops_epilogue.py run the same library inside the real ONNX Runtime; make sanitize
// runs those under ASan/UBSan.)
// Contract checked: kernel creation fails with a message exactly when the attributes (or the input
// count they imply) break the contract; compute fails exactly when a shape does; a result equals
// the kernel library's for the same tensors bit for bit (the adapter adds no math).
//
// Input layout (little endian; scripts/fuzz_seeds.py writes the seeds):
//   u8 op index | u8 name length, name bytes | e_lambda: u8 kind, 8 value bytes |
//   unbiased: u8 kind, 8 value bytes | affine: u8 kind, 8 value bytes | residual: u8 kind, 8 value bytes |
//   activation: u8 kind, u8 text choice | u8 input count (mod 5) | u8 scale/bias length offset |
//   u8 rank | rank x u8 dims (mod 16) | u8 in place | element bytes
//   kind: 0 absent, 1 float, 2 int, 3 string, 4 float list, 5 int list
//   text choice: none, relu, silu, gelu, "" (mod 5)
#include <onnxruntime_c_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "simam.h"

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base);

struct OrtStatus {
    OrtErrorCode code;
    std::string message;
};
struct Attribute {
    int kind = 0;  // 0 absent, 1 float, 2 int, 3 string, 4 float list, 5 int list
    float f = 0.0f;
    int64_t i = 0;
    std::string text;  // kind 3
};
struct OrtKernelInfo {
    std::string name;
    Attribute e_lambda, unbiased, affine, residual, activation;
    size_t input_count = 1;
};
struct OrtValue {
    std::vector<int64_t> dims;
    void* data = nullptr;
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
};
struct OrtTensorTypeAndShapeInfo {
    std::vector<int64_t> dims;
    ONNXTensorElementDataType type;
};
struct OrtKernelContext {
    std::vector<OrtValue> inputs;  // X, then what the node has
    OrtValue output;
    std::vector<unsigned char>* output_buffer = nullptr;
    bool in_place = false;
};
struct OrtCustomOpDomain {
    std::vector<const OrtCustomOp*> ops;
};

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_ort_op: contract broken: %s\n", what.c_str());
    std::abort();
}

OrtStatus* error(OrtErrorCode code, const char* message) { return new OrtStatus{code, message}; }

const Attribute* find(const OrtKernelInfo* info, const char* name) {
    if (std::strcmp(name, "e_lambda") == 0) return &info->e_lambda;
    if (std::strcmp(name, "unbiased") == 0) return &info->unbiased;
    if (std::strcmp(name, "affine") == 0) return &info->affine;
    if (std::strcmp(name, "residual") == 0) return &info->residual;
    if (std::strcmp(name, "activation") == 0) return &info->activation;
    return nullptr;
}

// Getters succeed only for the attribute's own type, as in ONNX Runtime.
OrtStatus* get_attribute(const OrtKernelInfo* info, const char* name, int kind, const Attribute** out) {
    const Attribute* a = find(info, name);
    if (a == nullptr || a->kind == 0) return error(ORT_FAIL, "No attribute with this name is defined.");
    if (a->kind != kind) return error(ORT_FAIL, "Attribute has a different type.");
    *out = a;
    return nullptr;
}

OrtStatus* list_attribute(const OrtKernelInfo* info, const char* name, int kind, void* out, size_t* size,
                          size_t element_size, const void* value) {
    const Attribute* a = nullptr;
    if (OrtStatus* s = get_attribute(info, name, kind, &a)) return s;
    if (out == nullptr) {
        *size = 1;
        return nullptr;
    }
    if (*size < 1) return error(ORT_INVALID_ARGUMENT, "Result buffer is not large enough");
    std::memcpy(out, value, element_size);
    *size = 1;
    return nullptr;
}

OrtApi make_api() {
    OrtApi api{};  // every call the library must not make stays null: calling one crashes the run
    api.CreateStatus = [](OrtErrorCode code, const char* msg) noexcept -> OrtStatus* { return error(code, msg); };
    api.GetErrorMessage = [](const OrtStatus* s) noexcept -> const char* { return s->message.c_str(); };
    api.ReleaseStatus = [](OrtStatus* s) noexcept { delete s; };
    api.KernelInfo_GetNodeName = [](const OrtKernelInfo* info, char* out, size_t* size) noexcept -> OrtStatus* {
        const size_t needed = info->name.size() + 1;
        if (out == nullptr) {
            *size = needed;
            return nullptr;
        }
        if (*size < needed) return error(ORT_INVALID_ARGUMENT, "buffer too small");
        std::memcpy(out, info->name.c_str(), needed);
        *size = needed;
        return nullptr;
    };
    api.KernelInfoGetAttribute_float = [](const OrtKernelInfo* info, const char* name, float* out) noexcept {
        const Attribute* a = nullptr;
        if (OrtStatus* s = get_attribute(info, name, 1, &a)) return s;
        *out = a->f;
        return static_cast<OrtStatus*>(nullptr);
    };
    api.KernelInfoGetAttribute_int64 = [](const OrtKernelInfo* info, const char* name, int64_t* out) noexcept {
        const Attribute* a = nullptr;
        if (OrtStatus* s = get_attribute(info, name, 2, &a)) return s;
        *out = a->i;
        return static_cast<OrtStatus*>(nullptr);
    };
    // As ONNX Runtime: size is the text's length plus the terminator; a short buffer is an error.
    api.KernelInfoGetAttribute_string = [](const OrtKernelInfo* info, const char* name, char* out,
                                           size_t* size) noexcept {
        const Attribute* a = nullptr;
        if (OrtStatus* s = get_attribute(info, name, 3, &a)) return s;
        const size_t needed = a->text.size() + 1;
        if (out == nullptr) {
            *size = needed;
            return static_cast<OrtStatus*>(nullptr);
        }
        if (*size < needed) return error(ORT_INVALID_ARGUMENT, "Result buffer is not large enough");
        std::memcpy(out, a->text.c_str(), needed);
        *size = needed;
        return static_cast<OrtStatus*>(nullptr);
    };
    api.KernelInfo_GetInputCount = [](const OrtKernelInfo* info, size_t* out) noexcept {
        *out = info->input_count;
        return static_cast<OrtStatus*>(nullptr);
    };
    api.KernelContext_GetInputCount = [](const OrtKernelContext* ctx, size_t* out) noexcept {
        *out = ctx->inputs.size();
        return static_cast<OrtStatus*>(nullptr);
    };
    api.KernelInfoGetAttributeArray_float = [](const OrtKernelInfo* info, const char* name, float* out,
                                               size_t* size) noexcept {
        const Attribute* a = find(info, name);
        return list_attribute(info, name, 4, out, size, sizeof(float), a ? &a->f : nullptr);
    };
    api.KernelInfoGetAttributeArray_int64 = [](const OrtKernelInfo* info, const char* name, int64_t* out,
                                               size_t* size) noexcept {
        const Attribute* a = find(info, name);
        return list_attribute(info, name, 5, out, size, sizeof(int64_t), a ? &a->i : nullptr);
    };
    api.KernelContext_GetInput = [](const OrtKernelContext* ctx, size_t index, const OrtValue** out) noexcept {
        if (index >= ctx->inputs.size()) return error(ORT_INVALID_ARGUMENT, "input index out of range");
        *out = &ctx->inputs[index];
        return static_cast<OrtStatus*>(nullptr);
    };
    api.GetTensorTypeAndShape = [](const OrtValue* value, OrtTensorTypeAndShapeInfo** out) noexcept {
        *out = new OrtTensorTypeAndShapeInfo{value->dims, value->type};
        return static_cast<OrtStatus*>(nullptr);
    };
    api.ReleaseTensorTypeAndShapeInfo = [](OrtTensorTypeAndShapeInfo* info) noexcept { delete info; };
    api.GetDimensionsCount = [](const OrtTensorTypeAndShapeInfo* info, size_t* out) noexcept {
        *out = info->dims.size();
        return static_cast<OrtStatus*>(nullptr);
    };
    api.GetTensorElementType = [](const OrtTensorTypeAndShapeInfo* info, ONNXTensorElementDataType* out) noexcept {
        *out = info->type;
        return static_cast<OrtStatus*>(nullptr);
    };
    api.GetDimensions = [](const OrtTensorTypeAndShapeInfo* info, int64_t* values, size_t length) noexcept {
        if (length < info->dims.size()) return error(ORT_INVALID_ARGUMENT, "dimension buffer too small");
        std::copy(info->dims.begin(), info->dims.end(), values);
        return static_cast<OrtStatus*>(nullptr);
    };
    api.KernelContext_GetOutput = [](OrtKernelContext* ctx, size_t index, const int64_t* dims, size_t count,
                                     OrtValue** out) noexcept {
        if (index != 0) return error(ORT_INVALID_ARGUMENT, "output index out of range");
        ctx->output.dims.assign(dims, dims + count);
        if (ctx->output.dims != ctx->inputs[0].dims) fail("the output's shape differs from the input's");
        ctx->output.data = ctx->in_place ? ctx->inputs[0].data : ctx->output_buffer->data();
        *out = &ctx->output;
        return static_cast<OrtStatus*>(nullptr);
    };
    api.GetTensorMutableData = [](OrtValue* value, void** out) noexcept {
        *out = value->data;
        return static_cast<OrtStatus*>(nullptr);
    };
    // Ranges run on one thread in reverse: the result must not depend on order.
    api.KernelContext_ParallelFor = [](const OrtKernelContext*, void (*fn)(void*, size_t), size_t total, size_t,
                                       void* data) noexcept {
        for (size_t i = total; i-- > 0;) fn(data, i);
        return static_cast<OrtStatus*>(nullptr);
    };
    api.CreateCustomOpDomain = [](const char*, OrtCustomOpDomain** out) noexcept {
        *out = new OrtCustomOpDomain{};
        return static_cast<OrtStatus*>(nullptr);
    };
    api.CustomOpDomain_Add = [](OrtCustomOpDomain* domain, const OrtCustomOp* op) noexcept {
        domain->ops.push_back(op);
        return static_cast<OrtStatus*>(nullptr);
    };
    api.ReleaseCustomOpDomain = [](OrtCustomOpDomain* domain) noexcept { delete domain; };
    api.AddCustomOpDomain = [](OrtSessionOptions*, OrtCustomOpDomain*) noexcept {
        return static_cast<OrtStatus*>(nullptr);
    };
    return api;
}

OrtApi g_api = make_api();
OrtCustomOpDomain* g_domain = nullptr;

const OrtApi* ORT_API_CALL get_api(uint32_t version) noexcept { return version <= ORT_API_VERSION ? &g_api : nullptr; }
const char* ORT_API_CALL version_string() noexcept { return "fuzz harness"; }
const OrtApiBase g_base{get_api, version_string};

Attribute read_attribute(simam_fuzz::Input& in) {
    Attribute a;
    a.kind = in.take<uint8_t>() % 6;
    const uint64_t bits = in.take<uint64_t>();
    std::memcpy(&a.f, &bits, sizeof a.f);
    a.i = static_cast<int64_t>(bits);
    return a;
}

// activation: its kind (a STRING when valid) and one of a few texts, some off the contract.
Attribute read_activation(simam_fuzz::Input& in) {
    static const char* const kTexts[] = {"none", "relu", "silu", "gelu", ""};
    Attribute a;
    a.kind = in.take<uint8_t>() % 6;
    a.text = kTexts[in.take<uint8_t>() % 5];
    a.i = 1;
    return a;
}

bool flag_ok(const Attribute& a) { return a.kind == 0 || (a.kind == 2 && (a.i | 1) == 1); }
int flag_value(const Attribute& a) { return a.kind == 2 ? static_cast<int>(a.i) : 0; }

simam_dtype dtype_of(ONNXTensorElementDataType type) {
    switch (type) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return SIMAM_FLOAT32;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return SIMAM_FLOAT16;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return SIMAM_BFLOAT16;
        default: fail("an op advertises an element type the kernel library lacks");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The library adds its one domain to the options; this harness keeps it through the domain add.
    g_api.AddCustomOpDomain = [](OrtSessionOptions*, OrtCustomOpDomain* domain) noexcept {
        g_domain = domain;
        return static_cast<OrtStatus*>(nullptr);
    };
    if (OrtStatus* s = RegisterCustomOps(nullptr, &g_base)) fail("registration failed: " + s->message);
    if (g_domain == nullptr || g_domain->ops.empty()) fail("registration added no op");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    simam_fuzz::Input in(data, size);
    const OrtCustomOp* op = g_domain->ops[in.take<uint8_t>() % g_domain->ops.size()];
    if (op->GetExecutionProviderType(op) != nullptr) return 0;  // CUDA ops: no GPU in a fuzz run
    OrtKernelInfo info;
    const size_t name_length = in.take<uint8_t>() % 32;
    for (size_t i = 0; i < name_length; ++i) info.name.push_back(static_cast<char>(in.take<uint8_t>() | 1));
    info.e_lambda = read_attribute(in);
    info.unbiased = read_attribute(in);
    info.affine = read_attribute(in);
    info.residual = read_attribute(in);
    info.activation = read_activation(in);
    const size_t count_choice = in.take<uint8_t>() % 5;  // 0: what the attributes say
    const int scale_offset = in.take<uint8_t>() % 3;    // 0: C elements; 1, 2: one fewer / more
    const bool flags_ok = flag_ok(info.affine) && flag_ok(info.residual);
    // Off-contract flags are refused before the count matters: they count as 0 here.
    const int affine = flags_ok ? flag_value(info.affine) : 0;
    const int residual = flags_ok ? flag_value(info.residual) : 0;
    const size_t wanted = static_cast<size_t>(1 + 2 * affine + residual);
    info.input_count = count_choice == 0 ? wanted : count_choice;
    void* kernel = nullptr;
    OrtStatus* status = op->CreateKernelV2(op, &g_api, &info, &kernel);
    const bool lambda_ok = info.e_lambda.kind == 1 && std::isfinite(info.e_lambda.f) && info.e_lambda.f > 0.0f;
    const bool unbiased_ok = info.unbiased.kind == 0 || (info.unbiased.kind == 2 && (info.unbiased.i | 1) == 1);
    const Attribute& act = info.activation;
    const bool activation_ok =
        act.kind == 0 || (act.kind == 3 && (act.text == "none" || act.text == "relu" || act.text == "silu"));
    const bool count_ok = !flags_ok || info.input_count == wanted;
    const bool attributes_ok = lambda_ok && unbiased_ok && flags_ok && activation_ok && count_ok;
    if (status != nullptr) {
        if (attributes_ok) fail("valid attributes were refused: " + status->message);
        if (kernel != nullptr) fail("a refused kernel was handed out");
        if (status->message.find("SimAM node") == std::string::npos) fail("a refusal does not name the node");
        delete status;
        return 0;
    }
    if (!attributes_ok) fail("invalid attributes were accepted");
    const bool unbiased = info.unbiased.kind == 0 || info.unbiased.i == 1;
    const int activation = act.kind == 0 || act.text == "none" ? 0 : (act.text == "relu" ? 1 : 2);
    OrtKernelContext ctx;
    ctx.inputs.resize(wanted);
    const ONNXTensorElementDataType element_type = op->GetInputType(op, 0);
    for (OrtValue& v : ctx.inputs) v.type = element_type;
    const size_t rank = in.take<uint8_t>() % 7;
    int64_t total = 1;
    for (size_t i = 0; i < rank; ++i) {
        ctx.inputs[0].dims.push_back(in.take<uint8_t>() % 16);  // at most 16^4 elements: microseconds a case
        total *= ctx.inputs[0].dims.back();
    }
    ctx.in_place = in.take<uint8_t>() & 1;
    const simam_dtype dtype = dtype_of(element_type);
    const size_t element = dtype == SIMAM_FLOAT32 ? 4 : 2;
    const int64_t channels = rank >= 2 ? ctx.inputs[0].dims[1] : 1;
    const int64_t scale_length = std::max<int64_t>(0, channels + (scale_offset == 1 ? -1 : scale_offset == 2 ? 1 : 0));
    // Other ranks are refused before any data is read: they get no buffer at all.
    const size_t bytes = rank == 4 ? static_cast<size_t>(total) * element : 0;
    auto fill = [&](std::vector<unsigned char>& buffer, size_t size, size_t salt) {
        buffer.resize(size);
        for (size_t i = 0; i < size; ++i)
            buffer[i] = in.remaining() ? in.rest()[(i + salt) % in.remaining()] : uint8_t(i * 29 + salt);
    };
    std::vector<unsigned char> x, scale, bias, r, y(bytes), expected(bytes);
    fill(x, bytes, 0);
    ctx.inputs[0].data = x.data();
    if (affine) {
        fill(scale, static_cast<size_t>(scale_length) * element, 7);
        fill(bias, static_cast<size_t>(scale_length) * element, 13);
        ctx.inputs[1] = OrtValue{{scale_length}, scale.data(), element_type};
        ctx.inputs[2] = OrtValue{{scale_length}, bias.data(), element_type};
    }
    if (residual) {
        fill(r, bytes, 3);
        ctx.inputs[wanted - 1] = OrtValue{ctx.inputs[0].dims, r.data(), element_type};
    }
    ctx.output_buffer = &y;
    const std::vector<unsigned char> original = x;
    status = op->KernelComputeV2(kernel, &ctx);
    const int64_t* d = ctx.inputs[0].dims.data();
    const bool shape_ok = rank == 4 && (!affine || scale_length == channels) &&
                          (total == 0 || !(unbiased && d[2] * d[3] == 1));
    if (status != nullptr) {
        if (shape_ok) fail("a valid input was refused: " + status->message);
        if (status->message.find("SimAM node") == std::string::npos) fail("a run-time error does not name the node");
        delete status;
    } else {
        if (!shape_ok) fail("an invalid input was accepted");
        if (total > 0) {
            simam_problem problem =
                simam_problem_make(d[0], d[1], d[2], d[3], dtype, info.e_lambda.f, unbiased ? 1 : 0);
            problem.scale = affine ? scale.data() : nullptr;
            problem.bias = affine ? bias.data() : nullptr;
            problem.residual = residual ? r.data() : nullptr;
            problem.activation = activation;
            if (simam_run_cpu(&problem, original.data(), expected.data()) != SIMAM_OK)
                fail(std::string("the kernel library refused what the op ran: ") + simam_last_error());
            const std::vector<unsigned char>& got = ctx.in_place ? x : y;
            if (got != expected) fail("the op's result differs from the kernel library's");
            if (!ctx.in_place && x != original) fail("the op wrote to its input");
        }
    }
    op->KernelDestroy(kernel);
    return 0;
}
