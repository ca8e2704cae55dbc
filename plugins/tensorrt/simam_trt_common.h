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
// Fields arrive from model files; refuse absurd collections instead of walking them.
constexpr int32_t kMaxFields = 64;
// Longest name or namespace we read; longer ones are treated as malformed.
constexpr std::size_t kMaxNameLength = 256;

struct SimamParams
{
    float eLambda{1e-4F};
    int32_t unbiased{1};
};

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
// Layout (little endian, 16 bytes): magic "SIMA", format version 1, e_lambda (f32), unbiased (i32).
constexpr std::size_t kSerializedSize = 16;
void serializeParams(SimamParams const& params, void* buffer) noexcept;
bool deserializeParams(void const* buffer, std::size_t length, SimamParams& out) noexcept;

// ---- tensors -----------------------------------------------------------------------------------
bool isSupportedType(nvinfer1::DataType type) noexcept;
bool toSimamType(nvinfer1::DataType type, simam_dtype& out) noexcept;
char const* typeName(nvinfer1::DataType type) noexcept;
constexpr int32_t kRank = 4;

// Device scratch the kernel can use for the largest shape `maxDims` (planes above the on-chip
// limit are split over several blocks); 0 when not needed or when a dimension is unknown. The
// size only grows with each dimension, so what TensorRT allocates for the maximum shape covers
// every smaller shape enqueued later.
size_t workspaceFor(nvinfer1::Dims const& maxDims, nvinfer1::DataType type) noexcept;

// Launch the kernel library on `stream` for a rank-4 linear tensor described by dims/type.
// `workspace` is TensorRT's scratch (may be null: the kernel then uses its one-block-per-plane
// path). Returns 0 on success, -1 (after logging) on failure. Empty tensors are a no-op.
int32_t launchSimam(nvinfer1::Dims const& dims, nvinfer1::DataType type, void const* input, void* output,
    void* workspace, SimamParams const& params, cudaStream_t stream) noexcept;

} // namespace simam_trt

#endif // SIMAM_TRT_COMMON_H
