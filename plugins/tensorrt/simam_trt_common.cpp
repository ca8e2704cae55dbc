#include "simam_trt_common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
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
    // activation's length is the string's (the parser passes the ONNX STRING's bytes, unterminated).
    static nvinfer1::PluginField const kFields[] = {
        nvinfer1::PluginField(kFieldLambda, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1),
        nvinfer1::PluginField(kFieldUnbiased, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
        nvinfer1::PluginField(kFieldAffine, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
        nvinfer1::PluginField(kFieldResidual, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
        nvinfer1::PluginField(kFieldActivation, nullptr, nvinfer1::PluginFieldType::kCHAR, 0),
    };
    static nvinfer1::PluginFieldCollection const kCollection{5, kFields};
    return &kCollection;
}

char const* activationName(int32_t activation) noexcept
{
    switch (activation)
    {
    case SIMAM_ACTIVATION_NONE: return "none";
    case SIMAM_ACTIVATION_RELU: return "relu";
    case SIMAM_ACTIVATION_SILU: return "silu";
    default: return nullptr;
    }
}

Role roleOf(SimamParams const& params, int32_t pos) noexcept
{
    int32_t const inputs = params.nbInputs();
    if (pos < 0 || pos > inputs)
    {
        return Role::kNone;
    }
    if (pos == 0)
    {
        return Role::kX;
    }
    if (pos == inputs)
    {
        return Role::kOutput;
    }
    if (params.affine != 0 && pos <= 2)
    {
        return pos == 1 ? Role::kScale : Role::kBias;
    }
    return Role::kResidual;
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
    if (params.affine != 0 && params.affine != 1)
    {
        why = "affine must be 0 or 1 (1: inputs 1 and 2 are scale and bias), got " + std::to_string(params.affine);
        return false;
    }
    if (params.residual != 0 && params.residual != 1)
    {
        why = "residual must be 0 or 1 (1: the last input is added), got " + std::to_string(params.residual);
        return false;
    }
    if (activationName(params.activation) == nullptr)
    {
        why = "activation code " + std::to_string(params.activation) + " is not none (0), relu (1) or silu (2)";
        return false;
    }
    return true;
    SIMAM_TRT_GUARD_END(false)
}

namespace
{

// Longest activation string we read ("none", "relu", "silu" and room for a terminator or two).
constexpr int32_t kMaxActivationLength = 16;

// activation: kCHAR of `length` bytes, not NUL-terminated (trailing NULs are tolerated: some writers
// count the terminator). May throw (bad_alloc while building a message): call inside a try block.
bool parseActivation(nvinfer1::PluginField const& field, int32_t& out)
{
    if (field.type != nvinfer1::PluginFieldType::kCHAR)
    {
        logError("SimAM: field 'activation' has type " + fieldTypeName(field.type)
            + ", expected kCHAR (an ONNX STRING attribute: none, relu or silu)");
        return false;
    }
    if (field.length < 1 || field.length > kMaxActivationLength)
    {
        logError("SimAM: field 'activation' has length " + std::to_string(field.length)
            + ", expected the characters of none, relu or silu");
        return false;
    }
    if (field.data == nullptr)
    {
        logError("SimAM: field 'activation' has no data");
        return false;
    }
    std::string text(static_cast<char const*>(field.data), static_cast<std::size_t>(field.length));
    while (!text.empty() && text.back() == '\0')
    {
        text.pop_back();
    }
    for (int32_t code : {SIMAM_ACTIVATION_NONE, SIMAM_ACTIVATION_RELU, SIMAM_ACTIVATION_SILU})
    {
        if (text == activationName(code))
        {
            out = code;
            return true;
        }
    }
    for (char& c : text)
    {
        c = (c >= 0x20 && c < 0x7F) ? c : '?'; // the message must stay printable
    }
    logError("SimAM: field 'activation' is '" + text + "'; expected none, relu or silu");
    return false;
}

} // namespace

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
        bool haveAffine = false;
        bool haveResidual = false;
        bool haveActivation = false;
        // A scalar kINT32 field read once into `target`.
        auto readInt = [](nvinfer1::PluginField const& field, char const* name, bool& seen, int32_t& target) {
            if (seen)
            {
                logError(std::string("SimAM: field '") + name + "' given twice");
                return false;
            }
            if (!checkScalarField(field, nvinfer1::PluginFieldType::kINT32, name))
            {
                return false;
            }
            std::memcpy(&target, field.data, sizeof(int32_t));
            seen = true;
            return true;
        };
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
                if (!readInt(field, kFieldUnbiased, haveUnbiased, params.unbiased))
                {
                    return false;
                }
            }
            else if (sameName(field.name, kFieldAffine))
            {
                if (!readInt(field, kFieldAffine, haveAffine, params.affine))
                {
                    return false;
                }
            }
            else if (sameName(field.name, kFieldResidual))
            {
                if (!readInt(field, kFieldResidual, haveResidual, params.residual))
                {
                    return false;
                }
            }
            else if (sameName(field.name, kFieldActivation))
            {
                if (haveActivation)
                {
                    logError("SimAM: field 'activation' given twice");
                    return false;
                }
                if (!parseActivation(field, params.activation))
                {
                    return false;
                }
                haveActivation = true;
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
constexpr uint32_t kFormatV1 = 1U;
constexpr uint32_t kFormatV2 = 2U;
} // namespace

std::size_t serializedSize(SimamParams const& params) noexcept
{
    return params.hasEpilogue() ? kSerializedSizeV2 : kSerializedSizeV1;
}

void serializeParams(SimamParams const& params, void* buffer) noexcept
{
    if (buffer == nullptr)
    {
        return;
    }
    auto* bytes = static_cast<unsigned char*>(buffer);
    bool const v2 = params.hasEpilogue();
    uint32_t const version = v2 ? kFormatV2 : kFormatV1;
    std::memcpy(bytes + 0, &kMagic, 4);
    std::memcpy(bytes + 4, &version, 4);
    std::memcpy(bytes + 8, &params.eLambda, 4);
    std::memcpy(bytes + 12, &params.unbiased, 4);
    if (v2)
    {
        std::memcpy(bytes + 16, &params.affine, 4);
        std::memcpy(bytes + 20, &params.residual, 4);
        std::memcpy(bytes + 24, &params.activation, 4);
    }
}

bool deserializeParams(void const* buffer, std::size_t length, SimamParams& out) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (buffer == nullptr || (length != kSerializedSizeV1 && length != kSerializedSizeV2))
    {
        logError("SimAM: serialized plugin data has " + std::to_string(length) + " bytes, expected "
            + std::to_string(kSerializedSizeV1) + " (format 1) or " + std::to_string(kSerializedSizeV2)
            + " (format 2); the engine was built with a different plugin library");
        return false;
    }
    auto const* bytes = static_cast<unsigned char const*>(buffer);
    uint32_t magic = 0;
    uint32_t version = 0;
    SimamParams params;
    std::memcpy(&magic, bytes + 0, 4);
    std::memcpy(&version, bytes + 4, 4);
    uint32_t const expected = length == kSerializedSizeV1 ? kFormatV1 : kFormatV2;
    if (magic != kMagic || version != expected)
    {
        logError("SimAM: serialized plugin data is not a SimAM record of format " + std::to_string(expected)
            + " (bad magic or format version " + std::to_string(version)
            + "); the engine was built with a different plugin library");
        return false;
    }
    std::memcpy(&params.eLambda, bytes + 8, 4);
    std::memcpy(&params.unbiased, bytes + 12, 4);
    if (version == kFormatV2)
    {
        std::memcpy(&params.affine, bytes + 16, 4);
        std::memcpy(&params.residual, bytes + 20, 4);
        std::memcpy(&params.activation, bytes + 24, 4);
    }
    std::string why;
    if (!validParams(params, why))
    {
        logError("SimAM: serialized plugin data is invalid: " + why);
        return false;
    }
    if (version == kFormatV2 && !params.hasEpilogue())
    {
        // Writers use format 1 for this: a format 2 record without an epilogue was not written by us.
        logError("SimAM: serialized plugin data is a format 2 record without an epilogue");
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

// ---- formats -------------------------------------------------------------------------------------

FormatPolicy defaultFormatPolicy() noexcept
{
#if NV_TENSORRT_MAJOR >= 11
    return FormatPolicy::kChannelLast;
#else
    return FormatPolicy::kAll;
#endif
}

char const* formatPolicyName(FormatPolicy policy) noexcept
{
    switch (policy)
    {
    case FormatPolicy::kLinear: return "linear";
    case FormatPolicy::kChannelLast: return "channel-last";
    case FormatPolicy::kAll: return "all";
    }
    return "unknown";
}

bool formatPolicyFromEnvironment(FormatPolicy& out, std::string& why) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    char const* value = std::getenv(kFormatsEnv);
    std::string text;
    if (value != nullptr && !safeString(value, text))
    {
        why = std::string(kFormatsEnv) + " is over-long; set it to auto, linear, channel-last or all";
        return false;
    }
    if (text.empty() || text == "auto")
    {
        out = defaultFormatPolicy();
        return true;
    }
    for (FormatPolicy policy : {FormatPolicy::kLinear, FormatPolicy::kChannelLast, FormatPolicy::kAll})
    {
        if (text == formatPolicyName(policy))
        {
            out = policy;
            return true;
        }
    }
    for (char& c : text)
    {
        c = (c >= 0x20 && c < 0x7F) ? c : '?';
    }
    why = std::string(kFormatsEnv) + "='" + text + "' is not one of auto, linear, channel-last, all; unset it or "
        + "pick one of those";
    return false;
    SIMAM_TRT_GUARD_END(false)
}

namespace
{
bool isSixteenBit(nvinfer1::DataType type) noexcept
{
#if SIMAM_TRT_HAS_BF16
    if (type == nvinfer1::DataType::kBF16)
    {
        return true;
    }
#endif
    return type == nvinfer1::DataType::kHALF;
}

bool isBFloat16(nvinfer1::DataType type) noexcept
{
#if SIMAM_TRT_HAS_BF16
    return type == nvinfer1::DataType::kBF16;
#else
    (void) type;
    return false;
#endif
}
} // namespace

bool offersFormat(FormatPolicy policy, nvinfer1::DataType type, nvinfer1::TensorFormat format) noexcept
{
    using nvinfer1::TensorFormat;
    if (!isSupportedType(type))
    {
        return false;
    }
    switch (format)
    {
    // bf16 keeps kLINEAR under channel-last: TensorRT for RTX 1.7 finds no tactic for a bf16 plugin
    // offered kHWC alone ("Failed to find any supported plugin/custom tactic format"), so the
    // engine would not build at all.
    case TensorFormat::kLINEAR: return policy != FormatPolicy::kChannelLast || isBFloat16(type);
    case TensorFormat::kHWC: return policy != FormatPolicy::kLinear;
    case TensorFormat::kHWC8: return policy == FormatPolicy::kAll && isSixteenBit(type);
    case TensorFormat::kHWC16: return policy == FormatPolicy::kAll && type == nvinfer1::DataType::kHALF;
    default: return false;
    }
}

char const* formatName(nvinfer1::TensorFormat format) noexcept
{
    switch (format)
    {
    case nvinfer1::TensorFormat::kLINEAR: return "kLINEAR";
    case nvinfer1::TensorFormat::kHWC: return "kHWC";
    case nvinfer1::TensorFormat::kHWC8: return "kHWC8";
    case nvinfer1::TensorFormat::kHWC16: return "kHWC16";
    default: return "an unsupported format";
    }
}

bool makeProblem(nvinfer1::Dims const& dims, nvinfer1::DataType type, nvinfer1::TensorFormat format,
    SimamParams const& params, simam_problem& out, std::string& why) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (dims.nbDims != kRank)
    {
        why = "got a rank-" + std::to_string(dims.nbDims) + " tensor, expected NCHW (rank 4)";
        return false;
    }
    int64_t extent[kRank];
    for (int32_t i = 0; i < kRank; ++i)
    {
        extent[i] = static_cast<int64_t>(dims.d[i]);
        if (extent[i] < 0)
        {
            why = "got an unresolved (negative) dimension";
            return false;
        }
    }
    simam_dtype dtype{};
    if (!toSimamType(type, dtype))
    {
        why = std::string("got ") + typeName(type) + ", supported: float32, float16"
            + (SIMAM_TRT_HAS_BF16 ? ", bfloat16" : "");
        return false;
    }
    simam_problem problem
        = simam_problem_make(extent[0], extent[1], extent[2], extent[3], dtype, params.eLambda, params.unbiased);
    int64_t const channels = extent[1];
    switch (format)
    {
    case nvinfer1::TensorFormat::kLINEAR: break;
    case nvinfer1::TensorFormat::kHWC:
        problem.layout = SIMAM_LAYOUT_NHWC;
        problem.channel_stride = channels;
        break;
    case nvinfer1::TensorFormat::kHWC8:
        problem.layout = SIMAM_LAYOUT_NHWC;
        problem.channel_stride = (channels + 7) / 8 * 8;
        break;
    case nvinfer1::TensorFormat::kHWC16:
        problem.layout = SIMAM_LAYOUT_NHWC;
        problem.channel_stride = (channels + 15) / 16 * 16;
        break;
    default:
        why = "got tensor format " + std::to_string(static_cast<int32_t>(format))
            + ", supported: kLINEAR, kHWC, kHWC8, kHWC16";
        return false;
    }
    problem.activation = params.activation;
    out = problem;
    return true;
    SIMAM_TRT_GUARD_END(false)
}

