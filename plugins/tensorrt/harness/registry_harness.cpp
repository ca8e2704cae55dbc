// Registration harness: this executable plays libnvinfer's part for plugin registration. It
// exports getPluginRegistry() (the symbol REGISTER_TENSORRT_PLUGIN calls, and which the plugin
// references weakly) and getInferLibVersion(), and implements IPluginRegistry::loadLibrary the way
// the real registry behaves (checked against TensorRT for RTX 1.7's from Python, see
// tests/test_tensorrt_rtx.py): dlopen the library, ask its creator list (getCreators /
// getPluginCreators), fail when the list is EMPTY ("No creator returned"), register every creator,
// fail (return null) on a duplicate. It checks that a plain dlopen (load-time registration) and
// loadLibrary together register SimAM exactly once, in either order, that the registered creator
// works, and, with --runtime-version, that a runtime of another registry layout is never called.
//
//   simam_trt_registry_harness --plugin PATH [--runtime-version ENCODED]
#include "harness_support.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace nvinfer1;

#if NV_TENSORRT_MAJOR < 10
// TensorRT 8's plugin interfaces (the only ones it has) are marked deprecated in its headers.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace
{

#if NV_TENSORRT_MAJOR >= 10
using Creator = IPluginCreatorInterface;
char const* kListSymbol = "getCreators";

// Name/version/namespace of a V3One creator (the only kind this plugin registers on >= 10).
bool describe(Creator const& creator, std::string& name, std::string& version, std::string& ns)
{
    if (std::strcmp(creator.getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
    {
        return false;
    }
    auto const& v3 = static_cast<IPluginCreatorV3One const&>(creator);
    name = v3.getPluginName();
    version = v3.getPluginVersion();
    ns = v3.getPluginNamespace();
    return true;
}
#else
using Creator = IPluginCreator;
char const* kListSymbol = "getPluginCreators";

bool describe(Creator const& creator, std::string& name, std::string& version, std::string& ns)
{
    name = creator.getPluginName();
    version = creator.getPluginVersion();
    ns = creator.getPluginNamespace();
    return true;
}
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

class FakeRegistry final : public IPluginRegistry
{
public:
    std::vector<Creator*> creators;
    int registerCalls{0};
    int deregisterCalls{0};
    int duplicateRejections{0};
    int emptyLists{0};

    bool remove(Creator const& creator)
    {
        ++deregisterCalls;
        for (auto it = creators.begin(); it != creators.end(); ++it)
        {
            if (*it == &creator)
            {
                creators.erase(it);
                return true;
            }
        }
        return false;
    }

    bool add(Creator& creator, char const* pluginNamespace)
    {
        ++registerCalls;
        std::string name;
        std::string version;
        std::string ns;
        if (!describe(creator, name, version, ns))
        {
            return false;
        }
        if (pluginNamespace != nullptr && ns != pluginNamespace)
        {
            return false;
        }
        if (find(name.c_str(), version.c_str(), ns.c_str()) != nullptr)
        {
            ++duplicateRejections; // TensorRT refuses a second creator with the same key
            return false;
        }
        creators.push_back(&creator);
        return true;
    }

    Creator* find(char const* name, char const* version, char const* ns)
    {
        for (Creator* c : creators)
        {
            std::string n;
            std::string v;
            std::string s;
            if (describe(*c, n, v, s) && n == name && v == version && s == (ns != nullptr ? ns : ""))
            {
                return c;
            }
        }
        return nullptr;
    }

    // IPluginRegistry::loadLibrary as the real registry does it: null for an empty creator list (an
    // API usage error there) and when a creator is already registered.
    PluginLibraryHandle loadLibrary(AsciiChar const* pluginPath) noexcept override
    {
        void* handle = dlopen(pluginPath, RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr)
        {
            return nullptr;
        }
        using ListFn = Creator* const* (*) (int32_t&);
        auto list = reinterpret_cast<ListFn>(dlsym(handle, kListSymbol));
        auto setFinder = reinterpret_cast<void (*)(ILoggerFinder*)>(dlsym(handle, "setLoggerFinder"));
        if (list == nullptr || setFinder == nullptr)
        {
            return nullptr;
        }
        setFinder(finder);
        int32_t count = -1;
        Creator* const* creatorsOfLibrary = list(count);
        if (count == 0)
        {
            ++emptyLists;
            return nullptr;
        }
        if (count < 0 || creatorsOfLibrary == nullptr)
        {
            return nullptr;
        }
        for (int32_t i = 0; i < count; ++i)
        {
            if (creatorsOfLibrary[i] == nullptr || !add(*creatorsOfLibrary[i], nullptr))
            {
                return nullptr;
            }
        }
        return handle;
    }

    ILoggerFinder* finder{nullptr};

    // ---- the rest of the interface: unused by the plugin, minimal ----
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const) override {}
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
#if NV_TENSORRT_MAJOR < 11
    bool registerCreator(IPluginCreator& creator, AsciiChar const* const ns) noexcept override
    {
#if NV_TENSORRT_MAJOR >= 10
        (void) creator;
        (void) ns;
        return false; // a V2 creator: not what this plugin registers on >= 10
#else
        return add(creator, ns);
#endif
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const ns) noexcept override
    {
#if NV_TENSORRT_MAJOR >= 10
        (void) name;
        (void) version;
        (void) ns;
        return nullptr;
#else
        return find(name, version, ns);
#endif
    }
    bool deregisterCreator(IPluginCreator const& creator) noexcept override
    {
#if NV_TENSORRT_MAJOR >= 10
        (void) creator;
        return false;
#else
        return remove(creator);
#endif
    }
#endif
#if NV_TENSORRT_MAJOR >= 10
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override
    {
        return add(creator, ns);
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const numCreators) const noexcept override
    {
        *numCreators = static_cast<int32_t>(creators.size());
        return creators.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const ns) noexcept override
    {
        return find(name, version, ns);
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override
    {
        return remove(creator);
    }
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override
    {
        return nullptr;
    }
    int32_t releasePluginResource(AsciiChar const*) noexcept override
    {
        return -1;
    }
#endif
// getAllCreatorsRecursive appeared in TensorRT 10.10.
#if NV_TENSORRT_MAJOR >= 11 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR >= 10)
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        return getAllCreators(numCreators);
    }
#endif
};

#pragma GCC diagnostic pop

FakeRegistry gRegistry;
int gRegistryCalls{0};
int32_t gRuntimeVersion{0};
harness::CapturingLogger gLogger;
harness::LoggerFinder gFinder(&gLogger);

} // namespace

// What libnvinfer exports; the plugin's weak reference binds to it because this executable
// exports its dynamic symbols (ENABLE_EXPORTS).
extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    ++gRegistryCalls;
    return &gRegistry;
}

