#include "simam_plugin_v3.h"

#if NV_TENSORRT_MAJOR >= 10

#include <new>
#include <utility>

namespace simam_trt
{

SimamPluginV3::SimamPluginV3(SimamParams const& params, std::string pluginNamespace)
    : mParams(params)
    , mNamespace(std::move(pluginNamespace))
{
    refreshSerializedFields();
}

void SimamPluginV3::refreshSerializedFields() noexcept
{
    using nvinfer1::PluginFieldType;
    mSerializedFields[0] = nvinfer1::PluginField(kFieldLambda, &mParams.eLambda, PluginFieldType::kFLOAT32, 1);
    mSerializedFields[1] = nvinfer1::PluginField(kFieldUnbiased, &mParams.unbiased, PluginFieldType::kINT32, 1);
    mSerializedCollection.nbFields = 2;
    mSerializedCollection.fields = mSerializedFields;
}

nvinfer1::IPluginCapability* SimamPluginV3::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    logError("SimAM: unknown capability type " + std::to_string(static_cast<int32_t>(type)));
    return nullptr;
    SIMAM_TRT_GUARD_END(nullptr)
}

nvinfer1::IPluginV3* SimamPluginV3::clone() noexcept
{
    try
    {
        return new SimamPluginV3(mParams, mNamespace);
    }
    catch (...)
    {
        logError("SimAM: out of memory while cloning the plugin");
        return nullptr;
    }
}

char const* SimamPluginV3::getPluginName() const noexcept
{
    return kPluginName;
}

char const* SimamPluginV3::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* SimamPluginV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

int32_t SimamPluginV3::getNbOutputs() const noexcept
{
    return 1;
}

int32_t SimamPluginV3::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (outputTypes == nullptr || inputTypes == nullptr || nbInputs != 1 || nbOutputs != 1)
    {
        logError("SimAM: expects exactly one input and one output");
        return -1;
    }
    if (!isSupportedType(inputTypes[0]))
    {
        logError(std::string("SimAM: input type ") + typeName(inputTypes[0]) + " is not supported");
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

int32_t SimamPluginV3::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (inputs == nullptr || outputs == nullptr || nbInputs != 1 || nbOutputs != 1 || nbShapeInputs != 0)
    {
        logError("SimAM: expects exactly one input and one output (and no shape inputs)");
        return -1;
    }
    if (inputs[0].nbDims != kRank)
    {
        logError("SimAM: input has rank " + std::to_string(inputs[0].nbDims) + ", expected NCHW (rank 4)");
        return -1;
    }
    outputs[0] = inputs[0]; // elementwise: same shape, dynamic dims pass through
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

bool SimamPluginV3::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != 1 || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return isSupportedType(desc.type);
    }
    return desc.type == inOut[0].desc.type;
}

int32_t SimamPluginV3::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (in == nullptr || out == nullptr || nbInputs != 1 || nbOutputs != 1)
    {
        logError("SimAM: configurePlugin expects one input and one output");
        return -1;
    }
    if (in[0].desc.dims.nbDims != kRank || !isSupportedType(in[0].desc.type) || out[0].desc.type != in[0].desc.type)
    {
        logError("SimAM: configurePlugin got an unsupported tensor (need rank-4 linear float32/float16/bfloat16, "
                 "output type = input type)");
        return -1;
    }
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

size_t SimamPluginV3::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != 1)
    {
        return 0;
    }
    return workspaceFor(inputs[0].max, inputs[0].desc.type);
}

int32_t SimamPluginV3::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (in == nullptr || out == nullptr || nbInputs != 1 || nbOutputs != 1)
    {
        logError("SimAM: onShapeChange expects one input and one output");
        return -1;
    }
    if (in[0].dims.nbDims != kRank || !isSupportedType(in[0].type) || out[0].type != in[0].type)
    {
        logError("SimAM: onShapeChange got an unsupported tensor");
        return -1;
    }
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

int32_t SimamPluginV3::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        logError("SimAM: enqueue got null descriptors or buffers");
        return -1;
    }
    return launchSimam(inputDesc[0].dims, inputDesc[0].type, inputs[0], outputs[0], workspace, mParams, stream);
}

nvinfer1::IPluginV3* SimamPluginV3::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

nvinfer1::PluginFieldCollection const* SimamPluginV3::getFieldsToSerialize() noexcept
{
    refreshSerializedFields();
    return &mSerializedCollection;
}

// ---- creator ---------------------------------------------------------------------------------

nvinfer1::IPluginV3* SimamCreatorV3::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        SimamParams params;
        if (!parseFields(fc, params))
        {
            std::string layer;
            logError("SimAM: cannot create plugin" + (safeString(name, layer) ? " for layer '" + layer + "'" : "")
                + (phase == nvinfer1::TensorRTPhase::kRUNTIME ? " while deserializing an engine" : ""));
            return nullptr;
        }
        return new SimamPluginV3(params, mNamespace);
    }
    catch (...)
    {
        logError("SimAM: unexpected failure in createPlugin");
        return nullptr;
    }
}

nvinfer1::PluginFieldCollection const* SimamCreatorV3::getFieldNames() noexcept
{
    return advertisedFields();
}

char const* SimamCreatorV3::getPluginName() const noexcept
{
    return kPluginName;
}

char const* SimamCreatorV3::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* SimamCreatorV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

void SimamCreatorV3::setPluginNamespace(char const* pluginNamespace) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    std::string value;
    if (!safeString(pluginNamespace, value))
    {
        logError("SimAM: plugin namespace is null or too long; keeping '" + mNamespace + "'");
        return;
    }
    mNamespace = std::move(value);
    SIMAM_TRT_GUARD_END()
}

} // namespace simam_trt

#endif // NV_TENSORRT_MAJOR >= 10
