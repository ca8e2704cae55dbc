// Registration harness: this executable plays libnvinfer's part for plugin registration. It
// exports getPluginRegistry() (the symbol REGISTER_TENSORRT_PLUGIN calls, and which the plugin
// references weakly) and implements IPluginRegistry::loadLibrary the way TensorRT documents it:
// dlopen the library, ask its creator list (getCreators / getPluginCreators), register every
// creator, fail on a duplicate. It checks that load-time registration and loadLibrary together
// register SimAM exactly once, and that the registered creator works.
//
//   simam_trt_registry_harness --plugin PATH
#include "harness_support.h"

#include <dlfcn.h>

#include <cstdio>
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
    int duplicateRejections{0};

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

    // IPluginRegistry::loadLibrary as documented: returns null if any creator is already registered.
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
        if (count < 0 || (count > 0 && creatorsOfLibrary == nullptr))
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
    bool deregisterCreator(IPluginCreator const&) noexcept override
    {
        return false;
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
    bool deregisterCreator(IPluginCreatorInterface const&) noexcept override
    {
        return false;
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
harness::CapturingLogger gLogger;
harness::LoggerFinder gFinder(&gLogger);

} // namespace

// What libnvinfer exports; the plugin's weak reference binds to it because this executable
// exports its dynamic symbols (ENABLE_EXPORTS).
extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    return &gRegistry;
}

int main(int argc, char** argv)
{
    if (argc != 3 || std::string(argv[1]) != "--plugin")
    {
        std::fprintf(stderr, "usage: simam_trt_registry_harness --plugin PATH\n");
        return 2;
    }
    gRegistry.finder = &gFinder;
    std::printf("simam_trt_registry_harness: TensorRT headers %d.%d.%d\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
        NV_TENSORRT_PATCH);

    IPluginRegistry::PluginLibraryHandle handle = gRegistry.loadLibrary(argv[2]);
    CHECK_MSG(handle != nullptr, "loadLibrary succeeds");
    CHECK_MSG(gRegistry.creators.size() == 1, "SimAM registered exactly once");
    CHECK_MSG(gRegistry.duplicateRejections == 0, "no duplicate registration attempted");
    CHECK_MSG(gRegistry.registerCalls == 1, "one registration (the load-time one)");

    auto info = reinterpret_cast<char const* (*) ()>(handle != nullptr ? dlsym(handle, "simamTrtPluginInfo") : nullptr);
    CHECK(info != nullptr);
    if (info != nullptr)
    {
        std::printf("  %s\n", info());
        CHECK_MSG(std::strstr(info(), "statically_registered=yes") != nullptr, "load-time registration happened");
    }

    // Loading the same library a second time must not register it again either.
    IPluginRegistry::PluginLibraryHandle again = gRegistry.loadLibrary(argv[2]);
    CHECK_MSG(again != nullptr && gRegistry.creators.size() == 1, "second loadLibrary is harmless");

    // The registered creator is the SimAM creator and works.
    Creator* creator = gRegistry.find("SimAM", "1", "");
    CHECK(creator != nullptr);
    if (creator != nullptr)
    {
        float const lambda = 1e-4F;
        int32_t const unbiased = 1;
        PluginField fields[] = {PluginField("e_lambda", &lambda, PluginFieldType::kFLOAT32, 1),
            PluginField("unbiased", &unbiased, PluginFieldType::kINT32, 1)};
        PluginFieldCollection fc{2, fields};
#if NV_TENSORRT_MAJOR >= 10
        auto* v3 = static_cast<IPluginCreatorV3One*>(creator);
        IPluginV3* plugin = v3->createPlugin("layer", &fc, TensorRTPhase::kBUILD);
        CHECK(plugin != nullptr);
        delete plugin;
#else
        IPluginV2* plugin = creator->createPlugin("layer", &fc);
        CHECK(plugin != nullptr);
        if (plugin != nullptr)
        {
            plugin->destroy();
        }
#endif
    }
    std::printf("%d checks, %d failed\n", harness::checksRun(), harness::failures());
    return harness::failures() == 0 ? 0 : 1;
}
