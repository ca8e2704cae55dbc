#include "simam_plugin_v2.h"

#if NV_TENSORRT_MAJOR < 10

#include <utility>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace simam_trt
{

namespace
{
void assignNamespace(std::string& target, char const* value) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    std::string copy;
    if (!safeString(value, copy))
    {
        logError("SimAM: plugin namespace is null or too long; keeping '" + target + "'");
        return;
    }
    target = std::move(copy);
    SIMAM_TRT_GUARD_END()
}
} // namespace

SimamPluginV2::SimamPluginV2(SimamParams const& params, FormatPolicy policy, std::string pluginNamespace)
    : mParams(params)
    , mPolicy(policy)
    , mNamespace(std::move(pluginNamespace))
{
}

char const* SimamPluginV2::getPluginType() const noexcept
{
    return kPluginName;
}

char const* SimamPluginV2::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

int32_t SimamPluginV2::getNbOutputs() const noexcept
{
    return 1;
}

int32_t SimamPluginV2::initialize() noexcept
{
    return 0; // nothing to allocate: the kernel needs no workspace or constants
}

void SimamPluginV2::terminate() noexcept {}

size_t SimamPluginV2::getSerializationSize() const noexcept
{
    return serializedSize(mParams);
}

void SimamPluginV2::serialize(void* buffer) const noexcept
{
    serializeParams(mParams, buffer);
}

void SimamPluginV2::destroy() noexcept
{
    delete this;
}

void SimamPluginV2::setPluginNamespace(char const* pluginNamespace) noexcept
{
    assignNamespace(mNamespace, pluginNamespace);
}

char const* SimamPluginV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

nvinfer1::DataType SimamPluginV2::getOutputDataType(
    int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (index != 0 || !checkInputTypes(mParams, inputTypes, nbInputs))
    {
        return nvinfer1::DataType::kFLOAT;
    }
    return inputTypes[0];
}

nvinfer1::IPluginV2DynamicExt* SimamPluginV2::clone() const noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    auto* copy = new SimamPluginV2(mParams, mPolicy, mNamespace);
    copy->mConfigured = mConfigured;
    return copy;
    SIMAM_TRT_GUARD_END(nullptr)
}

nvinfer1::DimsExprs SimamPluginV2::getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs,
    int32_t nbInputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    if (outputIndex != 0)
    {
        logError("SimAM: has exactly one output");
        return nvinfer1::DimsExprs{};
    }
    if (!checkShapeInputs(mParams, inputs, nbInputs))
    {
        return nvinfer1::DimsExprs{};
    }
    return inputs[0]; // elementwise: x's shape
    SIMAM_TRT_GUARD_END(nvinfer1::DimsExprs{})
}

bool SimamPluginV2::supportsFormatCombination(
    int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != mParams.nbInputs() || nbOutputs != 1 || pos < 0
        || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    return supportsAt(mParams, mPolicy, pos, inOut[pos], inOut[0]);
}

void SimamPluginV2::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    mConfigured = false;
    if (in == nullptr || out == nullptr || nbInputs != mParams.nbInputs() || nbOutputs != 1)
    {
        logError("SimAM: configurePlugin got " + std::to_string(nbInputs) + " inputs and "
            + std::to_string(nbOutputs) + " outputs, expected " + std::to_string(mParams.nbInputs())
            + " inputs (the node's affine and residual attributes say) and one output");
        return;
    }
    std::vector<nvinfer1::PluginTensorDesc> inputs;
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        inputs.push_back(in[i].desc);
    }
    mConfigured = checkTensors(mParams, inputs.data(), nbInputs, &out[0].desc, nbOutputs, "configurePlugin");
    SIMAM_TRT_GUARD_END()
}

size_t SimamPluginV2::getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    // TensorRT passes the largest shape of the profile here.
    if (inputs == nullptr || nbInputs != mParams.nbInputs())
    {
        return 0;
    }
    return workspaceFor(inputs[0].dims, inputs[0].type, inputs[0].format, mParams);
}

int32_t SimamPluginV2::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        logError("SimAM: enqueue got null descriptors or buffers");
        return -1;
    }
    // enqueue carries no input count: the one the parameters give was checked by configurePlugin.
    return launchSimam(inputDesc[0], mParams.nbInputs(), inputs, outputs[0], workspace, mParams, stream);
}

// ---- creator ---------------------------------------------------------------------------------

SimamCreatorV2::SimamCreatorV2() noexcept
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

char const* SimamCreatorV2::getPluginName() const noexcept
{
    return kPluginName;
}

char const* SimamCreatorV2::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

nvinfer1::PluginFieldCollection const* SimamCreatorV2::getFieldNames() noexcept
{
    return advertisedFields();
}

nvinfer1::IPluginV2* SimamCreatorV2::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    SimamParams params;
    if (!parseFields(fc, params))
    {
        std::string layer;
        logError("SimAM: cannot create plugin" + (safeString(name, layer) ? " for layer '" + layer + "'" : ""));
        return nullptr;
    }
    if (!mPolicyError.empty())
    {
        // createPlugin is the build path on 8.x (engines load through deserializePlugin).
        logError("SimAM: cannot build: " + mPolicyError);
        return nullptr;
    }
    return new SimamPluginV2(params, mPolicy, mNamespace);
    SIMAM_TRT_GUARD_END(nullptr)
}

nvinfer1::IPluginV2* SimamCreatorV2::deserializePlugin(
    char const* /*name*/, void const* serialData, size_t serialLength) noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    SimamParams params;
    if (!deserializeParams(serialData, serialLength, params))
    {
        return nullptr;
    }
    return new SimamPluginV2(params, mPolicy, mNamespace);
    SIMAM_TRT_GUARD_END(nullptr)
}

void SimamCreatorV2::setPluginNamespace(char const* pluginNamespace) noexcept
{
    assignNamespace(mNamespace, pluginNamespace);
}

char const* SimamCreatorV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

} // namespace simam_trt

#pragma GCC diagnostic pop

#endif // NV_TENSORRT_MAJOR < 10
