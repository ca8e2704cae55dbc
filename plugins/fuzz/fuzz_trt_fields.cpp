// libFuzzer target: what the TensorRT plugin reads from model and engine files, compiled against
// one TensorRT header set (the build makes one binary per version: 11.1 for IPluginV3, 8.6 for
// IPluginV2DynamicExt). Needs no TensorRT library: simam_trt_common.cpp only uses the headers.
//   mode 0: deserializeParams (the V2 engine blob)
//   mode 1: parseFields (the V3 runtime path: TensorRT hands the serialized fields back to
//           createPlugin; also the build path of both versions: fields from the ONNX node)
//   mode 2: workspaceFor / launchSimam with the dimensions, type, format and inputs TensorRT would pass
// Contract checked: a refusal logs an error; an acceptance yields valid parameters that survive a
// round trip through the advertised fields and the V2 record.
//
// Input layout (little endian; scripts/fuzz_seeds.py writes the seeds):
//   mode 0: u8 0 | blob (the rest)
//   mode 1: u8 1 | i8 nbFields | per field: u8 name choice, i32 type, i8 length, u8 null data, data bytes
//   mode 2: u8 2 | i32 nbDims | 8 x i64 d | i32 data type | u8 null pointers | i32 tensor format |
//           u8 epilogue (bit 0 affine, bit 1 residual, bits 2-3 activation code) | i8 input count
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "fuzz_input.h"
#include "simam_trt_common.h"

namespace {

// Counts what the plugin logs instead of printing it: a refusal must come with an error.
class CountingLogger : public nvinfer1::ILogger {
public:
    void log(Severity severity, nvinfer1::AsciiChar const*) noexcept override {
        if (severity <= Severity::kERROR) ++errors;
    }
    int errors = 0;
};

class Finder : public nvinfer1::ILoggerFinder {
public:
    nvinfer1::ILogger* findLogger() override { return &logger; }
    CountingLogger logger;
};

Finder g_finder;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_trt_fields (TensorRT %d.%d headers): contract broken: %s\n", NV_TENSORRT_MAJOR,
                 NV_TENSORRT_MINOR, what);
    std::abort();
}

bool same_params(simam_trt::SimamParams const& a, simam_trt::SimamParams const& b) {
    return std::memcmp(&a.eLambda, &b.eLambda, sizeof(float)) == 0 && a.unbiased == b.unbiased &&
           a.affine == b.affine && a.residual == b.residual && a.activation == b.activation;
}

void check_accepted(simam_trt::SimamParams const& params) {
    std::string why;
    if (!simam_trt::validParams(params, why)) fail("accepted parameters are not valid");
    // The V2 record round trip (format 1 without an epilogue, 2 with one).
    const size_t size = simam_trt::serializedSize(params);
    if (size != (params.hasEpilogue() ? simam_trt::kSerializedSizeV2 : simam_trt::kSerializedSizeV1))
        fail("the record size does not follow the epilogue");
    unsigned char blob[simam_trt::kSerializedSizeV2];
    simam_trt::serializeParams(params, blob);
    simam_trt::SimamParams back;
    if (!simam_trt::deserializeParams(blob, size, back)) fail("a serialized record was refused");
    if (!same_params(back, params)) fail("the V2 record round trip changed the parameters");
    // The V3 round trip: the fields the creator advertises, filled with these values (activation as
    // the ONNX parser passes a STRING: its characters, unterminated).
    nvinfer1::PluginFieldCollection const* advertised = simam_trt::advertisedFields();
    std::vector<nvinfer1::PluginField> fields(advertised->fields, advertised->fields + advertised->nbFields);
    const char* activation = simam_trt::activationName(params.activation);
    for (nvinfer1::PluginField& field : fields) {
        if (std::strcmp(field.name, simam_trt::kFieldLambda) == 0) field.data = &params.eLambda;
        else if (std::strcmp(field.name, simam_trt::kFieldUnbiased) == 0) field.data = &params.unbiased;
        else if (std::strcmp(field.name, simam_trt::kFieldAffine) == 0) field.data = &params.affine;
        else if (std::strcmp(field.name, simam_trt::kFieldResidual) == 0) field.data = &params.residual;
        else if (std::strcmp(field.name, simam_trt::kFieldActivation) == 0) {
            field.data = activation;
            field.length = static_cast<int32_t>(std::strlen(activation));
        } else fail("the creator advertises a field this target does not know");
    }
    nvinfer1::PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    simam_trt::SimamParams again;
    if (!simam_trt::parseFields(&fc, again)) fail("the advertised fields were refused");
    if (!same_params(again, params)) fail("the field round trip changed the parameters");
}

// Bytes per element of a field type; 8 (the widest) for types these headers do not name, so the
// buffer is never smaller than what a correct reader could touch for `length` elements.
size_t field_element_size(int32_t type) {
    switch (static_cast<nvinfer1::PluginFieldType>(type)) {
        case nvinfer1::PluginFieldType::kFLOAT16: return 2;
        case nvinfer1::PluginFieldType::kFLOAT32: return 4;
        case nvinfer1::PluginFieldType::kFLOAT64: return 8;
        case nvinfer1::PluginFieldType::kINT8: return 1;
        case nvinfer1::PluginFieldType::kINT16: return 2;
        case nvinfer1::PluginFieldType::kINT32: return 4;
        case nvinfer1::PluginFieldType::kCHAR: return 1;
        case nvinfer1::PluginFieldType::kDIMS: return sizeof(nvinfer1::Dims);
        default: return 8;
    }
}

