#include "harness_support.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <random>

namespace harness
{
namespace
{
int gFailures = 0;
int gChecks = 0;
} // namespace

void check(bool condition, std::string const& what, char const* file, int line)
{
    ++gChecks;
    if (!condition)
    {
        ++gFailures;
        std::fprintf(stderr, "FAILED %s:%d: %s\n", file, line, what.c_str());
    }
}

int failures()
{
    return gFailures;
}

int checksRun()
{
    return gChecks;
}

void CapturingLogger::log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept
{
    if (severity <= Severity::kERROR)
    {
        ++mErrors;
        mLastError = msg != nullptr ? msg : "";
        mAllErrors += mLastError + "\n";
    }
    if (verbose || severity <= Severity::kWARNING)
    {
        std::fprintf(stdout, "  [plugin log %d] %s\n", static_cast<int>(severity), msg != nullptr ? msg : "(null)");
    }
}

nvinfer1::IDimensionExpr const* ExprBuilderImpl::make(bool constant, DimValue value, std::string label)
{
    mEntries.emplace_back(constant, value, std::move(label));
    return &mEntries.back().handle;
}

nvinfer1::IDimensionExpr const* ExprBuilderImpl::constant(DimValue value)
{
    return make(true, value, std::to_string(value));
}

nvinfer1::IDimensionExpr const* ExprBuilderImpl::symbol(std::string const& label)
{
    return make(false, 0, label);
}

nvinfer1::IDimensionExpr const* ExprBuilderImpl::operation(
    nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second)
{
    if (!first.isConstant() || !second.isConstant())
    {
        return make(false, 0, "op" + std::to_string(static_cast<int>(op)));
    }
    DimValue const a = first.getConstantValue();
    DimValue const b = second.getConstantValue();
    using Op = nvinfer1::DimensionOperation;
    switch (op)
    {
    case Op::kSUM: return constant(a + b);
    case Op::kPROD: return constant(a * b);
    case Op::kMAX: return constant(std::max(a, b));
    case Op::kMIN: return constant(std::min(a, b));
    case Op::kSUB: return constant(a - b);
    case Op::kEQUAL: return constant(a == b ? 1 : 0);
    case Op::kLESS: return constant(a < b ? 1 : 0);
    case Op::kFLOOR_DIV: return b == 0 ? nullptr : constant(a / b);
    case Op::kCEIL_DIV: return b == 0 ? nullptr : constant((a + b - 1) / b);
    }
    return nullptr;
}

#if NV_TENSORRT_MAJOR >= 10
nvinfer1::IDimensionExpr const* ExprBuilderImpl::declareSizeTensor(
    int32_t outputIndex, nvinfer1::IDimensionExpr const& /*opt*/, nvinfer1::IDimensionExpr const& /*upper*/)
{
    return make(false, 0, "size_tensor" + std::to_string(outputIndex));
}
#endif

bool openPluginLibrary(std::string const& path, PluginLibrary& library)
{
    library.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library.handle == nullptr)
    {
        char const* why = dlerror();
        library.error = std::string("dlopen failed: ") + (why != nullptr ? why : "?");
        return false;
    }
    auto lookup = [&](char const* name) { return dlsym(library.handle, name); };
#if HARNESS_HAS_LOGGER_FINDER
    library.setLoggerFinder = reinterpret_cast<void (*)(nvinfer1::ILoggerFinder*)>(lookup("setLoggerFinder"));
    bool const haveFinder = library.setLoggerFinder != nullptr;
#else
    bool const haveFinder = true;
#endif
#if NV_TENSORRT_MAJOR >= 10
    library.getCreators
        = reinterpret_cast<nvinfer1::IPluginCreatorInterface* const* (*) (int32_t&)>(lookup("getCreators"));
    bool const haveList = library.getCreators != nullptr;
    char const* listName = "getCreators";
#else
    library.getPluginCreators
        = reinterpret_cast<nvinfer1::IPluginCreator* const* (*) (int32_t&)>(lookup("getPluginCreators"));
    bool const haveList = library.getPluginCreators != nullptr;
    char const* listName = "getPluginCreators";
#endif
    library.info = reinterpret_cast<char const* (*) ()>(lookup("simamTrtPluginInfo"));
    library.setNamespace = reinterpret_cast<int (*)(char const*)>(lookup("simamTrtSetPluginNamespace"));
    if (!haveList || !haveFinder)
    {
        library.error = std::string("missing entry point: ") + (haveList ? "setLoggerFinder" : listName);
        return false;
    }
    return true;
}

std::vector<float> randomValues(std::size_t count, uint32_t seed, float scale, float offset)
{
    std::mt19937 generator(seed);
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::vector<float> values(count);
    for (float& v : values)
    {
        v = offset + scale * normal(generator);
    }
    return values;
}

} // namespace harness
