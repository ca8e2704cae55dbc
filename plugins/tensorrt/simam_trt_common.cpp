#include "simam_trt_common.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace simam_trt
{
namespace
{

#if SIMAM_TRT_HAS_PLUGIN_LIBRARIES
std::mutex gLoggerMutex;
nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};

nvinfer1::ILogger* currentLogger() noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    if (gLoggerFinder == nullptr)
    {
        return nullptr;
    }
    try
    {
        // findLogger() is not noexcept in every TensorRT version.
        return gLoggerFinder->findLogger();
    }
    catch (...)
    {
        return nullptr;
    }
}
#else
nvinfer1::ILogger* currentLogger() noexcept
{
    return nullptr; // TensorRT 8.5 gives plugins no logger: messages go to stderr
}
#endif

char const* severityTag(nvinfer1::ILogger::Severity severity) noexcept
{
    switch (severity)
    {
    case nvinfer1::ILogger::Severity::kINTERNAL_ERROR: return "internal error";
    case nvinfer1::ILogger::Severity::kERROR: return "error";
    case nvinfer1::ILogger::Severity::kWARNING: return "warning";
    case nvinfer1::ILogger::Severity::kINFO: return "info";
    case nvinfer1::ILogger::Severity::kVERBOSE: return "verbose";
    }
    return "log";
}

// Names by the enum's numeric value, which TensorRT keeps stable across releases: a field arriving
// from a newer runtime (kINT64, kFP8, ... are unknown to 8.6 headers) is still named, never guessed.
constexpr char const* kFieldTypeNames[] = {"kFLOAT16", "kFLOAT32", "kFLOAT64", "kINT8", "kINT16", "kINT32",
    "kCHAR", "kDIMS", "kUNKNOWN", "kBF16", "kINT64", "kFP8", "kINT4", "kFP4"};

} // namespace

std::string fieldTypeName(nvinfer1::PluginFieldType type)
{
    auto const value = static_cast<int32_t>(type);
    constexpr auto kKnown = static_cast<int32_t>(sizeof(kFieldTypeNames) / sizeof(kFieldTypeNames[0]));
    if (value >= 0 && value < kKnown)
    {
        return kFieldTypeNames[value];
    }
    return "an unknown PluginFieldType (value " + std::to_string(value) + ")";
}

namespace
{

bool sameName(char const* name, char const* expected) noexcept
{
    // Bounded compare: names come from files and may not be terminated where we expect.
    return std::strncmp(name, expected, kMaxNameLength) == 0;
}

// A field must carry exactly one value of the expected type, with readable data. May throw
// (bad_alloc while building a message): only called inside parseFields' try block.
bool checkScalarField(nvinfer1::PluginField const& field, nvinfer1::PluginFieldType expected,
    char const* expectedName)
{
    if (field.type != expected)
    {
        logError(std::string("SimAM: field '") + expectedName + "' has type " + fieldTypeName(field.type)
            + ", expected "
            + (expected == nvinfer1::PluginFieldType::kFLOAT32 ? "kFLOAT32 (an ONNX FLOAT attribute)"
                                                                : "kINT32 (an ONNX INT attribute)"));
        return false;
    }
    if (field.length != 1)
    {
        logError(std::string("SimAM: field '") + expectedName + "' has length " + std::to_string(field.length)
            + ", expected 1 (a scalar attribute, not a list)");
        return false;
    }
    if (field.data == nullptr)
    {
        logError(std::string("SimAM: field '") + expectedName + "' has no data");
        return false;
    }
    return true;
}

} // namespace

#if SIMAM_TRT_HAS_PLUGIN_LIBRARIES
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    gLoggerFinder = finder;
}
#endif

void logMessage(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        if (nvinfer1::ILogger* logger = currentLogger())
        {
            logger->log(severity, message.c_str());
            return;
        }
        if (severity <= nvinfer1::ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "[simam-trt] %s: %s\n", severityTag(severity), message.c_str());
        }
    }
    catch (...)
    {
        // Logging must never take the process down.
    }
}

void logUnexpected(char const* where) noexcept
{
    std::fprintf(stderr, "[simam-trt] error: unexpected failure (out of memory?) in %s\n", where);
}

