// SimAM as an IPluginV2DynamicExt (TensorRT 8.x: JetPack 5 and JetPack 6.0), with its
// IPluginCreator. The math and the field rules are shared with the V3 plugin.
#ifndef SIMAM_PLUGIN_V2_H
#define SIMAM_PLUGIN_V2_H

#include "simam_trt_common.h"

#if NV_TENSORRT_MAJOR < 10

#include <string>

// IPluginV2* is the only dynamic-shape plugin API TensorRT 8 has; its headers mark the base
// classes deprecated (in favour of IPluginV3, which does not exist before 10).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace simam_trt
{

class SimamPluginV2 final : public nvinfer1::IPluginV2DynamicExt
{
public:
    SimamPluginV2(SimamParams const& params, FormatPolicy policy, std::string pluginNamespace);
    ~SimamPluginV2() override = default;

    // IPluginV2
    char const* getPluginType() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(
        int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs,
        int32_t nbInputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

    SimamParams const& params() const noexcept
    {
        return mParams;
    }

    // False when configurePlugin saw tensors the plugin cannot run (the V2 API returns void).
    bool configured() const noexcept
    {
        return mConfigured;
    }

private:
    SimamParams mParams;
    FormatPolicy mPolicy;
    std::string mNamespace;
    bool mConfigured{false};
};

class SimamCreatorV2 final : public nvinfer1::IPluginCreator
{
public:
    // Reads SIMAM_TRT_FORMATS once: the formats every plugin it creates offers.
    SimamCreatorV2() noexcept;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(
        char const* name, void const* serialData, size_t serialLength) noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::string mNamespace;
    FormatPolicy mPolicy;
    std::string mPolicyError; // SIMAM_TRT_FORMATS was not understood: createPlugin refuses, saying why
};

} // namespace simam_trt

#pragma GCC diagnostic pop

#endif // NV_TENSORRT_MAJOR < 10
#endif // SIMAM_PLUGIN_V2_H
