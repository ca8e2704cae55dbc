// Shared, version-independent parts of the SimAM TensorRT plugin: plugin identity, field
// parsing and validation, the V2 serialization format, logging through TensorRT's logger,
// and the tensor-type/shape rules. The version-specific classes live in simam_plugin_v3.cpp
// (TensorRT >= 10, IPluginV3) and simam_plugin_v2.cpp (TensorRT 8.x, IPluginV2DynamicExt).
#ifndef SIMAM_TRT_COMMON_H
#define SIMAM_TRT_COMMON_H

#include <NvInfer.h>
#include <NvInferVersion.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "simam.h"

// bf16 tensors exist in TensorRT >= 9 only.
#if NV_TENSORRT_MAJOR >= 9
#define SIMAM_TRT_HAS_BF16 1
#else
#define SIMAM_TRT_HAS_BF16 0
#endif

// Plugin shared libraries (IPluginRegistry::loadLibrary, ILoggerFinder) exist from TensorRT 8.6;
// on 8.5 (JetPack 5.1) the library is loaded with dlopen and registers itself.
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
#define SIMAM_TRT_HAS_PLUGIN_LIBRARIES 1
#else
#define SIMAM_TRT_HAS_PLUGIN_LIBRARIES 0
#endif

namespace simam_trt
{

constexpr char const* kPluginName = "SimAM";
constexpr char const* kPluginVersion = "1";
constexpr char const* kFieldLambda = "e_lambda";
constexpr char const* kFieldUnbiased = "unbiased";
// The fused epilogue (optional; absent = plain SimAM): z = act(y * scale[c] + bias[c] + residual).
constexpr char const* kFieldAffine = "affine";
constexpr char const* kFieldResidual = "residual";
constexpr char const* kFieldActivation = "activation";
// The environment variable that overrides which tensor formats the plugin offers the builder.
constexpr char const* kFormatsEnv = "SIMAM_TRT_FORMATS";
// Fields arrive from model files; refuse absurd collections instead of walking them.
constexpr int32_t kMaxFields = 64;
// Longest name or namespace we read; longer ones are treated as malformed.
constexpr std::size_t kMaxNameLength = 256;

struct SimamParams
{
    float eLambda{1e-4F};
    int32_t unbiased{1};
    int32_t affine{0};     // 1: inputs 1 and 2 are scale and bias (C elements each)
    int32_t residual{0};   // 1: the next input is R, x's shape, type and format
    int32_t activation{0}; // simam_activation