nvinfer1::PluginFieldCollection const* advertisedFields() noexcept
{
    static nvinfer1::PluginField const kFields[] = {
        nvinfer1::PluginField(kFieldLambda, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1),
        nvinfer1::PluginField(kFieldUnbiased, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
    };
    static nvinfer1::PluginFieldCollection const kCollection{2, kFields};
    return &kCollection;
}

bool validParams(SimamParams const& params, std::string& why) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (!std::isfinite(params.eLambda) || params.eLambda <= 0.0F)
    {
        why = "e_lambda must be a finite number > 0 (the paper uses 1e-4), got " + std::to_string(params.eLambda);
        return false;
    }
    if (params.unbiased != 0 && params.unbiased != 1)
    {
        why = "unbiased must be 0 or 1, got " + std::to_string(params.unbiased);
        return false;
    }
    return true;
    SIMAM_TRT_GUARD_END(false)
}

bool parseFields(nvinfer1::PluginFieldCollection const* fc, SimamParams& out) noexcept
{
    try
    {
        if (fc == nullptr)
        {
            logError("SimAM: no field collection given; expected fields e_lambda (kFLOAT32) and unbiased (kINT32)");
            return false;
        }
        if (fc->nbFields < 0 || fc->nbFields > kMaxFields)
        {
            logError("SimAM: field collection claims " + std::to_string(fc->nbFields) + " fields");
            return false;
        }
        if (fc->nbFields > 0 && fc->fields == nullptr)
        {
            logError("SimAM: field collection has " + std::to_string(fc->nbFields) + " fields but no field array");
            return false;
        }
        SimamParams params;
        bool haveLambda = false;
        bool haveUnbiased = false;
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            nvinfer1::PluginField const& field = fc->fields[i];
            std::string name;
            if (!safeString(field.name, name))
            {
                logError("SimAM: field " + std::to_string(i) + " has no name or an over-long name");
                return false;
            }
            if (sameName(field.name, kFieldLambda))
            {
                if (haveLambda)
                {
                    logError("SimAM: field 'e_lambda' given twice");
                    return false;
                }
                if (!checkScalarField(field, nvinfer1::PluginFieldType::kFLOAT32, kFieldLambda))
                {
                    return false;
                }
                std::memcpy(&params.eLambda, field.data, sizeof(float));
                haveLambda = true;
            }
            else if (sameName(field.name, kFieldUnbiased))
            {
                if (haveUnbiased)
                {
                    logError("SimAM: field 'unbiased' given twice");
                    return false;
                }
                if (!checkScalarField(field, nvinfer1::PluginFieldType::kINT32, kFieldUnbiased))
                {
                    return false;
                }
                std::memcpy(&params.unbiased, field.data, sizeof(int32_t));
                haveUnbiased = true;
            }
            else
            {
                logWarning("SimAM: ignoring unknown field '" + name + "'");
            }
        }
        if (!haveLambda)
        {
            // No silent default: lambda changes the numbers, and the ONNX contract always sets it.
            logError("SimAM: required field 'e_lambda' (kFLOAT32, length 1) is missing; "
                     "the ONNX SimAM node must carry the FLOAT attribute e_lambda");
            return false;
        }
        std::string why;
        if (!validParams(params, why))
        {
            logError("SimAM: " + why);
            return false;
        }
        out = params;
        return true;
    }
    catch (...)
    {
        logError("SimAM: unexpected failure while reading plugin fields");
        return false;
    }
}

bool safeString(char const* text, std::string& out) noexcept
{
    if (text == nullptr)
    {
        return false;
    }
    std::size_t const length = strnlen(text, kMaxNameLength + 1);
    if (length > kMaxNameLength)
    {
        return false;
    }
    try
    {
        out.assign(text, length);
    }
    catch (...)
    {
        return false;
    }
    return true;
}

namespace
{
constexpr uint32_t kMagic = 0x414D4953U; // "SIMA" read as little-endian bytes
constexpr uint32_t kFormatVersion = 1U;
} // namespace

void serializeParams(SimamParams const& params, void* buffer) noexcept
{
    if (buffer == nullptr)
    {
        return;
    }
    auto* bytes = static_cast<unsigned char*>(buffer);
    std::memcpy(bytes + 0, &kMagic, 4);
    std::memcpy(bytes + 4, &kFormatVersion, 4);
    std::memcpy(bytes + 8, &params.eLambda, 4);
    std::memcpy(bytes + 12, &params.unbiased, 4);
}