size_t workspaceFor(nvinfer1::Dims const& maxDims, nvinfer1::DataType type, nvinfer1::TensorFormat format,
    SimamParams const& params) noexcept
{
    simam_problem problem{};
    std::string why;
    if (!makeProblem(maxDims, type, format, params, problem, why))
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
    return simam_run_cuda_workspace_size(&problem);
}

int32_t launchSimam(nvinfer1::PluginTensorDesc const& xDesc, int32_t nbInputs, void const* const* inputs,
    void* output, void* workspace, SimamParams const& params, cudaStream_t stream) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    simam_problem problem{};
    std::string why;
    if (!makeProblem(xDesc.dims, xDesc.type, xDesc.format, params, problem, why))
    {
        logError("SimAM: enqueue " + why);
        return -1;
    }
    if (problem.N == 0 || problem.C == 0 || problem.H == 0 || problem.W == 0)
    {
        return 0; // empty tensor: nothing to compute
    }
    if (nbInputs != params.nbInputs() || inputs == nullptr)
    {
        logError("SimAM: enqueue got " + std::to_string(nbInputs) + " inputs, the node has "
            + std::to_string(params.nbInputs()));
        return -1;
    }
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        if (inputs[i] == nullptr)
        {
            logError("SimAM: enqueue got a null pointer for input " + std::to_string(i));
            return -1;
        }
    }
    if (output == nullptr)
    {
        logError("SimAM: enqueue got a null output pointer");
        return -1;
    }
    if (params.affine != 0)
    {
        problem.scale = inputs[1];
        problem.bias = inputs[2];
    }
    if (params.residual != 0)
    {
        problem.residual = inputs[params.nbInputs() - 1];
    }
    // TensorRT sized the workspace with workspaceFor(max shape) >= what this shape needs.
    size_t const workspaceBytes = workspace != nullptr ? simam_run_cuda_workspace_size(&problem) : 0;
    simam_status const status
        = simam_run_cuda(&problem, inputs[0], output, workspace, workspaceBytes, static_cast<void*>(stream));
    if (status != SIMAM_OK)
    {
        logError(std::string("SimAM: kernel launch failed: ") + simam_status_string(status) + ": "
            + simam_last_error());
        return -1;
    }
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

