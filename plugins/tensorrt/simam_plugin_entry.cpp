// Library entry points: how TensorRT finds the SimAM creator.
//
// 1. Dynamic loading (IPluginRegistry::loadLibrary, `trtexec --dynamicPlugins=`, the Python
//    registry's load_library): TensorRT looks up `getCreators` (TensorRT >= 10) or
//    `getPluginCreators` (8.x), and `setLoggerFinder`, and registers every creator returned.
//    The real registry treats an EMPTY list as an API usage error ("No creator returned") and
//    fails, so the list always holds the creator.
// 2. Static registration (`trtexec --staticPlugins=`, a plain dlopen/ctypes load, LD_PRELOAD
//    inside a process that has libnvinfer or libtensorrt_rtx): the equivalent of
//    REGISTER_TENSORRT_PLUGIN runs when the library is loaded.
//
// Both may happen, in either order, and SimAM must end up registered once: when loadLibrary asks
// for the list after the load-time registration, the creator is first deregistered from the
// registry it was put into, and loadLibrary registers it again (the library now belongs to that
// handle). Loaded after loadLibrary, a plain dlopen runs no constructor and changes nothing.
//
// The library must also load where there is no TensorRT at all (the conformance harness,
// `ctypes.CDLL` in tests), so it does not link libnvinfer: `getPluginRegistry` is referenced
// weakly, and the stock REGISTER_TENSORRT_PLUGIN macro (which calls it unconditionally) is
// replaced by a registrar that checks it is there AND that the runtime's IPluginRegistry has the
// layout these headers describe (8.x, 10.x and 11.x/RTX differ: a 10.x vtable slot is another
// method in 11.x). A mismatch is refused with a message, never called into.
#include "simam_plugin_v2.h"
#include "simam_plugin_v3.h"

#include <dlfcn.h>

#include <mutex>
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

// Who holds the registration: nobody, the load-time registrar, or an IPluginRegistry::loadLibrary
// caller (after a hand-over). `gRefusal` says why the load-time registration stood down.
enum class Holder
{
    kNone,
    kLoadTime,
    kLoadLibrary
};
std::mutex gStateMutex;
Holder gHolder{Holder::kNone};
nvinfer1::IPluginRegistry* gLoadTimeRegistry{nullptr};
std::string gRefusal;

using GetRegistryFn = nvinfer1::IPluginRegistry* (*) () noexcept;
using GetVersionFn = int32_t (*)() noexcept;


// getPluginRegistry of a runtime already in the process (never loads one). libnvinfer may be
// loaded privately (RTLD_LOCAL, as Python extension modules are), where a weak reference cannot
// see it; the dynamic loader still finds it by name with RTLD_NOLOAD.
GetRegistryFn findRegistryFunction() noexcept
{
    if (&getPluginRegistry != nullptr)
    {
        return &getPluginRegistry;
    }
    // The runtime libraries whose registry we may join: TensorRT (libnvinfer) and TensorRT for RTX.
    std::string const versioned = "libnvinfer.so." + std::to_string(NV_TENSORRT_MAJOR);
    for (char const* name : {versioned.c_str(), "libnvinfer.so", "libtensorrt_rtx.so.1", "libtensorrt_rtx.so"})
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

// Looks `name` up in the object that defines `anchor` (the library that exported getPluginRegistry).
void* symbolBeside(void* anchor, char const* name, std::string& library) noexcept
{
    Dl_info info{};
    if (dladdr(anchor, &info) == 0 || info.dli_fname == nullptr)
    {
        return nullptr;
    }
    library = info.dli_fname;
    void* handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr)
    {
        handle = dlopen(nullptr, RTLD_LAZY); // the main program (a host that links TensorRT statically)
    }
    if (handle == nullptr)
    {
        return nullptr;
    }
    void* symbol = dlsym(handle, name);
    dlclose(handle);
    return symbol;
}

