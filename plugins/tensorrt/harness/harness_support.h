// Pieces of TensorRT the conformance harness provides itself, since libnvinfer is not linked:
// a logger and logger finder (what setLoggerFinder receives), an expression builder for
// symbolic shapes (what getOutputShapes/getOutputDimensions receive), the loader that opens
// the plugin library the way IPluginRegistry::loadLibrary does, and tiny check helpers.
#ifndef SIMAM_TRT_HARNESS_SUPPORT_H
#define SIMAM_TRT_HARNESS_SUPPORT_H

#include <NvInfer.h>
#include <NvInferImpl.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace harness
{

// ---- checks -----------------------------------------------------------------------------------
// Failures are counted, not fatal, so one run reports every broken expectation.
void check(bool condition, std::string const& what, char const* file, int line);
int failures();
int checksRun();
#define CHECK(cond) ::harness::check(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
#define CHECK_MSG(cond, msg) ::harness::check(static_cast<bool>(cond), msg, __FILE__, __LINE__)

// ---- logging ------------------------------------------------------------------------------------
class CapturingLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;
    int errorCount() const
    {
        return mErrors;
    }
    std::string const& lastError() const
    {
        return mLastError;
    }
    // Every error since reset(), one per line (the first names the cause, later ones the context).
    std::string const& allErrors() const
    {
        return mAllErrors;
    }
    void reset()
    {
        mErrors = 0;
        mLastError.clear();
        mAllErrors.clear();
    }
    bool verbose{false};

private:
    int mErrors{0};
    std::string mLastError;
    std::string mAllErrors;
};

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
#define HARNESS_HAS_LOGGER_FINDER 1
#else
// TensorRT 8.5 has no ILoggerFinder: the plugin's messages go to stderr and cannot be captured.
#define HARNESS_HAS_LOGGER_FINDER 0
#endif

#if HARNESS_HAS_LOGGER_FINDER
class LoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    explicit LoggerFinder(nvinfer1::ILogger* logger)
        : mLogger(logger)
    {
    }
    nvinfer1::ILogger* findLogger() override
    {
        return mLogger;
    }

private:
    nvinfer1::ILogger* mLogger;
};
#endif

// ---- symbolic shapes ------------------------------------------------------------------------------
#if NV_TENSORRT_MAJOR >= 10
using DimValue = int64_t;
#else
using DimValue = int32_t;
#endif

// One node of a shape expression: a constant, or a named symbol (a dynamic dimension).
class DimNode final : public nvinfer1::apiv::VDimensionExpr
{
public:
    DimNode(bool constant, DimValue value, std::string label)
        : mConstant(constant)
        , mValue(value)
        , mLabel(std::move(label))
    {
    }
    bool isConstant() const override
    {
        return mConstant;
    }
    DimValue getConstantValue() const override
    {
        return mConstant ? mValue : DimValue{-1};
    }
#if NV_TENSORRT_MAJOR >= 10
    bool isSizeTensor() const override
    {
        return false;
    }
#endif
    std::string const& label() const
    {
        return mLabel;
    }

private:
    bool mConstant;
    DimValue mValue;
    std::string mLabel;
};

// The public IDimensionExpr is a thin handle over an implementation object (mImpl).
class DimHandle final : public nvinfer1::IDimensionExpr
{
public:
    explicit DimHandle(DimNode* node)
    {
        mImpl = node;
    }
    ~DimHandle() noexcept override = default;
};

class ExprBuilderImpl final : public nvinfer1::apiv::VExprBuilder
{
public:
    nvinfer1::IDimensionExpr const* constant(DimValue value) override;
    nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first,
        nvinfer1::IDimensionExpr const& second) override;
#if NV_TENSORRT_MAJOR >= 10
    nvinfer1::IDimensionExpr const* declareSizeTensor(
        int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper) override;
#endif
    nvinfer1::IDimensionExpr const* symbol(std::string const& label);

private:
    nvinfer1::IDimensionExpr const* make(bool constant, DimValue value, std::string label);
    struct Entry
    {
        DimNode node;
        DimHandle handle;
        Entry(bool constant, DimValue value, std::string label)
            : node(constant, value, std::move(label))
            , handle(&node)
        {
        }
    };
    std::deque<Entry> mEntries; // deque: handles keep their addresses as more are made
};

class ExprBuilder final : public nvinfer1::IExprBuilder
{
public:
    ExprBuilder()
    {
        mImpl = &mBuilder;
    }
    ~ExprBuilder() noexcept override = default;
    nvinfer1::IDimensionExpr const* symbol(std::string const& label)
    {
        return mBuilder.symbol(label);
    }

private:
    ExprBuilderImpl mBuilder;
};

// ---- the plugin library --------------------------------------------------------------------------
struct PluginLibrary
{
    void* handle{nullptr};
#if HARNESS_HAS_LOGGER_FINDER
    void (*setLoggerFinder)(nvinfer1::ILoggerFinder*){nullptr};
#endif
#if NV_TENSORRT_MAJOR >= 10
    nvinfer1::IPluginCreatorInterface* const* (*getCreators)(int32_t&){nullptr};
#else
    nvinfer1::IPluginCreator* const* (*getPluginCreators)(int32_t&){nullptr};
#endif
    char const* (*info)(){nullptr};
    int (*setNamespace)(char const*){nullptr};
    std::string error;
};

// dlopen + dlsym, as IPluginRegistry::loadLibrary does. Returns false with `error` set.
bool openPluginLibrary(std::string const& path, PluginLibrary& library);

std::vector<float> randomValues(std::size_t count, uint32_t seed, float scale, float offset);

} // namespace harness

#endif // SIMAM_TRT_HARNESS_SUPPORT_H
