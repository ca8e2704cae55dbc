// SimAM as an IPluginV3 (TensorRT >= 10): one object implements the core, build and runtime
// capabilities; the creator is an IPluginCreatorV3One.
#ifndef SIMAM_PLUGIN_V3_H
#define SIMAM_PLUGIN_V3_H

#include "simam_trt_common.h"

#if NV_TENSORRT_MAJOR >= 10

#include <string>

namespace simam_trt
{

class SimamPluginV3 final : public nvinfer1::IPluginV3,
                            public nvinfer1::IPluginV3OneCore,
                            public nvinfer1::IPluginV3OneBuild,
                            public nvinfer1::IPluginV3OneRuntime
{
public:
    SimamPluginV3(SimamParams const& params, FormatPolicy policy, std::string pluginNamespace);
    ~SimamPluginV3() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    SimamParams const& params() const noexcept
    {
        return mParams;
    }

private:
    void refreshSerializedFields() noexcept;

    SimamParams mParams;
    FormatPolicy mPolicy;
    std::string mNamespace;
    // Storage behind getFieldsToSerialize(): TensorRT reads it after the call returns.
    nvinfer1::PluginField mSerializedFields[5];
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

class SimamCreatorV3 final : public nvinfer1::IPluginCreatorV3One
{
public:
    // Reads SIMAM_TRT_FORMATS once: the formats every plugin it builds offers.
    SimamCreatorV3() noexcept;

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // Not part of IPluginCreatorV3One (which has no setter): lets an application register the
    // creator under its own namespace, matching the ONNX node's plugin_namespace attribute.
    void setPluginNamespace(char const* pluginNamespace) noexcept;

private:
    std::string mNamespace;
    FormatPolicy mPolicy;
    std::string mPolicyError; // SIMAM_TRT_FORMATS was not understood: building refuses, saying why
};

} // namespace simam_trt

#endif // NV_TENSORRT_MAJOR >= 10
#endif // SIMAM_PLUGIN_V3_H