bool deserializeParams(void const* buffer, std::size_t length, SimamParams& out) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (buffer == nullptr || length != kSerializedSize)
    {
        logError("SimAM: serialized plugin data has " + std::to_string(length) + " bytes, expected "
            + std::to_string(kSerializedSize) + "; the engine was built with a different plugin library");
        return false;
    }
    auto const* bytes = static_cast<unsigned char const*>(buffer);
    uint32_t magic = 0;
    uint32_t version = 0;
    SimamParams params;
    std::memcpy(&magic, bytes + 0, 4);
    std::memcpy(&version, bytes + 4, 4);
    std::memcpy(&params.eLambda, bytes + 8, 4);
    std::memcpy(&params.unbiased, bytes + 12, 4);
    if (magic != kMagic || version != kFormatVersion)
    {
        logError("SimAM: serialized plugin data is not a SimAM v1 record (bad magic or format version)");
        return false;
    }
    std::string why;
    if (!validParams(params, why))
    {
        logError("SimAM: serialized plugin data is invalid: " + why);
        return false;
    }
    out = params;
    return true;
    SIMAM_TRT_GUARD_END(false)
}

bool isSupportedType(nvinfer1::DataType type) noexcept
{
    simam_dtype ignored{};
    return toSimamType(type, ignored);
}

bool toSimamType(nvinfer1::DataType type, simam_dtype& out) noexcept
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: out = SIMAM_FLOAT32; return true;
    case nvinfer1::DataType::kHALF: out = SIMAM_FLOAT16; return true;
#if SIMAM_TRT_HAS_BF16
    case nvinfer1::DataType::kBF16: out = SIMAM_BFLOAT16; return true;
#endif
    default: return false;
    }
}

char const* typeName(nvinfer1::DataType type) noexcept
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: return "float32";
    case nvinfer1::DataType::kHALF: return "float16";
#if SIMAM_TRT_HAS_BF16
    case nvinfer1::DataType::kBF16: return "bfloat16";
#endif
    case nvinfer1::DataType::kINT8: return "int8";
    case nvinfer1::DataType::kINT32: return "int32";
    default: return "an unsupported type";
    }
}

size_t workspaceFor(nvinfer1::Dims const& maxDims, nvinfer1::DataType type) noexcept
{
    simam_dtype dtype{};
    if (maxDims.nbDims != kRank || !toSimamType(type, dtype))
    {
        return 0;
    }
    for (int32_t i = 0; i < kRank; ++i)
    {
        if (maxDims.d[i] <= 0)
        {
            return 0;
        }
    }
    return simam_cuda_workspace_size(static_cast<int64_t>(maxDims.d[0]), static_cast<int64_t>(maxDims.d[1]),
        static_cast<int64_t>(maxDims.d[2]), static_cast<int64_t>(maxDims.d[3]), dtype);
}

int32_t launchSimam(nvinfer1::Dims const& dims, nvinfer1::DataType type, void const* input, void* output,
    void* workspace, SimamParams const& params, cudaStream_t stream) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (dims.nbDims != kRank)
    {
        logError("SimAM: enqueue got a rank-" + std::to_string(dims.nbDims) + " tensor, expected NCHW (rank 4)");
        return -1;
    }
    int64_t extent[kRank];
    for (int32_t i = 0; i < kRank; ++i)
    {
        extent[i] = static_cast<int64_t>(dims.d[i]);
        if (extent[i] < 0)
        {
            logError("SimAM: enqueue got an unresolved (negative) dimension");
            return -1;
        }
        if (extent[i] == 0)
        {
            return 0; // empty tensor: nothing to compute
        }
    }
    simam_dtype dtype{};
    if (!toSimamType(type, dtype))
    {
        logError(std::string("SimAM: enqueue got ") + typeName(type) + ", supported: float32, float16"
            + (SIMAM_TRT_HAS_BF16 ? ", bfloat16" : ""));
        return -1;
    }
    if (input == nullptr || output == nullptr)
    {
        logError("SimAM: enqueue got a null input or output pointer");
        return -1;
    }
    // TensorRT sized the workspace with workspaceFor(max shape) >= what this shape needs.
    size_t const workspaceBytes
        = workspace != nullptr ? simam_cuda_workspace_size(extent[0], extent[1], extent[2], extent[3], dtype) : 0;
    simam_status const status = simam_forward_cuda_ws(input, output, extent[0], extent[1], extent[2], extent[3],
        dtype, params.eLambda, params.unbiased, workspace, workspaceBytes, static_cast<void*>(stream));
    if (status != SIMAM_OK)
    {
        logError(std::string("SimAM: kernel launch failed: ") + simam_status_string(status) + ": "
            + simam_last_error());
        return -1;
    }
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

} // namespace simam_trt