    // The node's inputs, in order: x, [scale, bias], [residual].
    int32_t nbInputs() const noexcept
    {
        return 1 + 2 * affine + residual;
    }
    bool hasEpilogue() const noexcept
    {
        return affine != 0 || residual != 0 || activation != SIMAM_ACTIVATION_NONE;
    }
};

// What a tensor position (inputs, then the output) holds for a plugin with these parameters.
enum class Role
{
    kX,
    kScale,
    kBias,
    kResidual,
    kOutput,
    kNone // out of range
};
Role roleOf(SimamParams const& params, int32_t pos) noexcept;

// "none" / "relu" / "silu" (the ONNX attribute's spelling); nullptr for an unknown code.
char const* activationName(int32_t activation) noexcept;

// ---- logging -------------------------------------------------------------------------------
// Messages go to the logger TensorRT hands us through setLoggerFinder; without one, errors
// and warnings go to stderr so that a failure is never silent.
#if SIMAM_TRT_HAS_PLUGIN_LIBRARIES
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
#endif
void logMessage(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;
inline void logError(std::string const& message) noexcept
{
    logMessage(nvinfer1::ILogger::Severity::kERROR, message);
}
inline void logWarning(std::string const& message) noexcept
{
    logMessage(nvinfer1::ILogger::Severity::kWARNING, message);
}
// For catch (...) blocks: reports without allocating (the failure may be bad_alloc).
void logUnexpected(char const* where) noexcept;

// Every TensorRT entry point is noexcept; an exception escaping one would terminate the
// application, so each body that may allocate runs inside this guard.
#define SIMAM_TRT_GUARD_BEGIN try {
#define SIMAM_TRT_GUARD_END(onError)                                                                       \
    }                                                                                                        \
    catch (...)                                                                                              \
    {                                                                                                        \
        ::simam_trt::logUnexpected(__func__);                                                                \
        return onError;                                                                                      \
    }

// ---- fields ----------------------------------------------------------------------------------
// The field list the creator advertises: exactly what onnx-tensorrt's fallback plugin importer
// produces from the ONNX node (FLOAT attribute -> kFLOAT32 x1, INT attribute -> kINT32 x1).
nvinfer1::PluginFieldCollection const* advertisedFields() noexcept;

// Parse and validate a field collection. Returns false (and logs why) on anything malformed:
// null collection/array/name/data, wrong type, wrong length, duplicate field, e_lambda missing,
// not finite or <= 0, unbiased not 0/1. A missing `unbiased` defaults to 1 (the paper's
// estimator, and the ONNX attribute's default); unknown fields are ignored with a warning.
bool parseFields(nvinfer1::PluginFieldCollection const* fc, SimamParams& out) noexcept;

// "kINT64", "kFP8", ... by numeric value, so types newer than the headers are named too. May throw
// (allocation): call inside a guard.
std::string fieldTypeName(nvinfer1::PluginFieldType type);

// Validate values however they arrived (fields, serialized blob).
bool validParams(SimamParams const& params, std::string& why) noexcept;

// A bounded copy of a C string from an untrusted caller; false when null or too long.
bool safeString(char const* text, std::string& out) noexcept;

// ---- V2 serialization --------------------------------------------------------------------------
// Layout (little endian): magic "SIMA", format version (u32), e_lambda (f32), unbiased (i32); format 2
// adds affine (i32), residual (i32), activation (i32). A plugin without an epilogue writes format 1
// (16 bytes, what every earlier library wrote and reads), one with an epilogue format 2 (28 bytes);
// both are read back.
constexpr std::size_t kSerializedSizeV1 = 16;
constexpr std::size_t kSerializedSizeV2 = 28;
std::size_t serializedSize(SimamParams const& params) noexcept;
// `buffer` holds serializedSize(params) bytes.
void serializeParams(SimamParams const& params, void* buffer) noexcept;
bool deserializeParams(void const* buffer, std::size_t length, SimamParams& out) noexcept;

// ---- tensor formats ------------------------------------------------------------------------------
// Which formats the plugin offers the builder for x, the residual and the output (scale and bias are
// always kLINEAR). TensorRT for RTX (headers >= 11) hands a plugin kLINEAR whenever it is offered and
// then puts a transpose in front of it, since its convolutions produce channel-last tensors; offered
// kHWC only, it connects the plugin directly (offered kHWC8 too, it picks kHWC8 for fp16 and moves
// the data into it: measured, the transposes come back). TensorRT 8.x/10.x time every offered
// combination and keep the fastest, so there the plugin offers everything.
enum class FormatPolicy
{
    kLinear,      // kLINEAR only (the plugin before layouts)
    kChannelLast, // kHWC only
    kAll          // kLINEAR, kHWC, kHWC8 for 16-bit types, kHWC16 for fp16
};
// The default for the headers this library is built with: kChannelLast for >= 11, else kAll.
FormatPolicy defaultFormatPolicy() noexcept;
// SIMAM_TRT_FORMATS=auto|linear|channel-last|all (unset or empty = auto). False (and `why`) for any
// other value.
bool formatPolicyFromEnvironment(FormatPolicy& out, std::string& why) noexcept;
char const* formatPolicyName(FormatPolicy policy) noexcept;
bool offersFormat(FormatPolicy policy, nvinfer1::DataType type, nvinfer1::TensorFormat format) noexcept;
char const* formatName(nvinfer1::TensorFormat format) noexcept;

// ---- tensors -----------------------------------------------------------------------------------
bool isSupportedType(nvinfer1::DataType type) noexcept;
bool toSimamType(nvinfer1::DataType type, simam_dtype& out) noexcept;
char const* typeName(nvinfer1::DataType type) noexcept;
constexpr int32_t kRank = 4;

// supportsFormatCombination for both plugin APIs: `desc` at position `pos`, `x` the tensor at
// position 0 (already chosen when pos > 0). x: a supported type in a format `policy` offers;
// scale/bias: kLINEAR, x's type; residual and output: x's type and format.
bool supportsAt(SimamParams const& params, FormatPolicy policy, int32_t pos, nvinfer1::PluginTensorDesc const& desc,
    nvinfer1::PluginTensorDesc const& x) noexcept;

// The tensors of configurePlugin / onShapeChange (dimensions may be -1 at build time): the input
// count the parameters give, x rank 4 of a supported type, scale/bias rank 1 with C elements,
// residual x's dimensions, everything x's type. False after logging what is wrong (`where` names
// the call).
bool checkTensors(SimamParams const& params, nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs, char const* where) noexcept;

// getOutputShapes / getOutputDimensions: the input count and ranks (x and residual 4, scale and bias
// 1). False after logging.
bool checkShapeInputs(SimamParams const& params, nvinfer1::DimsExprs const* inputs, int32_t nbInputs) noexcept;

// getOutputDataType(s): the input count and every input of x's (supported) type. False after logging.
bool checkInputTypes(SimamParams const& params, nvinfer1::DataType const* types, int32_t nbInputs) noexcept;

// The kernel library's problem for a rank-4 tensor of `dims`, `type` and `format` (kLINEAR -> NCHW,
// kHWC -> NHWC, kHWC8 / kHWC16 -> NHWC with C rounded up to 8 / 16 per pixel), without operands.
// False (and `why`) for a shape, type or format the kernels do not take.
bool makeProblem(nvinfer1::Dims const& dims, nvinfer1::DataType type, nvinfer1::TensorFormat format,
    SimamParams const& params, simam_problem& out, std::string& why) noexcept;

// Device scratch the kernel can use for the largest shape `maxDims` (planes above the on-chip
// limit are split over several blocks); 0 when not needed or when a dimension is unknown. The
// size only grows with each dimension, so what TensorRT allocates for the maximum shape covers
// every smaller shape enqueued later.
size_t workspaceFor(nvinfer1::Dims const& maxDims, nvinfer1::DataType type, nvinfer1::TensorFormat format,
    SimamParams const& params) noexcept;

// Launch the kernel library on `stream` for the tensors TensorRT hands enqueue: x = inputs[0] described by
// `xDesc`, then scale/bias/residual as `params` says (`nbInputs` must be params.nbInputs()).
// `workspace` is TensorRT's scratch (may be null: the kernel then uses its one-block-per-plane
// path). Returns 0 on success, -1 (after logging) on failure. Empty tensors are a no-op.
int32_t launchSimam(nvinfer1::PluginTensorDesc const& xDesc, int32_t nbInputs, void const* const* inputs,
    void* output, void* workspace, SimamParams const& params, cudaStream_t stream) noexcept;

} // namespace simam_trt

#endif // SIMAM_TRT_COMMON_H
