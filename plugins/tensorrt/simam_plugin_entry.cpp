// Library entry points: how TensorRT finds the SimAM creator.
//
// 1. Dynamic loading (IPluginRegistry::loadLibrary, `trtexec --dynamicPlugins=`, the Python
//    registry's load_library): TensorRT looks up `getCreators` (TensorRT >= 10) or
//    `getPluginCreators` (8.x), and `setLoggerFinder`.
// 2. Static registration (`trtexec --staticPlugins=`, a plain dlopen/ctypes load inside a
//    process that already has libnvinfer): the equivalent of REGISTER_TENSORRT_PLUGIN runs
//    when the library is loaded.
//
// The library must also load where there is no libnvinfer at all (the conformance harness,
// `ctypes.CDLL` in tests), so it does not link libnvinfer: `getPluginRegistry` is referenced
// weakly, and the stock REGISTER_TENSORRT_PLUGIN macro (which calls it unconditionally) is
// replaced by a registrar that checks it is there.
#include "simam_plugin_v2.h"
#include "simam_plugin_v3.h"

#include <dlfcn.h>

#include <atomic>
#include <string>

#define SIMAM_TRT_EXPORT extern "C" __attribute__((visibility("default")))

// Weak: resolves to libnvinfer's registry when libnvinfer is in the global symbol scope, to
// null otherwise (instead of a load failure).
#pragma weak getPluginRegistry

namespace simam_trt
{
namespace
{

#if NV_TENSORRT_MAJOR >= 10
using Creator = SimamCreatorV3;
using CreatorBase = nvinfer1::IPluginCreatorInterface;
constexpr char const* kApi = "IPluginV3 (IPluginV3OneCore/Build/Runtime, IPluginCreatorV3One)";
#else
using Creator = SimamCreatorV2;
using CreatorBase = nvinfer1::IPluginCreator;
constexpr char const* kApi = "IPluginV2DynamicExt (IPluginCreator)";
#endif

Creator& theCreator() noexcept
{
    static Creator creator;
    return creator;
}

std::atomic<bool> gStaticallyRegistered{false};

using GetRegistryFn = nvinfer1::IPluginRegistry* (*) () noexcept;

// libnvinfer may be loaded privately (RTLD_LOCAL, as Python extension modules are), where a weak
// reference cannot see it; ask the dynamic loader for an already-loaded copy, never load one.
GetRegistryFn findRegistryFunction() noexcept
{
    if (&getPluginRegistry != nullptr)
    {
        return &getPluginRegistry;
    }
    std::string const versioned = "libnvinfer.so." + std::to_string(NV_TENSORRT_MAJOR);
    for (char const* name : {versioned.c_str(), "libnvinfer.so"})
    {
        if (void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD))
        {
            void* symbol = dlsym(handle, "getPluginRegistry");
            dlclose(handle); // drops only the reference RTLD_NOLOAD added
            if (symbol != nullptr)
            {
                return reinterpret_cast<GetRegistryFn>(symbol);
            }
        }
    }
    return nullptr;
}

// REGISTER_TENSORRT_PLUGIN, guarded: registers the creator with the process-wide registry at
// load time when libnvinfer is present, and does nothing otherwise.
struct GuardedRegistrar
{
    GuardedRegistrar() noexcept
    {
        try
        {
            GetRegistryFn getRegistry = findRegistryFunction();
            nvinfer1::IPluginRegistry* registry = getRegistry != nullptr ? getRegistry() : nullptr;
            if (registry == nullptr)
            {
                return; // no TensorRT in this process: creators are reachable via getCreators()
            }
            Creator& creator = theCreator();
            if (registry->registerCreator(creator, creator.getPluginNamespace()))
            {
                gStaticallyRegistered.store(true);
            }
        }
        catch (...)
        {
            logUnexpected("static plugin registration");
        }
    }
};

GuardedRegistrar const gRegistrar;

// loadLibrary registers every creator this list returns and fails when one is already
// registered. When the load-time registration above already put SimAM into this process's
// registry (loadLibrary dlopens us first), the list is empty so the two paths never collide.
CreatorBase* const* creatorList(int32_t& nbCreators) noexcept
{
    static CreatorBase* const kCreators[] = {&theCreator()};
    if (gStaticallyRegistered.load())
    {
        nbCreators = 0;
        return kCreators;
    }
    nbCreators = 1;
    return kCreators;
}

} // namespace
} // namespace simam_trt

#if NV_TENSORRT_MAJOR >= 10
SIMAM_TRT_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    return simam_trt::creatorList(nbCreators);
}
#else
SIMAM_TRT_EXPORT nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators) noexcept
{
    return simam_trt::creatorList(nbCreators);
}
#endif

#if SIMAM_TRT_HAS_PLUGIN_LIBRARIES
SIMAM_TRT_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    simam_trt::setLoggerFinder(finder);
}
#endif

// Not a TensorRT entry point: the namespace the creator (and every plugin it creates) reports,
// for applications whose ONNX nodes set plugin_namespace. Call it before registering the creator
// (IPluginCreatorV3One has no setter, so TensorRT itself never calls one on >= 10).
SIMAM_TRT_EXPORT int simamTrtSetPluginNamespace(char const* pluginNamespace) noexcept
{
    std::string value;
    if (!simam_trt::safeString(pluginNamespace, value))
    {
        return 0;
    }
    simam_trt::theCreator().setPluginNamespace(pluginNamespace);
    return 1;
}

// Not a TensorRT entry point: lets tools and tests ask what this binary is without TensorRT.
SIMAM_TRT_EXPORT char const* simamTrtPluginInfo() noexcept
{
    SIMAM_TRT_GUARD_BEGIN
    thread_local std::string info;
    info = std::string("plugin=") + simam_trt::kPluginName
        + " version=" + simam_trt::kPluginVersion + " tensorrt_headers=" + std::to_string(NV_TENSORRT_MAJOR) + "."
        + std::to_string(NV_TENSORRT_MINOR) + "." + std::to_string(NV_TENSORRT_PATCH) + " api=" + simam_trt::kApi
        + " cuda_kernels=" + (simam_has_cuda() ? "yes" : "no")
        + " statically_registered=" + (simam_trt::gStaticallyRegistered.load() ? "yes" : "no");
    return info.c_str();
    SIMAM_TRT_GUARD_END("")
}
