#include "simam_plugin_v3.h"

#if NV_TENSORRT_MAJOR >= 10

#include <cstring>
#include <new>
#include <utility>
#include <vector>

namespace simam_trt
{

SimamPluginV3::SimamPluginV3(SimamParams const& params, FormatPolicy policy, std::string pluginNamespace)
    : mParams(params)
    , mPolicy(policy)
    , mNamespace(std::move(pluginNamespace))
{
    refreshSerializedFields();
}

void SimamPluginV3::refreshSerializedFields() noexcept
{
    using nvinfer1::PluginFieldType;
    mSerializedFields[0] = nvinfer1::PluginField(kFieldLambda, &mParams.eLambda, PluginFieldType::kFLOAT32, 1);
    mSerializedFields[1] = nvinfer1::PluginField(kFieldUnbiased, &mParams.unbiased, PluginFieldType::kINT32, 1);
    mSerializedFields[2] = nvinfer1::PluginField(kFieldAffine, &mParams.affine, PluginFieldType::kINT32, 1);
    mSerializedFields[3] = nvinfer1::PluginField(kFieldResidual, &mParams.residual, PluginFieldType::kINT32, 1);
    // As the ONNX parser passes it: the characters, no terminator (validParams keeps the code known).
    char const* activation = activationName(mParams.activation);
    mSerializedFields[4] = nvinfer1::PluginField(kFieldActivation, activation, PluginFieldType::kCHAR,
        activation != nullptr ? static_cast<int32_t>(std::strlen(activation)) : 0);
    mSerializedCollection.nbFields = 5;
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
        return new SimamPluginV3(mParams, mPolicy, mNamespace);
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
    if (outputTypes == nullptr || nbOutputs != 1)
    {
        logError("SimAM: has exactly one output");
        return -1;
    }
    if (!checkInputTypes(mParams, inputTypes, nbInputs))
    {
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
    if (outputs == nullptr || nbOutputs != 1 || nbShapeInputs != 0)
    {
        logError("SimAM: has exactly one output (and no shape inputs)");
        return -1;
    }
    if (!checkShapeInputs(mParams, inputs, nbInputs))
    {
        return -1;
    }
    outputs[0] = inputs[0]; // elementwise: x's shape, dynamic dims pass through
    return 0;
    SIMAM_TRT_GUARD_END(-1)
}

bool SimamPluginV3::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != mParams.nbInputs() || nbOutputs != 1 || pos < 0
        || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    return supportsAt(mParams, mPolicy, pos, inOut[pos].desc, inOut[0].desc);
}

namespace
{
// The static descriptions out of TensorRT's dynamic ones (counts already checked by the caller).
std::vector<nvinfer1::PluginTensorDesc> staticDescs(nvinfer1::DynamicPluginTensorDesc const* descs, int32_t count)
{
    std::vector<nvinfer1::PluginTensorDesc> out;
    for (int32_t i = 0; descs != nullptr && i < count; ++i)
    {
        out.push_back(descs[i].desc);
    }
    return out;
}
} // namespace

int32_t SimamPluginV3::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (in == nullptr || out == nullptr || nbInputs != mParams.nbInputs() || nbOutputs != 1)
    {
        logError("SimAM: configurePlugin got " + std::to_string(nbInputs) + " inputs and "
            + std::to_string(nbOutputs) + " outputs, expected " + std::to_string(mParams.nbInputs())
            + " inputs (the node's affine and residual attributes say) and one output");
        return -1;
    }
    std::vector<nvinfer1::PluginTensorDesc> const inputs = staticDescs(in, nbInputs);
    std::vector<nvinfer1::PluginTensorDesc> const outputs = staticDescs(out, nbOutputs);
    return checkTensors(mParams, inputs.data(), nbInputs, outputs.data(), nbOutputs, "configurePlugin") ? 0 : -1;
    SIMAM_TRT_GUARD_END(-1)
}

size_t SimamPluginV3::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != mParams.nbInputs())
    {
        return 0;
    }
    return workspaceFor(inputs[0].max, inputs[0].desc.type, inputs[0].desc.format, mParams);
}

int32_t SimamPluginV3::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return checkTensors(mParams, in, nbInputs, out, nbOutputs, "onShapeChange") ? 0 : -1;
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
    // enqueue carries no input count: the one the parameters give was checked by onShapeChange.
    return launchSimam(inputDesc[0], mParams.nbInputs(), inputs, outputs[0], workspace, mParams, stream);
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

SimamCreatorV3::SimamCreatorV3() noexcept
    : mPolicy(defaultFormatPolicy())
{
    SIMAM_TRT_GUARD_BEGIN
    std::string why;
    if (!formatPolicyFromEnvironment(mPolicy, why))
    {
        mPolicy = defaultFormatPolicy();
        mPolicyError = why;
    }
    SIMAM_TRT_GUARD_END()
}

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
        if (phase == nvinfer1::TensorRTPhase::kBUILD && !mPolicyError.empty())
        {
            // The formats matter only to the builder; an engine already built runs whatever it says.
            logError("SimAM: cannot build: " + mPolicyError);
            return nullptr;
        }
        return new SimamPluginV3(params, mPolicy, mNamespace);
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