// ---- the tensor rules shared by both plugin APIs --------------------------------------------------

bool supportsAt(SimamParams const& params, FormatPolicy policy, int32_t pos, nvinfer1::PluginTensorDesc const& desc,
    nvinfer1::PluginTensorDesc const& x) noexcept
{
    switch (roleOf(params, pos))
    {
    case Role::kX: return offersFormat(policy, desc.type, desc.format);
    case Role::kScale:
    case Role::kBias: return desc.format == nvinfer1::TensorFormat::kLINEAR && desc.type == x.type;
    case Role::kResidual:
    case Role::kOutput: return desc.type == x.type && desc.format == x.format;
    case Role::kNone: return false;
    }
    return false;
}

namespace
{
// Two dimensions agree unless both are known and differ (-1 = decided at run time).
bool sameExtent(int64_t a, int64_t b) noexcept
{
    return a < 0 || b < 0 || a == b;
}

std::string dimsText(nvinfer1::Dims const& dims)
{
    std::string text = "[";
    for (int32_t i = 0; i < dims.nbDims && i < nvinfer1::Dims::MAX_DIMS; ++i)
    {
        text += (i > 0 ? "," : "") + std::to_string(static_cast<int64_t>(dims.d[i]));
    }
    return text + "]";
}

char const* roleName(Role role) noexcept
{
    switch (role)
    {
    case Role::kX: return "x";
    case Role::kScale: return "scale";
    case Role::kBias: return "bias";
    case Role::kResidual: return "residual";
    case Role::kOutput: return "the output";
    case Role::kNone: break;
    }
    return "?";
}

std::string inputCountText(SimamParams const& params)
{
    return std::to_string(params.nbInputs()) + " (x" + (params.affine != 0 ? ", scale, bias" : "")
        + (params.residual != 0 ? ", residual" : "") + ": affine=" + std::to_string(params.affine)
        + " residual=" + std::to_string(params.residual) + ")";
}
} // namespace