// The IPluginRegistry layout (= TensorRT major) the runtime that owns `getRegistry` implements, or -1.
// TensorRT encodes getInferLibVersion() as major*1000+minor*100+patch up to 9.x and
// major*10000+minor*100+patch from 10; TensorRT for RTX 1.x reports its own 1.x numbers and has
// the 11.x layout.
int32_t registryLayout(GetRegistryFn getRegistry, std::string& described) noexcept
{
    std::string library;
    auto version = reinterpret_cast<GetVersionFn>(
        symbolBeside(reinterpret_cast<void*>(getRegistry), "getInferLibVersion", library));
    if (version == nullptr)
    {
        described = "a runtime without getInferLibVersion (" + library + ")";
        return -1;
    }
    int32_t const encoded = version();
    int32_t const major = encoded >= 10000 ? encoded / 10000 : encoded / 1000;
    bool const rtx = library.find("tensorrt_rtx") != std::string::npos;
    described = std::string(rtx ? "TensorRT for RTX " : "TensorRT ") + std::to_string(major) + "."
        + std::to_string(encoded % (encoded >= 10000 ? 10000 : 1000) / 100) + " (" + library + ")";
    if (rtx)
    {
        return major == 1 ? 11 : -1;
    }
    return major;
}

// REGISTER_TENSORRT_PLUGIN, guarded: registers the creator with the process-wide registry at
// load time when a runtime with our registry layout is present; otherwise does nothing (the
// creator stays reachable through getCreators) and, for a mismatch, says why.
void registerAtLoadTime() noexcept
{
    try
    {
        GetRegistryFn getRegistry = findRegistryFunction();
        if (getRegistry == nullptr)
        {
            return; // no TensorRT in this process
        }
        std::string runtime;
        int32_t const layout = registryLayout(getRegistry, runtime);
        if (layout != NV_TENSORRT_MAJOR)
        {
            std::lock_guard<std::mutex> lock(gStateMutex);
            gRefusal = "SimAM plugin built against TensorRT " + std::to_string(NV_TENSORRT_MAJOR) + "."
                + std::to_string(NV_TENSORRT_MINOR) + " headers refuses to register with " + runtime
                + ": its plugin registry has another layout. Rebuild the plugin against that runtime's headers "
                  "(TENSORRT_ROOT=...; TensorRT for RTX 1.x: the 11.x headers)";
            logError(gRefusal);
            return;
        }
        nvinfer1::IPluginRegistry* registry = getRegistry();
        if (registry == nullptr)
        {
            return;
        }
        Creator& creator = theCreator();
        std::lock_guard<std::mutex> lock(gStateMutex);
        if (gHolder == Holder::kNone && registry->registerCreator(creator, creator.getPluginNamespace()))
        {
            gHolder = Holder::kLoadTime;
            gLoadTimeRegistry = registry;
        }
    }
    catch (...)
    {
        logUnexpected("static plugin registration");
    }
}

struct GuardedRegistrar
{
    GuardedRegistrar() noexcept
    {
        registerAtLoadTime();
    }
};

GuardedRegistrar const gRegistrar;

// The list loadLibrary registers. Never empty (the real registry fails on an empty list); when the
// load-time registration holds the creator, it is handed over: deregistered first, so that
// loadLibrary's registration is the only one.
CreatorBase* const* creatorList(int32_t& nbCreators) noexcept
{
    static CreatorBase* const kCreators[] = {&theCreator()};
    std::lock_guard<std::mutex> lock(gStateMutex);
    if (gHolder == Holder::kLoadTime && gLoadTimeRegistry != nullptr)
    {
        if (!gLoadTimeRegistry->deregisterCreator(theCreator()))
        {
            logWarning("SimAM: could not hand the load-time registration over to loadLibrary");
        }
        gLoadTimeRegistry = nullptr;
    }
    gHolder = Holder::kLoadLibrary;
    nbCreators = 1;
    return kCreators;
}

char const* holderName() noexcept
{
    switch (gHolder)
    {
    case Holder::kNone: return "none";
    case Holder::kLoadTime: return "load-time";
    case Holder::kLoadLibrary: return "loadLibrary";
    }
    return "none";
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
    std::lock_guard<std::mutex> lock(simam_trt::gStateMutex);
    thread_local std::string info;
    info = std::string("plugin=") + simam_trt::kPluginName
        + " version=" + simam_trt::kPluginVersion + " tensorrt_headers=" + std::to_string(NV_TENSORRT_MAJOR) + "."
        + std::to_string(NV_TENSORRT_MINOR) + "." + std::to_string(NV_TENSORRT_PATCH) + " api=" + simam_trt::kApi
        + " cuda_kernels=" + (simam_has_cuda() ? "yes" : "no")
        + " registered_by=" + simam_trt::holderName()
        + " registry_refused=" + (simam_trt::gRefusal.empty() ? "no" : "yes");
    return info.c_str();
    SIMAM_TRT_GUARD_END("")
}
