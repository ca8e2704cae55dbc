// A C++ host linked to a real TensorRT runtime (libnvinfer or libtensorrt_rtx), loading the SimAM
// plugin the two ways such programs do: a plain dlopen (the plugin's load-time registration) and
// IPluginRegistry::loadLibrary, in the order given. Prints one line per step and exits 0 when SimAM
// ends up registered exactly once and loadLibrary's answer is what the registry promises.
//
//   simam_trt_linked_host PLUGIN dlopen,loadLibrary|loadLibrary,dlopen
// Built and run by tests/test_tensorrt_rtx.py against TensorRT for RTX (no GPU needed).
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace
{

int simamCreators(nvinfer1::IPluginRegistry& registry)
{
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* all = registry.getAllCreators(&count);
    int found = 0;
    for (int32_t i = 0; i < count; ++i)
    {
        if (all[i] != nullptr && std::strcmp(all[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0
            && std::strcmp(static_cast<nvinfer1::IPluginCreatorV3One*>(all[i])->getPluginName(), "SimAM") == 0)
        {
            ++found;
        }
    }
    return found;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: simam_trt_linked_host PLUGIN ORDER\n");
        return 2;
    }
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
    {
        std::printf("no registry\n");
        return 1;
    }
    bool ok = true;
    int loads = 0;
    std::string const order = argv[2];
    for (std::size_t start = 0; start < order.size();)
    {
        std::size_t const comma = order.find(',', start);
        std::string const step = order.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? order.size() : comma + 1;
        if (step == "dlopen")
        {
            bool const opened = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) != nullptr;
            std::printf("dlopen %s simam=%d\n", opened ? "ok" : "failed", simamCreators(*registry));
            ok = ok && opened;
        }
        else if (step == "loadLibrary")
        {
            bool const loaded = registry->loadLibrary(argv[1]) != nullptr;
            std::printf("loadLibrary %s simam=%d\n", loaded ? "ok" : "null", simamCreators(*registry));
            // The registry accepts the library the first time and refuses a second load of it.
            ok = ok && loaded == (loads++ == 0);
        }
    }
    ok = ok && simamCreators(*registry) == 1;
    std::printf("%s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