bool checkTensors(SimamParams const& params, nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs, char const* where) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    std::string const prefix = std::string("SimAM: ") + where + ": ";
    if (in == nullptr || out == nullptr || nbOutputs != 1 || nbInputs != params.nbInputs())
    {
        logError(prefix + "got " + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs)
            + " outputs; expected one output and inputs " + inputCountText(params));
        return false;
    }
    nvinfer1::PluginTensorDesc const& x = in[0];
    if (x.dims.nbDims != kRank || !isSupportedType(x.type))
    {
        logError(prefix + "x must be a rank-4 float32/float16" + (SIMAM_TRT_HAS_BF16 ? "/bfloat16" : "")
            + " tensor, got rank " + std::to_string(x.dims.nbDims) + " " + typeName(x.type));
        return false;
    }
    for (int32_t pos = 1; pos <= nbInputs; ++pos)
    {
        Role const role = roleOf(params, pos);
        nvinfer1::PluginTensorDesc const& t = pos < nbInputs ? in[pos] : out[0];
        if (t.type != x.type)
        {
            logError(prefix + roleName(role) + " is " + typeName(t.type) + ", x is " + typeName(x.type)
                + "; every tensor of the node has x's type");
            return false;
        }
        if (role == Role::kScale || role == Role::kBias)
        {
            if (t.dims.nbDims != 1 || !sameExtent(t.dims.d[0], x.dims.d[1]))
            {
                logError(prefix + roleName(role) + " has shape " + dimsText(t.dims) + "; expected ["
                    + std::to_string(static_cast<int64_t>(x.dims.d[1])) + "] (one value per channel of x)");
                return false;
            }
            continue;
        }
        bool same = t.dims.nbDims == kRank;
        for (int32_t i = 0; same && i < kRank; ++i)
        {
            same = sameExtent(t.dims.d[i], x.dims.d[i]);
        }
        if (!same)
        {
            logError(prefix + roleName(role) + " has shape " + dimsText(t.dims) + ", x " + dimsText(x.dims)
                + "; they must be equal");
            return false;
        }
    }
    return true;
    SIMAM_TRT_GUARD_END(false)
}