void fuzz_fields(simam_fuzz::Input& in) {
    const int32_t count = in.take<int8_t>();
    // Names: the two real ones, an unknown one, null, empty, unterminated within the bound.
    static const std::string kLong(simam_trt::kMaxNameLength + 8, 'e');
    const int32_t stored = count < 0 ? 0 : count;
    std::vector<nvinfer1::PluginField> fields(static_cast<size_t>(stored));
    std::vector<std::vector<unsigned char>> buffers(static_cast<size_t>(stored));
    for (int32_t i = 0; i < stored; ++i) {
        nvinfer1::PluginField& field = fields[static_cast<size_t>(i)];
        const uint8_t name = in.take<uint8_t>();
        const int32_t type = in.take<int32_t>();
        const int32_t length = in.take<int8_t>();
        const bool null_data = in.take<uint8_t>() & 1;
        static const char* const kNames[] = {"e_lambda", "unbiased", "alpha",    "",         nullptr,    kLong.c_str(),
                                             "e_lambda\0x", "unbiase", "affine", "residual", "activation", "activatio"};
        field.name = kNames[name % (sizeof kNames / sizeof kNames[0])];
        field.type = static_cast<nvinfer1::PluginFieldType>(type);
        field.length = length;
        std::vector<unsigned char>& buffer = buffers[static_cast<size_t>(i)];
        buffer.resize(static_cast<size_t>(length > 0 ? length : 0) * field_element_size(type));
        for (unsigned char& b : buffer) b = in.take<uint8_t>();
        field.data = null_data ? nullptr : (buffer.empty() ? nullptr : buffer.data());
    }
    nvinfer1::PluginFieldCollection fc{count, count > 0 ? fields.data() : nullptr};
    const int before = g_finder.logger.errors;
    simam_trt::SimamParams params;
    // count <= 0 with a null array and oversize counts (> kMaxFields: the array is never walked
    // then, as the plugin promises) are part of the input space.
    if (count > simam_trt::kMaxFields) fc.fields = nullptr;
    if (simam_trt::parseFields(&fc, params)) {
        check_accepted(params);
    } else if (g_finder.logger.errors == before) {
        fail("parseFields refused without logging an error");
    }
    if (simam_trt::parseFields(nullptr, params)) fail("a null collection was accepted");
}

void fuzz_blob(simam_fuzz::Input& in) {
    std::vector<unsigned char> blob(in.rest(), in.rest() + in.remaining());
    const int before = g_finder.logger.errors;
    simam_trt::SimamParams params;
    if (simam_trt::deserializeParams(blob.data(), blob.size(), params)) {
        if (blob.size() != simam_trt::serializedSize(params)) fail("a record of the wrong size was accepted");
        check_accepted(params);
        unsigned char again[simam_trt::kSerializedSizeV2];
        simam_trt::serializeParams(params, again);
        if (std::memcmp(again, blob.data(), blob.size()) != 0) fail("an accepted record does not re-serialize to itself");
    } else if (g_finder.logger.errors == before) {
        fail("deserializeParams refused without logging an error");
    }
}

void fuzz_dims(simam_fuzz::Input& in) {
    nvinfer1::Dims dims{};
    dims.nbDims = in.take<int32_t>();
    for (auto& d : dims.d) d = static_cast<std::remove_reference_t<decltype(d)>>(in.take<int64_t>());
    const auto type = static_cast<nvinfer1::DataType>(in.take<int32_t>());
    const bool null_pointers = in.take<uint8_t>() & 1;
    const auto format = static_cast<nvinfer1::TensorFormat>(in.take<int32_t>());
    const uint8_t epilogue = in.take<uint8_t>();
    const int32_t count = in.take<int8_t>();
    simam_trt::SimamParams params;
    params.affine = epilogue & 1;
    params.residual = (epilogue >> 1) & 1;
    params.activation = (epilogue >> 2) % 3;
    // An input count of 0 (what every seed written before the epilogue reads here) means "as the
    // parameters say".
    const int32_t nb_inputs = count == 0 ? params.nbInputs() : count;
    (void)simam_trt::workspaceFor(dims, type, format, params);
    (void)simam_trt::isSupportedType(type);
    (void)simam_trt::typeName(type);
    (void)simam_trt::formatName(format);
    for (auto policy : {simam_trt::FormatPolicy::kLinear, simam_trt::FormatPolicy::kChannelLast,
                        simam_trt::FormatPolicy::kAll})
        (void)simam_trt::offersFormat(policy, type, format);
    // No CUDA in this build: a launch that passes validation stops at the kernel library's
    // "no CUDA kernels" error before any pointer is used, so a small host buffer stands in.
    float buffer[4] = {};
    const void* inputs[4] = {buffer, buffer, buffer, buffer};
    nvinfer1::PluginTensorDesc desc{};
    desc.dims = dims;
    desc.type = type;
    desc.format = format;
    const int before = g_finder.logger.errors;
    const int32_t rc = simam_trt::launchSimam(desc, nb_inputs, null_pointers ? nullptr : inputs,
                                              null_pointers ? nullptr : buffer, nullptr, params, nullptr);
    if (rc != 0 && g_finder.logger.errors == before) fail("launchSimam failed without logging an error");
    if (rc == 0) {
        bool empty = false;
        for (int32_t i = 0; i < simam_trt::kRank; ++i) empty = empty || dims.d[i] == 0;
        if (dims.nbDims != simam_trt::kRank || !empty) fail("launchSimam succeeded without CUDA on a non-empty tensor");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    simam_trt::setLoggerFinder(&g_finder);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    simam_fuzz::Input in(data, size);
    switch (in.take<uint8_t>() % 3) {
        case 0: fuzz_blob(in); break;
        case 1: fuzz_fields(in); break;
        default: fuzz_dims(in); break;
    }
    return 0;
}