// The version the plugin checks before calling the registry: by default the headers' own (encoded
// as TensorRT does: major*1000+minor*100+patch up to 9.x, major*10000+... from 10), or
// --runtime-version to play another runtime.
extern "C" __attribute__((visibility("default"))) int32_t getInferLibVersion() noexcept
{
    return gRuntimeVersion;
}

namespace
{

std::string pluginInfo(void* handle)
{
    auto info = reinterpret_cast<char const* (*) ()>(handle != nullptr ? dlsym(handle, "simamTrtPluginInfo") : nullptr);
    return info != nullptr ? info() : "";
}

bool creatorWorks(Creator* creator)
{
    if (creator == nullptr)
    {
        return false;
    }
    float const lambda = 1e-4F;
    int32_t const unbiased = 1;
    PluginField fields[] = {PluginField("e_lambda", &lambda, PluginFieldType::kFLOAT32, 1),
        PluginField("unbiased", &unbiased, PluginFieldType::kINT32, 1)};
    PluginFieldCollection fc{2, fields};
#if NV_TENSORRT_MAJOR >= 10
    auto* v3 = static_cast<IPluginCreatorV3One*>(creator);
    IPluginV3* plugin = v3->createPlugin("layer", &fc, TensorRTPhase::kBUILD);
    bool const ok = plugin != nullptr;
    delete plugin;
#else
    IPluginV2* plugin = creator->createPlugin("layer", &fc);
    bool const ok = plugin != nullptr;
    if (plugin != nullptr)
    {
        plugin->destroy();
    }
#endif
    return ok;
}

// A plain dlopen first (ctypes, LD_PRELOAD, trtexec --staticPlugins), then loadLibrary
// (trtexec --dynamicPlugins, Python load_library): the load-time registration hands over.
void dlopenThenLoadLibrary(char const* path)
{
    void* plain = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(plain != nullptr, "plain dlopen succeeds");
    CHECK_MSG(gRegistry.registerCalls == 1 && gRegistry.creators.size() == 1, "load-time registration: once");
    CHECK_MSG(pluginInfo(plain).find("registered_by=load-time") != std::string::npos, "info: load-time");

    IPluginRegistry::PluginLibraryHandle handle = gRegistry.loadLibrary(path);
    CHECK_MSG(gRegistry.emptyLists == 0, "getCreators never returns an empty list (the real registry fails)");
    CHECK_MSG(handle != nullptr, "loadLibrary after the load-time registration succeeds");
    CHECK_MSG(gRegistry.deregisterCalls == 1, "the load-time registration was handed over (deregistered once)");
    CHECK_MSG(gRegistry.creators.size() == 1, "SimAM registered exactly once");
    CHECK_MSG(gRegistry.duplicateRejections == 0, "no duplicate registration attempted");
    CHECK_MSG(pluginInfo(plain).find("registered_by=loadLibrary") != std::string::npos, "info: loadLibrary");

    // The real registry refuses a second loadLibrary of a library it holds (returns null), and
    // SimAM stays registered once.
    IPluginRegistry::PluginLibraryHandle again = gRegistry.loadLibrary(path);
    CHECK_MSG(again == nullptr && gRegistry.creators.size() == 1, "second loadLibrary: refused, still one");

    // A plain dlopen after loadLibrary runs no constructor and changes nothing.
    void* later = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(later != nullptr && gRegistry.creators.size() == 1 && gRegistry.registerCalls == 3,
        "dlopen after loadLibrary changes nothing");
    CHECK_MSG(creatorWorks(gRegistry.find("SimAM", "1", "")), "the registered creator creates a plugin");
}

// A runtime whose registry has another layout: the plugin must not call into it at all.
void refuseOtherLayout(char const* path)
{
    void* plain = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(plain != nullptr, "plain dlopen succeeds");
    CHECK_MSG(gRegistryCalls == 0, "getPluginRegistry never called for another registry layout");
    CHECK_MSG(gRegistry.registerCalls == 0 && gRegistry.creators.empty(), "nothing registered");
    std::string const info = pluginInfo(plain);
    std::printf("  %s\n", info.c_str());
    CHECK_MSG(info.find("registry_refused=yes") != std::string::npos, "info: the registration was refused");
    CHECK_MSG(info.find("registered_by=none") != std::string::npos, "info: registered by none");
}

int32_t encodedHeaderVersion()
{
    return NV_TENSORRT_MAJOR >= 10 ? NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH
                                   : NV_TENSORRT_MAJOR * 1000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

} // namespace

int main(int argc, char** argv)
{
    if ((argc != 3 && argc != 5) || std::string(argv[1]) != "--plugin"
        || (argc == 5 && std::string(argv[3]) != "--runtime-version"))
    {
        std::fprintf(stderr, "usage: simam_trt_registry_harness --plugin PATH [--runtime-version ENCODED]\n");
        return 2;
    }
    gRegistry.finder = &gFinder;
    gRuntimeVersion = argc == 5 ? std::atoi(argv[4]) : encodedHeaderVersion();
    std::printf("simam_trt_registry_harness: TensorRT headers %d.%d.%d, runtime version %d\n", NV_TENSORRT_MAJOR,
        NV_TENSORRT_MINOR, NV_TENSORRT_PATCH, static_cast<int>(gRuntimeVersion));
    if (gRuntimeVersion == encodedHeaderVersion())
    {
        dlopenThenLoadLibrary(argv[2]);
    }
    else
    {
        refuseOtherLayout(argv[2]);
    }
    std::printf("%d checks, %d failed\n", harness::checksRun(), harness::failures());
    return harness::failures() == 0 ? 0 : 1;
}