bool checkShapeInputs(SimamParams const& params, nvinfer1::DimsExprs const* inputs, int32_t nbInputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (inputs == nullptr || nbInputs != params.nbInputs())
    {
        logError("SimAM: got " + std::to_string(nbInputs) + " inputs, expected " + inputCountText(params));
        return false;
    }
    for (int32_t pos = 0; pos < nbInputs; ++pos)
    {
        Role const role = roleOf(params, pos);
        int32_t const rank = (role == Role::kScale || role == Role::kBias) ? 1 : kRank;
        if (inputs[pos].nbDims != rank)
        {
            logError(std::string("SimAM: ") + roleName(role) + " has rank " + std::to_string(inputs[pos].nbDims)
                + ", expected " + std::to_string(rank) + (rank == kRank ? " (NCHW)" : " (C values)"));
            return false;
        }
    }
    return true;
    SIMAM_TRT_GUARD_END(false)
}

bool checkInputTypes(SimamParams const& params, nvinfer1::DataType const* types, int32_t nbInputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (types == nullptr || nbInputs != params.nbInputs())
    {
        logError("SimAM: got " + std::to_string(nbInputs) + " inputs, expected " + inputCountText(params));
        return false;
    }
    if (!isSupportedType(types[0]))
    {
        logError(std::string("SimAM: input type ") + typeName(types[0]) + " is not supported");
        return false;
    }
    for (int32_t pos = 1; pos < nbInputs; ++pos)
    {
        if (types[pos] != types[0])
        {
            logError(std::string("SimAM: ") + roleName(roleOf(params, pos)) + " is " + typeName(types[pos])
                + ", x is " + typeName(types[0]) + "; every tensor of the node has x's type");
            return false;
        }
    }
    return true;
    SIMAM_TRT_GUARD_END(false)
}

} // namespace simam_trt
