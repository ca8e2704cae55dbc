// Conformance harness for libsimam_trt_plugin.so: drives the plugin through TensorRT's
// documented plugin lifecycle without TensorRT itself.
//
//   simam_trt_harness --plugin PATH --group load|lifecycle|fields|serialization|enqueue
//
// load           dlopen + entry points + creator identity and field list (what loadLibrary and
//                the ONNX parser see)
// lifecycle      build phase -> capabilities -> clone -> output types/shapes -> format matrix ->
//                configure -> workspace -> serialize -> runtime phase -> attach/onShapeChange
//                (IPluginV3 on TensorRT >= 10; IPluginV2DynamicExt on 8.x)
// fields         malformed plugin fields: each must give a null plugin and a logged error
// serialization  serialized form round trip (and, on 8.x, corrupted blobs)
// enqueue        GPU only: enqueue against simam_forward_cpu; exits 77 (CTest skip) without a GPU
#include "harness_support.h"
#include "simam.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

constexpr int kSkip = 77;

harness::CapturingLogger gLogger;
#if HARNESS_HAS_LOGGER_FINDER
harness::LoggerFinder gFinder(&gLogger);
constexpr bool kLogCaptured = true;
#else
constexpr bool kLogCaptured = false; // 8.5: messages go to stderr, not to a logger we can read
#endif
harness::PluginLibrary gLibrary;

// A rejected input must be explained through TensorRT's logger (where the version has one).
bool errorLogged()
{
    return !kLogCaptured || gLogger.errorCount() > 0;
}

// ---- field collections ------------------------------------------------------------------------
struct Fields
{
    std::vector<PluginField> list;
    PluginFieldCollection collection() const
    {
        return PluginFieldCollection{static_cast<int32_t>(list.size()), list.data()};
    }
};

float const kLambda = 1e-4F;
int32_t const kUnbiased = 1;

// What a plugin reports through its serialized form.
struct Params
{
    float lambda{0.0F};
    int32_t unbiased{-1};
    int32_t affine{-1};
    int32_t residual{-1};
    std::string activation;
};

// The epilogue fields as TensorRT's ONNX parser passes them: INT -> kINT32 x1, STRING -> kCHAR with
// the string's length and no terminator. The fields point into `e`, which must outlive them.
struct Epilogue
{
    int32_t affine{0};
    int32_t residual{0};
    std::string activation{"none"};
};

Fields epilogueFields(Epilogue const& e, float const* lambda = &kLambda, int32_t const* unbiased = &kUnbiased)
{
    return Fields{{PluginField("e_lambda", lambda, PluginFieldType::kFLOAT32, 1),
        PluginField("unbiased", unbiased, PluginFieldType::kINT32, 1),
        PluginField("affine", &e.affine, PluginFieldType::kINT32, 1),
        PluginField("residual", &e.residual, PluginFieldType::kINT32, 1),
        PluginField("activation", e.activation.data(), PluginFieldType::kCHAR,
            static_cast<int32_t>(e.activation.size()))}};
}


Fields validFields(float const* lambda = &kLambda, int32_t const* unbiased = &kUnbiased)
{
    return Fields{{PluginField("e_lambda", lambda, PluginFieldType::kFLOAT32, 1),
        PluginField("unbiased", unbiased, PluginFieldType::kINT32, 1)}};
}

bool supportedType(DataType type)
{
#if NV_TENSORRT_MAJOR >= 9
    if (type == DataType::kBF16)
    {
        return true;
    }
#endif
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

std::vector<DataType> kernelTypes()
{
    std::vector<DataType> types{DataType::kFLOAT, DataType::kHALF};
#if NV_TENSORRT_MAJOR >= 9
    types.push_back(DataType::kBF16);
#endif
    return types;
}

Dims dims4(int64_t n, int64_t c, int64_t h, int64_t w)
{
    Dims d{};
    d.nbDims = 4;
    d.d[0] = static_cast<harness::DimValue>(n);
    d.d[1] = static_cast<harness::DimValue>(c);
    d.d[2] = static_cast<harness::DimValue>(h);
    d.d[3] = static_cast<harness::DimValue>(w);
    return d;
}

PluginTensorDesc tensorDesc(Dims dims, DataType type, TensorFormat format = TensorFormat::kLINEAR)
{
    PluginTensorDesc desc{};
    desc.dims = dims;
    desc.type = type;
    desc.format = format;
    desc.scale = 1.0F;
    return desc;
}

DynamicPluginTensorDesc dynamicDesc(Dims declared, DataType type, Dims min, Dims opt, Dims max)
{
    DynamicPluginTensorDesc desc{};
    desc.desc = tensorDesc(declared, type);
    desc.min = min;
    desc.max = max;
#if NV_TENSORRT_MAJOR >= 10
    desc.opt = opt;
#else
    (void) opt;
#endif
    return desc;
}

// ---- version-specific access: everything else in this file is shared ----------------------------
#if NV_TENSORRT_MAJOR >= 10

IPluginCreatorV3One* theCreator()
{
    int32_t count = -1;
    IPluginCreatorInterface* const* list = gLibrary.getCreators(count);
    if (list == nullptr || count != 1 || list[0] == nullptr)
    {
        return nullptr;
    }
    // TensorRT checks the interface kind before treating a creator as V3One; so do we.
    InterfaceInfo const info = list[0]->getInterfaceInfo();
    if (std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0 || info.major != 1)
    {
        return nullptr;
    }
    return static_cast<IPluginCreatorV3One*>(list[0]);
}

struct PluginDeleter
{
    void operator()(IPluginV3* plugin) const
    {
        delete plugin;
    }
};
using PluginPtr = std::unique_ptr<IPluginV3, PluginDeleter>;

PluginPtr createPlugin(PluginFieldCollection const* fc, TensorRTPhase phase = TensorRTPhase::kBUILD)
{
    IPluginCreatorV3One* creator = theCreator();
    return PluginPtr(creator != nullptr ? creator->createPlugin("simam_layer", fc, phase) : nullptr);
}

IPluginV3OneCore* core(IPluginV3* p)
{
    return static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
}
IPluginV3OneBuild* build(IPluginV3* p)
{
    return static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
}
IPluginV3OneRuntime* runtime(IPluginV3* p)
{
    return static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
}

// What TensorRT stores in the engine: a deep copy of getFieldsToSerialize().
struct SerializedFields
{
    std::vector<std::string> names;
    std::vector<std::vector<unsigned char>> data;
    std::vector<PluginField> fields;
    bool ok{false};
};

SerializedFields serializeFields(IPluginV3* plugin)
{
    SerializedFields out;
    PluginFieldCollection const* fc = runtime(plugin)->getFieldsToSerialize();
    if (fc == nullptr || fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr))
    {
        return out;
    }
    out.names.reserve(fc->nbFields);
    out.data.reserve(fc->nbFields);
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        bool const fourBytes = f.type == PluginFieldType::kFLOAT32 || f.type == PluginFieldType::kINT32;
        std::size_t const elementSize = fourBytes ? 4 : (f.type == PluginFieldType::kCHAR ? 1 : 0);
        if (f.name == nullptr || f.data == nullptr || elementSize == 0 || f.length < 0)
        {
            return out;
        }
        out.names.emplace_back(f.name);
        auto const* bytes = static_cast<unsigned char const*>(f.data);
        out.data.emplace_back(bytes, bytes + elementSize * static_cast<std::size_t>(f.length));
    }
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        out.fields.emplace_back(out.names[i].c_str(), out.data[i].data(), f.type, f.length);
    }
    out.ok = true;
    return out;
}

// Parameters as the plugin reports them through its serialized fields (all five, each once).
bool readParams(IPluginV3* plugin, Params& out)
{
    SerializedFields s = serializeFields(plugin);
    if (!s.ok || s.fields.size() != 5)
    {
        return false;
    }
    int found = 0;
    for (PluginField const& f : s.fields)
    {
        bool const scalar = f.length == 1;
        if (std::strcmp(f.name, "e_lambda") == 0 && f.type == PluginFieldType::kFLOAT32 && scalar)
        {
            std::memcpy(&out.lambda, f.data, 4);
            found |= 1;
        }
        else if (std::strcmp(f.name, "unbiased") == 0 && f.type == PluginFieldType::kINT32 && scalar)
        {
            std::memcpy(&out.unbiased, f.data, 4);
            found |= 2;
        }
        else if (std::strcmp(f.name, "affine") == 0 && f.type == PluginFieldType::kINT32 && scalar)
        {
            std::memcpy(&out.affine, f.data, 4);
            found |= 4;
        }
        else if (std::strcmp(f.name, "residual") == 0 && f.type == PluginFieldType::kINT32 && scalar)
        {
            std::memcpy(&out.residual, f.data, 4);
            found |= 8;
        }
        else if (std::strcmp(f.name, "activation") == 0 && f.type == PluginFieldType::kCHAR)
        {
            out.activation.assign(static_cast<char const*>(f.data), static_cast<std::size_t>(f.length));
            found |= 16;
        }
    }
    return found == 31;
}

#else // TensorRT 8.x

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

IPluginCreator* theCreator()
{
    int32_t count = -1;
    IPluginCreator* const* list = gLibrary.getPluginCreators(count);
    return list != nullptr && count == 1 ? list[0] : nullptr;
}

struct PluginDeleter
{
    void operator()(IPluginV2DynamicExt* plugin) const
    {
        plugin->destroy();
    }
};
using PluginPtr = std::unique_ptr<IPluginV2DynamicExt, PluginDeleter>;

// TensorRT 8 checks the plugin's API generation before using it as IPluginV2DynamicExt.
PluginPtr asDynamic(IPluginV2* plugin)
{
    if (plugin == nullptr)
    {
        return PluginPtr();
    }
    int32_t const generation = plugin->getTensorRTVersion() >> 24;
    if (generation != static_cast<int32_t>(PluginVersion::kV2_DYNAMICEXT))
    {
        plugin->destroy();
        return PluginPtr();
    }
    return PluginPtr(static_cast<IPluginV2DynamicExt*>(plugin));
}

PluginPtr createPlugin(PluginFieldCollection const* fc)
{
    IPluginCreator* creator = theCreator();
    return asDynamic(creator != nullptr ? creator->createPlugin("simam_layer", fc) : nullptr);
}

std::vector<unsigned char> serializeBlob(IPluginV2DynamicExt* plugin)
{
    std::vector<unsigned char> blob(plugin->getSerializationSize());
    plugin->serialize(blob.data());
    return blob;
}

PluginPtr deserialize(void const* data, std::size_t length)
{
    IPluginCreator* creator = theCreator();
    return asDynamic(creator != nullptr ? creator->deserializePlugin("simam_layer", data, length) : nullptr);
}

// The serialized record is documented: "SIMA", format (1: 16 bytes, no epilogue; 2: 28 bytes),
// e_lambda f32, unbiased i32, then on format 2 affine, residual, activation (i32 each).
bool readParams(IPluginV2DynamicExt* plugin, Params& out)
{
    std::vector<unsigned char> blob = serializeBlob(plugin);
    if ((blob.size() != 16 && blob.size() != 28) || std::memcmp(blob.data(), "SIMA", 4) != 0)
    {
        return false;
    }
    uint32_t version = 0;
    std::memcpy(&version, blob.data() + 4, 4);
    if (version != (blob.size() == 16 ? 1U : 2U))
    {
        return false;
    }
    std::memcpy(&out.lambda, blob.data() + 8, 4);
    std::memcpy(&out.unbiased, blob.data() + 12, 4);
    out.affine = 0;
    out.residual = 0;
    int32_t activation = 0;
    if (blob.size() == 28)
    {
        std::memcpy(&out.affine, blob.data() + 16, 4);
        std::memcpy(&out.residual, blob.data() + 20, 4);
        std::memcpy(&activation, blob.data() + 24, 4);
    }
    char const* const names[] = {"none", "relu", "silu"};
    out.activation = activation >= 0 && activation < 3 ? names[activation] : "?";
    return true;
}

#endif

template <typename Plugin>
bool readParams(Plugin* plugin, float& lambda, int32_t& unbiased)
{
    Params p;
    if (!readParams(plugin, p))
    {
        return false;
    }
    lambda = p.lambda;
    unbiased = p.unbiased;
    return true;
}

// ---- group: load ------------------------------------------------------------------------------
int groupLoad()
{
    CHECK_MSG(gLibrary.info != nullptr, "simamTrtPluginInfo is exported");
    if (gLibrary.info != nullptr)
    {
        std::string const info = gLibrary.info();
        std::printf("  %s\n", info.c_str());
        CHECK_MSG(info.find("plugin=SimAM version=1") != std::string::npos, "info names SimAM v1: " + info);
        // No libnvinfer in this process: the load-time registration must have stood down.
        CHECK_MSG(info.find("registered_by=none") != std::string::npos, "no static registration without TensorRT");
        CHECK_MSG(info.find("registry_refused=no") != std::string::npos, "nothing refused without TensorRT");
    }
    auto creator = theCreator();
    CHECK_MSG(creator != nullptr, "exactly one creator of the expected interface kind");
    if (creator == nullptr)
    {
        return 1;
    }
    CHECK(std::strcmp(creator->getPluginName(), "SimAM") == 0);
    CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0);
    CHECK(std::strcmp(creator->getPluginNamespace(), "") == 0);

    // The ONNX parser builds its fields from this list: name, type and length must match the
    // SimAM node's attributes (FLOAT -> kFLOAT32 x1, INT -> kINT32 x1, STRING -> kCHAR): the parser
    // passes only the attributes named here.
    PluginFieldCollection const* names = creator->getFieldNames();
    CHECK(names != nullptr && names->nbFields == 5 && names->fields != nullptr);
    if (names != nullptr && names->nbFields == 5 && names->fields != nullptr)
    {
        CHECK(std::strcmp(names->fields[0].name, "e_lambda") == 0);
        CHECK(names->fields[0].type == PluginFieldType::kFLOAT32 && names->fields[0].length == 1);
        CHECK(std::strcmp(names->fields[1].name, "unbiased") == 0);
        CHECK(names->fields[1].type == PluginFieldType::kINT32 && names->fields[1].length == 1);
        CHECK(std::strcmp(names->fields[2].name, "affine") == 0);
        CHECK(names->fields[2].type == PluginFieldType::kINT32 && names->fields[2].length == 1);
        CHECK(std::strcmp(names->fields[3].name, "residual") == 0);
        CHECK(names->fields[3].type == PluginFieldType::kINT32 && names->fields[3].length == 1);
        CHECK(std::strcmp(names->fields[4].name, "activation") == 0);
        CHECK(names->fields[4].type == PluginFieldType::kCHAR);
    }

    // A namespace set on the library reaches the creator and every plugin created afterwards.
    CHECK(gLibrary.setNamespace != nullptr);
    if (gLibrary.setNamespace != nullptr)
    {
        CHECK(gLibrary.setNamespace("acme") == 1);
        CHECK(std::strcmp(creator->getPluginNamespace(), "acme") == 0);
        Fields fields = validFields();
        PluginFieldCollection fc = fields.collection();
        auto plugin = createPlugin(&fc);
        CHECK(plugin != nullptr);
#if NV_TENSORRT_MAJOR >= 10
        if (plugin != nullptr)
        {
            CHECK(std::strcmp(core(plugin.get())->getPluginNamespace(), "acme") == 0);
        }
#else
        if (plugin != nullptr)
        {
            CHECK(std::strcmp(plugin->getPluginNamespace(), "acme") == 0);
        }
#endif
        CHECK(gLibrary.setNamespace(nullptr) == 0);
        CHECK(gLibrary.setNamespace("") == 1);
        CHECK(std::strcmp(creator->getPluginNamespace(), "") == 0);
    }
    return 0;
}


// SIMAM_TRT_FORMATS set to something that is not a policy: building refuses, naming the variable and
// the values it takes; loading an engine (which has its formats already) still works.
bool unknownPolicy()
{
    char const* value = std::getenv("SIMAM_TRT_FORMATS");
    std::string const text = value != nullptr ? value : "";
    return !(text.empty() || text == "auto" || text == "linear" || text == "channel-last" || text == "all");
}

int lifecycleUnknownPolicy()
{
    Fields fields = validFields();
    PluginFieldCollection fc = fields.collection();
    gLogger.reset();
    CHECK_MSG(createPlugin(&fc) == nullptr, "building refuses an unknown SIMAM_TRT_FORMATS");
    CHECK_MSG(!kLogCaptured
            || (gLogger.allErrors().find("SIMAM_TRT_FORMATS") != std::string::npos
                && gLogger.allErrors().find("channel-last") != std::string::npos),
        "the error names the variable and its values: " + gLogger.allErrors());
#if NV_TENSORRT_MAJOR >= 10
    CHECK_MSG(createPlugin(&fc, TensorRTPhase::kRUNTIME) != nullptr, "an engine still loads");
#else
    unsigned char record[16];
    uint32_t const version = 1;
    std::memcpy(record, "SIMA", 4);
    std::memcpy(record + 4, &version, 4);
    std::memcpy(record + 8, &kLambda, 4);
    std::memcpy(record + 12, &kUnbiased, 4);
    CHECK_MSG(deserialize(record, sizeof record) != nullptr, "an engine still loads");
#endif
    return 0;
}

// ---- group: lifecycle ----------------------------------------------------------------------------
// The formats the plugin must offer for x, spelled out from the documented policy (docs/tensorrt.md):
// SIMAM_TRT_FORMATS=linear -> kLINEAR; channel-last -> kHWC (bf16: and kLINEAR); all -> kLINEAR, kHWC, kHWC8 (fp16, bf16),
// kHWC16 (fp16); auto or unset -> channel-last on TensorRT >= 11 headers, all below.
std::string formatsPolicy()
{
    char const* value = std::getenv("SIMAM_TRT_FORMATS");
    std::string policy = value != nullptr ? value : "";
    if (policy.empty() || policy == "auto")
    {
        policy = NV_TENSORRT_MAJOR >= 11 ? "channel-last" : "all";
    }
    return policy;
}

bool expectFormatIn(std::string const& policy, DataType type, TensorFormat format)
{
    if (!supportedType(type))
    {
        return false;
    }
    bool sixteenBit = type == DataType::kHALF;
#if NV_TENSORRT_MAJOR >= 9
    sixteenBit = sixteenBit || type == DataType::kBF16;
#endif
    if (policy == "linear")
    {
        return format == TensorFormat::kLINEAR;
    }
    if (policy == "channel-last")
    {
        // bf16 keeps kLINEAR too: TensorRT for RTX finds no tactic for a bf16 plugin with kHWC alone
        bool const bf16 = sixteenBit && type != DataType::kHALF;
        return format == TensorFormat::kHWC || (bf16 && format == TensorFormat::kLINEAR);
    }
    return format == TensorFormat::kLINEAR || format == TensorFormat::kHWC
        || (format == TensorFormat::kHWC8 && sixteenBit)
        || (format == TensorFormat::kHWC16 && type == DataType::kHALF);
}

bool expectFormat(DataType type, TensorFormat format)
{
    return expectFormatIn(formatsPolicy(), type, format);
}

// Every (type, format) pair TensorRT may propose, for input (pos 0) and output (pos 1).
template <typename Desc, typename Query>
void checkFormatMatrix(Query supports, std::function<PluginTensorDesc&(Desc&)> descOf)
{
    int accepted = 0;
    int expected = 0;
    for (int32_t t = 0; t < EnumMax<DataType>(); ++t)
    {
        for (int32_t f = 0; f < EnumMax<TensorFormat>(); ++f)
        {
            DataType const type = static_cast<DataType>(t);
            TensorFormat const format = static_cast<TensorFormat>(f);
            Desc inOut[2]{};
            descOf(inOut[0]) = tensorDesc(dims4(-1, 3, -1, -1), type, format);
            bool const expectIn = expectFormat(type, format);
            bool const gotIn = supports(0, inOut);
            CHECK_MSG(gotIn == expectIn,
                "input format combination type=" + std::to_string(t) + " format=" + std::to_string(f)
                    + " under policy " + formatsPolicy());
            accepted += gotIn ? 1 : 0;
            expected += expectIn ? 1 : 0;
            if (!expectIn)
            {
                continue;
            }
            for (int32_t ot = 0; ot < EnumMax<DataType>(); ++ot)
            {
                for (int32_t of = 0; of < EnumMax<TensorFormat>(); ++of)
                {
                    descOf(inOut[1]) = tensorDesc(dims4(-1, 3, -1, -1), static_cast<DataType>(ot),
                        static_cast<TensorFormat>(of));
                    bool const expectOut = ot == t && of == f;
                    CHECK_MSG(supports(1, inOut) == expectOut,
                        "output format combination in=" + std::to_string(t) + "/" + std::to_string(f)
                            + " out type=" + std::to_string(ot) + " format=" + std::to_string(of));
                }
            }
        }
    }
    CHECK_MSG(accepted == expected && accepted >= static_cast<int>(kernelTypes().size()),
        "every supported type has a format under policy " + formatsPolicy());
    CHECK(!supports(2, nullptr));
}

// x, scale, bias, residual, output of a plugin with affine=1 residual=1: scale and bias kLINEAR of x's
// type whatever x's format; the residual and the output x's type and format.
template <typename Desc, typename Query>
void checkEpilogueFormats(Query supports, std::function<PluginTensorDesc&(Desc&)> descOf)
{
    for (DataType type : kernelTypes())
    {
        for (int32_t f = 0; f < EnumMax<TensorFormat>(); ++f)
        {
            TensorFormat const format = static_cast<TensorFormat>(f);
            if (!expectFormat(type, format))
            {
                continue;
            }
            Desc io[5]{};
            descOf(io[0]) = tensorDesc(dims4(-1, 8, -1, -1), type, format);
            CHECK(supports(0, io));
            for (int32_t pos : {1, 2})
            {
                for (int32_t of = 0; of < EnumMax<TensorFormat>(); ++of)
                {
                    for (DataType other : kernelTypes())
                    {
                        Dims c{};
                        c.nbDims = 1;
                        c.d[0] = 8;
                        descOf(io[pos]) = tensorDesc(c, other, static_cast<TensorFormat>(of));
                        bool const expect = other == type && static_cast<TensorFormat>(of) == TensorFormat::kLINEAR;
                        CHECK_MSG(supports(pos, io) == expect,
                            "scale/bias position " + std::to_string(pos) + " format " + std::to_string(of)
                                + " for x format " + std::to_string(f));
                    }
                }
            }
            for (int32_t pos : {3, 4})
            {
                for (int32_t of = 0; of < EnumMax<TensorFormat>(); ++of)
                {
                    for (DataType other : kernelTypes())
                    {
                        descOf(io[pos]) = tensorDesc(dims4(-1, 8, -1, -1), other, static_cast<TensorFormat>(of));
                        bool const expect = other == type && of == f;
                        CHECK_MSG(supports(pos, io) == expect,
                            (pos == 3 ? "residual" : "output") + std::string(" format ") + std::to_string(of)
                                + " for x format " + std::to_string(f));
                    }
                }
            }
        }
    }
    CHECK(!supports(5, nullptr));
}

#if NV_TENSORRT_MAJOR >= 10

// The epilogue plugin (affine=1 residual=1 activation=relu): four inputs, their ranks, types, shapes
// and formats, and what survives serialization.
int lifecycleEpilogue(IPluginCreatorV3One* creator)
{
    Epilogue const e{1, 1, "relu"};
    Fields fields = epilogueFields(e);
    PluginFieldCollection fc = fields.collection();
    PluginPtr plugin(creator->createPlugin("simam_epilogue", &fc, TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    if (plugin == nullptr)
    {
        return 1;
    }
    IPluginV3OneBuild* b = build(plugin.get());
    for (DataType type : kernelTypes())
    {
        DataType types[4] = {type, type, type, type};
        DataType out = DataType::kINT8;
        CHECK(b->getOutputDataTypes(&out, 1, types, 4) == 0 && out == type);
        CHECK_MSG(b->getOutputDataTypes(&out, 1, types, 1) != 0, "one input where the node has four");
        types[2] = type == DataType::kFLOAT ? DataType::kHALF : DataType::kFLOAT;
        gLogger.reset();
        CHECK_MSG(b->getOutputDataTypes(&out, 1, types, 4) != 0 && errorLogged(), "bias of another type");
    }

    harness::ExprBuilder exprs;
    DimsExprs x{};
    x.nbDims = 4;
    x.d[0] = exprs.symbol("batch");
    x.d[1] = exprs.constant(64);
    x.d[2] = exprs.symbol("height");
    x.d[3] = exprs.symbol("width");
    DimsExprs c{};
    c.nbDims = 1;
    c.d[0] = exprs.constant(64);
    DimsExprs inputs[4] = {x, c, c, x};
    DimsExprs output{};
    CHECK(b->getOutputShapes(inputs, 4, nullptr, 0, &output, 1, exprs) == 0);
    CHECK(output.nbDims == 4 && output.d[0] == x.d[0] && output.d[2] == x.d[2] && output.d[3] == x.d[3]);
    CHECK_MSG(b->getOutputShapes(inputs, 3, nullptr, 0, &output, 1, exprs) != 0, "three inputs refused");
    DimsExprs scaleAsTensor[4] = {x, x, c, x};
    gLogger.reset();
    CHECK_MSG(b->getOutputShapes(scaleAsTensor, 4, nullptr, 0, &output, 1, exprs) != 0 && errorLogged(),
        "a rank-4 scale refused");

    checkEpilogueFormats<DynamicPluginTensorDesc>(
        [&](int32_t pos, DynamicPluginTensorDesc const* io) { return b->supportsFormatCombination(pos, io, 4, 1); },
        [](DynamicPluginTensorDesc& d) -> PluginTensorDesc& { return d.desc; });
    DynamicPluginTensorDesc one[2]{};
    one[0].desc = tensorDesc(dims4(-1, 8, -1, -1), DataType::kFLOAT, TensorFormat::kLINEAR);
    CHECK_MSG(!b->supportsFormatCombination(0, one, 1, 1), "a format query with the wrong input count");

    Dims const declared = dims4(-1, 64, -1, -1);
    Dims const maxDims = dims4(16, 64, 256, 256);
    Dims channels{};
    channels.nbDims = 1;
    channels.d[0] = 64;
    for (DataType type : kernelTypes())
    {
        DynamicPluginTensorDesc xd = dynamicDesc(declared, type, dims4(1, 64, 8, 8), dims4(8, 64, 32, 32), maxDims);
        DynamicPluginTensorDesc cd = dynamicDesc(channels, type, channels, channels, channels);
        DynamicPluginTensorDesc in[4] = {xd, cd, cd, xd};
        CHECK(b->configurePlugin(in, 4, &xd, 1) == 0);
        CHECK_MSG(b->getWorkspaceSize(in, 4, &xd, 1) == simam_cuda_workspace_size(16, 64, 256, 256, SIMAM_FLOAT32),
            "the epilogue does not change the linear workspace");
        CHECK_MSG(b->configurePlugin(in, 3, &xd, 1) != 0, "configure with three inputs");
        DynamicPluginTensorDesc shortScale = cd;
        shortScale.desc.dims.d[0] = 32;
        DynamicPluginTensorDesc badScale[4] = {xd, shortScale, cd, xd};
        gLogger.reset();
        CHECK_MSG(b->configurePlugin(badScale, 4, &xd, 1) != 0 && errorLogged(), "scale of 32 for 64 channels");
        DynamicPluginTensorDesc otherResidual = xd;
        otherResidual.desc.dims = dims4(-1, 32, -1, -1);
        DynamicPluginTensorDesc badResidual[4] = {xd, cd, cd, otherResidual};
        gLogger.reset();
        CHECK_MSG(b->configurePlugin(badResidual, 4, &xd, 1) != 0 && errorLogged(), "residual of another shape");
    }

    SerializedFields stored = serializeFields(plugin.get());
    PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
    plugin.reset();
    PluginPtr loaded(creator->createPlugin("simam_epilogue", &storedFc, TensorRTPhase::kRUNTIME));
    Params p;
    CHECK(loaded != nullptr && readParams(loaded.get(), p));
    CHECK(p.affine == 1 && p.residual == 1 && p.activation == "relu" && p.lambda == kLambda);
    if (loaded == nullptr)
    {
        return 1;
    }
    IPluginV3OneRuntime* run = runtime(loaded.get());
    PluginTensorDesc xs = tensorDesc(dims4(4, 64, 32, 32), DataType::kHALF, TensorFormat::kHWC);
    PluginTensorDesc cs = tensorDesc(channels, DataType::kHALF);
    PluginTensorDesc ins[4] = {xs, cs, cs, xs};
    CHECK(run->onShapeChange(ins, 4, &xs, 1) == 0);
    CHECK(run->onShapeChange(ins, 1, &xs, 1) != 0);
    ins[3].dims = dims4(4, 64, 16, 32);
    CHECK_MSG(run->onShapeChange(ins, 4, &xs, 1) != 0, "residual of another shape at run time");
    return 0;
}

int groupLifecycle()
{
    if (unknownPolicy())
    {
        return lifecycleUnknownPolicy();
    }
    IPluginCreatorV3One* creator = theCreator();
    CHECK(creator != nullptr);
    if (creator == nullptr)
    {
        return 1;
    }
    float const lambda = 0.25F;
    int32_t const unbiased = 0;
    Fields fields = validFields(&lambda, &unbiased);
    PluginFieldCollection fc = fields.collection();
    PluginPtr plugin(creator->createPlugin("simam_layer", &fc, TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    if (plugin == nullptr)
    {
        return 1;
    }
    CHECK(std::strcmp(plugin->getInterfaceInfo().kind, "PLUGIN") == 0);

    // Capability interfaces, with the kinds TensorRT checks.
    IPluginV3OneCore* coreCap = core(plugin.get());
    IPluginV3OneBuild* buildCap = build(plugin.get());
    IPluginV3OneRuntime* runtimeCap = runtime(plugin.get());
    CHECK(coreCap != nullptr && buildCap != nullptr && runtimeCap != nullptr);
    CHECK(std::strcmp(coreCap->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0);
    CHECK(std::strcmp(buildCap->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
    CHECK(std::strcmp(runtimeCap->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0);
    CHECK(std::strcmp(coreCap->getPluginName(), "SimAM") == 0);
    CHECK(std::strcmp(coreCap->getPluginVersion(), "1") == 0);
    CHECK(plugin->getCapabilityInterface(static_cast<PluginCapabilityType>(7)) == nullptr);

    // clone: an independent copy with the same parameters, which outlives the original.
    PluginPtr copy(plugin->clone());
    CHECK(copy != nullptr && copy.get() != plugin.get());
    float gotLambda = 0.0F;
    int32_t gotUnbiased = -1;
    CHECK(copy != nullptr && readParams(copy.get(), gotLambda, gotUnbiased));
    CHECK(gotLambda == lambda && gotUnbiased == unbiased);
    plugin.reset();
    plugin = std::move(copy);
    buildCap = build(plugin.get());
    runtimeCap = runtime(plugin.get());

    // Output count, types and symbolic shapes.
    CHECK(buildCap->getNbOutputs() == 1);
    for (DataType type : kernelTypes())
    {
        DataType out = DataType::kINT8;
        CHECK(buildCap->getOutputDataTypes(&out, 1, &type, 1) == 0 && out == type);
    }
    DataType intType = DataType::kINT32;
    DataType out = DataType::kFLOAT;
    CHECK(buildCap->getOutputDataTypes(&out, 1, &intType, 1) != 0);
    CHECK(buildCap->getOutputDataTypes(&out, 2, &intType, 1) != 0);

    harness::ExprBuilder exprs;
    DimsExprs input{};
    input.nbDims = 4;
    input.d[0] = exprs.symbol("batch");
    input.d[1] = exprs.constant(64);
    input.d[2] = exprs.symbol("height");
    input.d[3] = exprs.symbol("width");
    DimsExprs output{};
    CHECK(buildCap->getOutputShapes(&input, 1, nullptr, 0, &output, 1, exprs) == 0);
    CHECK(output.nbDims == 4);
    for (int i = 0; i < 4; ++i)
    {
        CHECK_MSG(output.d[i] == input.d[i], "output dim " + std::to_string(i) + " is the input's expression");
    }
    CHECK(output.d[1]->isConstant() && output.d[1]->getConstantValue() == 64);
    DimsExprs rank3 = input;
    rank3.nbDims = 3;
    CHECK(buildCap->getOutputShapes(&rank3, 1, nullptr, 0, &output, 1, exprs) != 0);
    CHECK(buildCap->getOutputShapes(&input, 1, nullptr, 0, &output, 2, exprs) != 0);

    // supportsFormatCombination over every type/format pair.
    checkFormatMatrix<DynamicPluginTensorDesc>(
        [&](int32_t pos, DynamicPluginTensorDesc const* io) {
            return buildCap->supportsFormatCombination(pos, io, 1, 1);
        },
        [](DynamicPluginTensorDesc& d) -> PluginTensorDesc& { return d.desc; });

    // configurePlugin with a dynamic profile, then the workspace for its largest shape.
    Dims const declared = dims4(-1, 64, -1, -1);
    Dims const minDims = dims4(1, 64, 8, 8);
    Dims const optDims = dims4(8, 64, 32, 32);
    Dims const maxDims = dims4(16, 64, 256, 256);
    for (DataType type : kernelTypes())
    {
        DynamicPluginTensorDesc in = dynamicDesc(declared, type, minDims, optDims, maxDims);
        DynamicPluginTensorDesc outDesc = in;
        CHECK(buildCap->configurePlugin(&in, 1, &outDesc, 1) == 0);
        size_t const workspace = buildCap->getWorkspaceSize(&in, 1, &outDesc, 1);
        CHECK_MSG(workspace == simam_cuda_workspace_size(16, 64, 256, 256, SIMAM_FLOAT32),
            "workspace covers the profile's largest shape");
        DynamicPluginTensorDesc small = dynamicDesc(declared, type, minDims, minDims, dims4(2, 64, 16, 16));
        CHECK_MSG(buildCap->getWorkspaceSize(&small, 1, &small, 1) == 0, "small planes need no workspace");
    }
    DynamicPluginTensorDesc badIn = dynamicDesc(dims4(-1, 64, -1, -1), DataType::kINT32, minDims, optDims, maxDims);
    CHECK(buildCap->configurePlugin(&badIn, 1, &badIn, 1) != 0);

    // Serialize -> runtime-phase createPlugin -> attach -> onShapeChange, as engine loading does.
    SerializedFields stored = serializeFields(plugin.get());
    CHECK(stored.ok && stored.fields.size() == 5);
    PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
    PluginPtr loaded(creator->createPlugin("simam_layer", &storedFc, TensorRTPhase::kRUNTIME));
    CHECK(loaded != nullptr);
    if (loaded == nullptr)
    {
        return 1;
    }
    CHECK(readParams(loaded.get(), gotLambda, gotUnbiased) && gotLambda == lambda && gotUnbiased == unbiased);
    PluginPtr attached(runtime(loaded.get())->attachToContext(nullptr));
    CHECK(attached != nullptr && attached.get() != loaded.get());
    loaded.reset(); // the context's copy must not depend on the original
    if (attached == nullptr)
    {
        return 1;
    }
    IPluginV3OneRuntime* run = runtime(attached.get());
    for (DataType type : kernelTypes())
    {
        PluginTensorDesc in = tensorDesc(dims4(4, 64, 32, 32), type);
        CHECK(run->onShapeChange(&in, 1, &in, 1) == 0);
    }
    PluginTensorDesc rank2 = tensorDesc(dims4(4, 64, 32, 32), DataType::kFLOAT);
    rank2.dims.nbDims = 2;
    CHECK(run->onShapeChange(&rank2, 1, &rank2, 1) != 0);
    CHECK(run->enqueue(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) != 0);
    return lifecycleEpilogue(creator);
}

#else

// The epilogue plugin on 8.x: four inputs, their ranks, types and formats, the V2 record.
int lifecycleEpilogue()
{
    Epilogue const e{1, 1, "silu"};
    Fields fields = epilogueFields(e);
    PluginFieldCollection fc = fields.collection();
    PluginPtr plugin = createPlugin(&fc);
    CHECK(plugin != nullptr);
    if (plugin == nullptr)
    {
        return 1;
    }
    for (DataType type : kernelTypes())
    {
        DataType types[4] = {type, type, type, type};
        CHECK(plugin->getOutputDataType(0, types, 4) == type);
    }
    harness::ExprBuilder exprs;
    DimsExprs x{};
    x.nbDims = 4;
    x.d[0] = exprs.symbol("batch");
    x.d[1] = exprs.constant(64);
    x.d[2] = exprs.symbol("height");
    x.d[3] = exprs.symbol("width");
    DimsExprs c{};
    c.nbDims = 1;
    c.d[0] = exprs.constant(64);
    DimsExprs inputs[4] = {x, c, c, x};
    DimsExprs output = plugin->getOutputDimensions(0, inputs, 4, exprs);
    CHECK(output.nbDims == 4 && output.d[0] == x.d[0]);
    CHECK(plugin->getOutputDimensions(0, inputs, 2, exprs).nbDims != 4);
    checkEpilogueFormats<PluginTensorDesc>(
        [&](int32_t pos, PluginTensorDesc const* io) { return plugin->supportsFormatCombination(pos, io, 4, 1); },
        [](PluginTensorDesc& d) -> PluginTensorDesc& { return d; });
    Dims channels{};
    channels.nbDims = 1;
    channels.d[0] = 64;
    Dims const maxDims = dims4(16, 64, 256, 256);
    DynamicPluginTensorDesc xd = dynamicDesc(dims4(-1, 64, -1, -1), DataType::kHALF, maxDims, maxDims, maxDims);
    DynamicPluginTensorDesc cd = dynamicDesc(channels, DataType::kHALF, channels, channels, channels);
    DynamicPluginTensorDesc in[4] = {xd, cd, cd, xd};
    // configurePlugin returns nothing on 8.x: acceptance is silence, refusal a logged error.
    gLogger.reset();
    plugin->configurePlugin(in, 4, &xd, 1);
    CHECK_MSG(gLogger.errorCount() == 0, "four matching inputs configure: " + gLogger.allErrors());
    gLogger.reset();
    plugin->configurePlugin(in, 2, &xd, 1);
    CHECK_MSG(errorLogged(), "two inputs where the node has four");
    DynamicPluginTensorDesc shortScale = cd;
    shortScale.desc.dims.d[0] = 32;
    DynamicPluginTensorDesc badScale[4] = {xd, shortScale, cd, xd};
    gLogger.reset();
    plugin->configurePlugin(badScale, 4, &xd, 1);
    CHECK_MSG(errorLogged(), "scale of 32 for 64 channels");
    std::vector<unsigned char> blob = serializeBlob(plugin.get());
    CHECK_MSG(blob.size() == 28, "an epilogue plugin writes the 28-byte format 2 record");
    plugin.reset();
    PluginPtr restored = deserialize(blob.data(), blob.size());
    Params p;
    CHECK(restored != nullptr && readParams(restored.get(), p));
    CHECK(p.affine == 1 && p.residual == 1 && p.activation == "silu");
    return 0;
}

int groupLifecycle()
{
    if (unknownPolicy())
    {
        return lifecycleUnknownPolicy();
    }
    float const lambda = 0.25F;
    int32_t const unbiased = 0;
    Fields fields = validFields(&lambda, &unbiased);
    PluginFieldCollection fc = fields.collection();
    PluginPtr plugin = createPlugin(&fc);
    CHECK(plugin != nullptr);
    if (plugin == nullptr)
    {
        return 1;
    }
    CHECK(std::strcmp(plugin->getPluginType(), "SimAM") == 0);
    CHECK(std::strcmp(plugin->getPluginVersion(), "1") == 0);
    plugin->setPluginNamespace("ns");
    CHECK(std::strcmp(plugin->getPluginNamespace(), "ns") == 0);

    PluginPtr copy(plugin->clone());
    CHECK(copy != nullptr && copy.get() != plugin.get());
    plugin.reset();
    if (copy == nullptr)
    {
        return 1;
    }
    plugin = std::move(copy);
    CHECK(std::strcmp(plugin->getPluginNamespace(), "ns") == 0);
    float gotLambda = 0.0F;
    int32_t gotUnbiased = -1;
    CHECK(readParams(plugin.get(), gotLambda, gotUnbiased) && gotLambda == lambda && gotUnbiased == unbiased);

    CHECK(plugin->getNbOutputs() == 1);
    for (DataType type : kernelTypes())
    {
        CHECK(plugin->getOutputDataType(0, &type, 1) == type);
    }

    harness::ExprBuilder exprs;
    DimsExprs input{};
    input.nbDims = 4;
    input.d[0] = exprs.symbol("batch");
    input.d[1] = exprs.constant(64);
    input.d[2] = exprs.symbol("height");
    input.d[3] = exprs.symbol("width");
    DimsExprs output = plugin->getOutputDimensions(0, &input, 1, exprs);
    CHECK(output.nbDims == 4);
    for (int i = 0; i < 4 && output.nbDims == 4; ++i)
    {
        CHECK_MSG(output.d[i] == input.d[i], "output dim " + std::to_string(i) + " is the input's expression");
    }
    DimsExprs rank3 = input;
    rank3.nbDims = 3;
    CHECK(plugin->getOutputDimensions(0, &rank3, 1, exprs).nbDims != 4);

    checkFormatMatrix<PluginTensorDesc>(
        [&](int32_t pos, PluginTensorDesc const* io) { return plugin->supportsFormatCombination(pos, io, 1, 1); },
        [](PluginTensorDesc& d) -> PluginTensorDesc& { return d; });

    Dims const declared = dims4(-1, 64, -1, -1);
    Dims const maxDims = dims4(16, 64, 256, 256);
    for (DataType type : kernelTypes())
    {
        DynamicPluginTensorDesc in = dynamicDesc(declared, type, dims4(1, 64, 8, 8), dims4(8, 64, 32, 32), maxDims);
        plugin->configurePlugin(&in, 1, &in, 1);
        PluginTensorDesc largest = tensorDesc(maxDims, type);
        CHECK(plugin->getWorkspaceSize(&largest, 1, &largest, 1)
            == simam_cuda_workspace_size(16, 64, 256, 256, SIMAM_FLOAT32));
    }
    gLogger.reset();
    DynamicPluginTensorDesc bad = dynamicDesc(declared, DataType::kINT8, maxDims, maxDims, maxDims);
    plugin->configurePlugin(&bad, 1, &bad, 1);
    CHECK_MSG(errorLogged(), "configurePlugin with int8 logs an error");
    CHECK(plugin->initialize() == 0);
    plugin->terminate();
    CHECK(plugin->enqueue(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) != 0);
    return lifecycleEpilogue();
}

#endif

// ---- group: fields -----------------------------------------------------------------------------
// Creates a plugin from `fields`; reports whether one came back and how many errors were logged.
bool creates(Fields const& fields, int& errorsLogged)
{
    PluginFieldCollection fc = fields.collection();
    gLogger.reset();
    auto plugin = createPlugin(&fc);
    errorsLogged = gLogger.errorCount();
    return plugin != nullptr;
}

void expectRejected(std::string const& label, Fields const& fields)
{
    int errors = 0;
    bool const created = creates(fields, errors);
    CHECK_MSG(!created, label + ": plugin must not be created");
    CHECK_MSG(!kLogCaptured || errors > 0, label + ": an error must be logged through the logger");
}

int groupFields()
{
    float const nan = std::numeric_limits<float>::quiet_NaN();
    float const inf = std::numeric_limits<float>::infinity();
    float const ninf = -inf;
    float const negative = -1e-4F;
    float const zero = 0.0F;
    float const twoLambdas[2] = {1e-4F, 1e-3F};
    double const lambda64 = 1e-4;
    int32_t const two = 2;
    int32_t const minusOne = -1;
    int32_t const twoFlags[2] = {1, 1};
    float const unbiasedAsFloat = 1.0F;
    int32_t const zeroFlag = 0;

    // Collection-level damage.
    {
        gLogger.reset();
        CHECK_MSG(createPlugin(nullptr) == nullptr, "null collection rejected");
        CHECK(errorLogged());
        Fields valid = validFields();
        PluginFieldCollection negative{-1, valid.list.data()};
        gLogger.reset();
        CHECK_MSG(createPlugin(&negative) == nullptr && errorLogged(), "negative nbFields rejected");
        // Claims far more fields than exist: must be refused without walking the array.
        PluginFieldCollection huge{1 << 30, valid.list.data()};
        gLogger.reset();
        CHECK_MSG(createPlugin(&huge) == nullptr && errorLogged(), "absurd nbFields rejected");
        PluginFieldCollection noArray{2, nullptr};
        gLogger.reset();
        CHECK_MSG(createPlugin(&noArray) == nullptr && errorLogged(), "null field array rejected");
    }

    auto lambdaField = [](void const* data, PluginFieldType type, int32_t length) {
        return PluginField("e_lambda", data, type, length);
    };
    auto unbiasedField = [](void const* data, PluginFieldType type, int32_t length) {
        return PluginField("unbiased", data, type, length);
    };
    PluginField const goodUnbiased = unbiasedField(&kUnbiased, PluginFieldType::kINT32, 1);
    PluginField const goodLambda = lambdaField(&kLambda, PluginFieldType::kFLOAT32, 1);

    expectRejected("e_lambda missing", Fields{{goodUnbiased}});
    expectRejected(
        "e_lambda as kFLOAT64", Fields{{lambdaField(&lambda64, PluginFieldType::kFLOAT64, 1), goodUnbiased}});
    expectRejected("e_lambda as kINT32", Fields{{lambdaField(&two, PluginFieldType::kINT32, 1), goodUnbiased}});
    expectRejected("e_lambda as kFLOAT16", Fields{{lambdaField(&kLambda, PluginFieldType::kFLOAT16, 1), goodUnbiased}});
    expectRejected("e_lambda length 0", Fields{{lambdaField(&kLambda, PluginFieldType::kFLOAT32, 0), goodUnbiased}});
    expectRejected("e_lambda length 2", Fields{{lambdaField(twoLambdas, PluginFieldType::kFLOAT32, 2), goodUnbiased}});
    expectRejected("e_lambda null data", Fields{{lambdaField(nullptr, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    // Type names come from the enum's value, so types newer than these headers (kINT64 = 10, kFP4 = 13)
    // and values no release has are named too (never "another type").
    struct NamedType
    {
        int32_t value;
        char const* name;
    };
    int64_t const lambdaAs64 = 1;
    for (NamedType const& named : {NamedType{10, "kINT64"}, NamedType{13, "kFP4"}, NamedType{9, "kBF16"},
             NamedType{99, "unknown PluginFieldType (value 99)"}})
    {
        int errors = 0;
        auto const type = static_cast<PluginFieldType>(named.value);
        CHECK_MSG(!creates(Fields{{lambdaField(&lambdaAs64, type, 1), goodUnbiased}}, errors),
            std::string("e_lambda as ") + named.name + " rejected");
        CHECK_MSG(!kLogCaptured || gLogger.allErrors().find(named.name) != std::string::npos,
            std::string("message names ") + named.name + ": " + gLogger.allErrors());
    }
    expectRejected("e_lambda NaN", Fields{{lambdaField(&nan, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    expectRejected("e_lambda +inf", Fields{{lambdaField(&inf, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    expectRejected("e_lambda -inf", Fields{{lambdaField(&ninf, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    expectRejected("e_lambda negative", Fields{{lambdaField(&negative, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    expectRejected("e_lambda zero", Fields{{lambdaField(&zero, PluginFieldType::kFLOAT32, 1), goodUnbiased}});
    expectRejected("e_lambda twice", Fields{{goodLambda, goodLambda, goodUnbiased}});
    expectRejected("unbiased as kFLOAT32",
        Fields{{goodLambda, unbiasedField(&unbiasedAsFloat, PluginFieldType::kFLOAT32, 1)}});
    expectRejected("unbiased length 2", Fields{{goodLambda, unbiasedField(twoFlags, PluginFieldType::kINT32, 2)}});
    expectRejected("unbiased null data", Fields{{goodLambda, unbiasedField(nullptr, PluginFieldType::kINT32, 1)}});
    expectRejected("unbiased = 2", Fields{{goodLambda, unbiasedField(&two, PluginFieldType::kINT32, 1)}});
    expectRejected("unbiased = -1", Fields{{goodLambda, unbiasedField(&minusOne, PluginFieldType::kINT32, 1)}});
    expectRejected("unbiased twice", Fields{{goodLambda, goodUnbiased, goodUnbiased}});
    expectRejected("field without a name",
        Fields{{goodLambda, PluginField(nullptr, &kUnbiased, PluginFieldType::kINT32, 1)}});
    // A name that never ends within the bound the plugin reads (no terminator in 300 bytes
    // would be read past if the plugin used strlen on it; the buffer itself is terminated).
    std::string longName(300, 'x');
    expectRejected("over-long field name",
        Fields{{goodLambda, PluginField(longName.c_str(), &kUnbiased, PluginFieldType::kINT32, 1)}});

    // Tolerated on purpose, each documented: unbiased missing -> 1; unknown fields ignored.
    int errors = 0;
    Fields lambdaOnly{{goodLambda}};
    CHECK_MSG(creates(lambdaOnly, errors) && errors == 0, "unbiased may be omitted (defaults to 1)");
    {
        PluginFieldCollection fc = lambdaOnly.collection();
        auto plugin = createPlugin(&fc);
        float l = 0.0F;
        int32_t u = -1;
        CHECK(plugin != nullptr && readParams(plugin.get(), l, u) && u == 1 && l == kLambda);
    }
    char const version[] = "1";
    PluginField const extra("plugin_version", version, PluginFieldType::kCHAR, 2);
    CHECK_MSG(creates(Fields{{goodLambda, goodUnbiased, extra}},
                  errors) && errors == 0,
        "unknown fields are ignored");
    Fields biased{{goodLambda, unbiasedField(&zeroFlag, PluginFieldType::kINT32, 1)}};
    CHECK_MSG(creates(biased, errors), "unbiased = 0 accepted");

    // The epilogue fields: every valid combination creates a plugin that reports it back.
    for (int32_t affine : {0, 1})
    {
        for (int32_t residual : {0, 1})
        {
            for (char const* activation : {"none", "relu", "silu"})
            {
                Epilogue const e{affine, residual, activation};
                Fields f = epilogueFields(e);
                PluginFieldCollection fc = f.collection();
                auto plugin = createPlugin(&fc);
                Params p;
                CHECK_MSG(plugin != nullptr && readParams(plugin.get(), p) && p.affine == affine
                        && p.residual == residual && p.activation == activation,
                    std::string("epilogue affine=") + std::to_string(affine) + " residual=" + std::to_string(residual)
                        + " activation=" + activation);
            }
        }
    }
    // A terminator counted in the length (some writers do) is tolerated.
    {
        char const withNul[] = "silu";
        Fields f{{goodLambda, PluginField("activation", withNul, PluginFieldType::kCHAR, 5)}};
        PluginFieldCollection fc = f.collection();
        auto plugin = createPlugin(&fc);
        Params p;
        CHECK_MSG(plugin != nullptr && readParams(plugin.get(), p) && p.activation == "silu",
            "activation with its terminator counted");
    }
    int32_t const affineOne = 1;
    int32_t const twoInts[2] = {1, 1};
    int64_t const affine64 = 1;
    PluginField const goodAffine("affine", &affineOne, PluginFieldType::kINT32, 1);
    PluginField const goodResidual("residual", &affineOne, PluginFieldType::kINT32, 1);
    char const relu[] = {'r', 'e', 'l', 'u'}; // unterminated, as the ONNX parser passes it
    char const gelu[] = {'g', 'e', 'l', 'u'};
    char const reluPrefix[] = {'r', 'e', 'l'};
    char const reluX[] = {'r', 'e', 'l', 'u', 'x'};
    char const upper[] = {'R', 'E', 'L', 'U'};
    char const binary[] = {'\x01', '\xff', 'u'};
    std::string const longActivation(40, 'r');
    auto activationField = [](void const* data, PluginFieldType type, int32_t length) {
        return PluginField("activation", data, type, length);
    };
    expectRejected("affine = 2", Fields{{goodLambda, PluginField("affine", &two, PluginFieldType::kINT32, 1)}});
    expectRejected("affine = -1", Fields{{goodLambda, PluginField("affine", &minusOne, PluginFieldType::kINT32, 1)}});
    expectRejected(
        "affine as kFLOAT32", Fields{{goodLambda, PluginField("affine", &unbiasedAsFloat, PluginFieldType::kFLOAT32, 1)}});
    expectRejected("affine as kINT64",
        Fields{{goodLambda, PluginField("affine", &affine64, static_cast<PluginFieldType>(10), 1)}});
    expectRejected("affine length 2", Fields{{goodLambda, PluginField("affine", twoInts, PluginFieldType::kINT32, 2)}});
    expectRejected("affine null data", Fields{{goodLambda, PluginField("affine", nullptr, PluginFieldType::kINT32, 1)}});
    expectRejected("affine twice", Fields{{goodLambda, goodAffine, goodAffine}});
    expectRejected("residual = 2", Fields{{goodLambda, PluginField("residual", &two, PluginFieldType::kINT32, 1)}});
    expectRejected("residual length 0",
        Fields{{goodLambda, PluginField("residual", &affineOne, PluginFieldType::kINT32, 0)}});
    expectRejected("residual twice", Fields{{goodLambda, goodResidual, goodResidual}});
    expectRejected("activation gelu", Fields{{goodLambda, activationField(gelu, PluginFieldType::kCHAR, 4)}});
    expectRejected("activation 'rel'", Fields{{goodLambda, activationField(reluPrefix, PluginFieldType::kCHAR, 3)}});
    expectRejected("activation 'relux'", Fields{{goodLambda, activationField(reluX, PluginFieldType::kCHAR, 5)}});
    expectRejected("activation 'RELU'", Fields{{goodLambda, activationField(upper, PluginFieldType::kCHAR, 4)}});
    expectRejected("activation binary", Fields{{goodLambda, activationField(binary, PluginFieldType::kCHAR, 3)}});
    expectRejected("activation empty", Fields{{goodLambda, activationField(relu, PluginFieldType::kCHAR, 0)}});
    expectRejected("activation negative length", Fields{{goodLambda, activationField(relu, PluginFieldType::kCHAR, -4)}});
    expectRejected("activation over-long",
        Fields{{goodLambda, activationField(longActivation.data(), PluginFieldType::kCHAR, 40)}});
    expectRejected("activation null data", Fields{{goodLambda, activationField(nullptr, PluginFieldType::kCHAR, 4)}});
    expectRejected("activation as kINT32", Fields{{goodLambda, activationField(&affineOne, PluginFieldType::kINT32, 1)}});
    expectRejected("activation twice", Fields{{goodLambda, activationField(relu, PluginFieldType::kCHAR, 4),
                                           activationField(relu, PluginFieldType::kCHAR, 4)}});
    {
        int errors = 0;
        CHECK_MSG(!creates(Fields{{goodLambda, activationField(gelu, PluginFieldType::kCHAR, 4)}}, errors)
                && (!kLogCaptured || gLogger.allErrors().find("'gelu'") != std::string::npos),
            "the message quotes the unknown activation: " + gLogger.allErrors());
    }
    return 0;
}

// ---- group: serialization --------------------------------------------------------------------------
int groupSerialization()
{
    float const lambdas[] = {1e-4F, 1e-6F, 0.5F, 3.0e3F};
    for (float lambda : lambdas)
    {
        for (int32_t unbiased : {0, 1})
        {
            Fields fields = validFields(&lambda, &unbiased);
            PluginFieldCollection fc = fields.collection();
            auto plugin = createPlugin(&fc);
            CHECK(plugin != nullptr);
            if (plugin == nullptr)
            {
                continue;
            }
#if NV_TENSORRT_MAJOR >= 10
            SerializedFields stored = serializeFields(plugin.get());
            CHECK(stored.ok);
            plugin.reset(); // the stored copy must not point into the destroyed plugin
            PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
            auto restored = createPlugin(&storedFc, TensorRTPhase::kRUNTIME);
#else
            std::vector<unsigned char> blob = serializeBlob(plugin.get());
            CHECK(blob.size() == 16);
            plugin.reset();
            auto restored = deserialize(blob.data(), blob.size());
#endif
            float l = 0.0F;
            int32_t u = -1;
            CHECK_MSG(restored != nullptr && readParams(restored.get(), l, u) && l == lambda && u == unbiased,
                "round trip keeps e_lambda=" + std::to_string(lambda) + " unbiased=" + std::to_string(unbiased));
        }
    }
    // Every epilogue survives the round trip.
    for (int32_t affine : {0, 1})
    {
        for (int32_t residual : {0, 1})
        {
            for (char const* activation : {"none", "relu", "silu"})
            {
                Epilogue const e{affine, residual, activation};
                Fields f = epilogueFields(e);
                PluginFieldCollection fc = f.collection();
                auto plugin = createPlugin(&fc);
                CHECK(plugin != nullptr);
                if (plugin == nullptr)
                {
                    continue;
                }
#if NV_TENSORRT_MAJOR >= 10
                SerializedFields stored = serializeFields(plugin.get());
                plugin.reset();
                PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
                auto restored = createPlugin(&storedFc, TensorRTPhase::kRUNTIME);
#else
                std::vector<unsigned char> blob = serializeBlob(plugin.get());
                bool const plain = affine == 0 && residual == 0 && std::strcmp(activation, "none") == 0;
                CHECK_MSG(blob.size() == (plain ? 16U : 28U), "format 1 without an epilogue, 2 with one");
                plugin.reset();
                auto restored = deserialize(blob.data(), blob.size());
#endif
                Params p;
                CHECK_MSG(restored != nullptr && readParams(restored.get(), p) && p.affine == affine
                        && p.residual == residual && p.activation == activation && p.lambda == kLambda,
                    std::string("round trip keeps affine=") + std::to_string(affine) + " residual="
                        + std::to_string(residual) + " activation=" + activation);
            }
        }
    }
#if NV_TENSORRT_MAJOR >= 10
    // Engines built before the epilogue stored only e_lambda and unbiased: they load as plain SimAM.
    {
        float const lambda = 0.1F;
        int32_t const unbiased = 0;
        Fields old = validFields(&lambda, &unbiased);
        PluginFieldCollection fc = old.collection();
        auto restored = createPlugin(&fc, TensorRTPhase::kRUNTIME);
        Params p;
        CHECK_MSG(restored != nullptr && readParams(restored.get(), p) && p.lambda == lambda && p.unbiased == 0
                && p.affine == 0 && p.residual == 0 && p.activation == "none",
            "fields of an engine built before the epilogue");
    }
#endif
#if NV_TENSORRT_MAJOR < 10
    // The record of an engine built before the epilogue (format 1, as that library wrote it, byte for
    // byte: "SIMA", 1, e_lambda = 0.1f, unbiased = 0) loads as plain SimAM.
    {
        unsigned char const before[16] = {0x53, 0x49, 0x4D, 0x41, 0x01, 0x00, 0x00, 0x00, 0xCD, 0xCC, 0xCC, 0x3D,
            0x00, 0x00, 0x00, 0x00};
        auto restored = deserialize(before, sizeof before);
        Params p;
        CHECK_MSG(restored != nullptr && readParams(restored.get(), p) && p.lambda == 0.1F && p.unbiased == 0
                && p.affine == 0 && p.residual == 0 && p.activation == "none",
            "a format 1 record written before the epilogue");
        CHECK_MSG(restored != nullptr && serializeBlob(restored.get()) == std::vector<unsigned char>(before, before + 16),
            "and it serializes back to the same bytes");
    }
    {
        Epilogue const e{1, 0, "relu"}; // the fields point into it: it must outlive them
        Fields f = epilogueFields(e);
        PluginFieldCollection fc = f.collection();
        auto plugin = createPlugin(&fc);
        std::vector<unsigned char> v2 = serializeBlob(plugin.get());
        auto rejects = [&](std::string const& label, std::vector<unsigned char> const& bytes) {
            gLogger.reset();
            CHECK_MSG(deserialize(bytes.data(), bytes.size()) == nullptr, label + ": must be refused");
            CHECK_MSG(errorLogged(), label + ": must log an error");
        };
        std::vector<unsigned char> bad = v2;
        bad[4] = 1; // format 1 in a 28-byte record
        rejects("format 1 in 28 bytes", bad);
        bad = v2;
        int32_t const two = 2;
        std::memcpy(bad.data() + 16, &two, 4);
        rejects("affine = 2", bad);
        bad = v2;
        std::memcpy(bad.data() + 20, &two, 4);
        rejects("residual = 2", bad);
        bad = v2;
        int32_t const unknownActivation = 3;
        std::memcpy(bad.data() + 24, &unknownActivation, 4);
        rejects("activation code 3", bad);
        bad = v2;
        std::memset(bad.data() + 16, 0, 12);
        rejects("format 2 without an epilogue", bad);
        bad = v2;
        bad.resize(24);
        rejects("format 2 cut short", bad);
    }
#endif
#if NV_TENSORRT_MAJOR < 10
    // Engine files are untrusted input: every corrupted record must be refused, never read past.
    Fields fields = validFields();
    PluginFieldCollection fc = fields.collection();
    auto plugin = createPlugin(&fc);
    std::vector<unsigned char> blob = serializeBlob(plugin.get());
    auto rejects = [&](std::string const& label, void const* data, std::size_t length) {
        gLogger.reset();
        auto restored = deserialize(data, length);
        CHECK_MSG(restored == nullptr, label + ": must be refused");
        CHECK_MSG(errorLogged(), label + ": must log an error");
    };
    rejects("null data", nullptr, 16);
    rejects("empty", blob.data(), 0);
    rejects("one byte short", blob.data(), 15);
    std::vector<unsigned char> longer = blob;
    longer.push_back(0);
    rejects("one byte long", longer.data(), longer.size());
    std::vector<unsigned char> badMagic = blob;
    badMagic[0] ^= 0xFF;
    rejects("bad magic", badMagic.data(), badMagic.size());
    std::vector<unsigned char> badVersion = blob;
    badVersion[4] = 9;
    rejects("unknown format version", badVersion.data(), badVersion.size());
    std::vector<unsigned char> nanLambda = blob;
    float const nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(nanLambda.data() + 8, &nan, 4);
    rejects("NaN e_lambda", nanLambda.data(), nanLambda.size());
    std::vector<unsigned char> badFlag = blob;
    int32_t const two = 2;
    std::memcpy(badFlag.data() + 12, &two, 4);
    rejects("unbiased = 2", badFlag.data(), badFlag.size());
#endif
    return 0;
}

// ---- group: enqueue (GPU) ---------------------------------------------------------------------------
struct HostTensor
{
    std::vector<unsigned char> bytes;
    simam_dtype dtype;
    std::size_t count;
};

simam_dtype toSimam(DataType type)
{
#if NV_TENSORRT_MAJOR >= 9
    if (type == DataType::kBF16)
    {
        return SIMAM_BFLOAT16;
    }
#endif
    return type == DataType::kHALF ? SIMAM_FLOAT16 : SIMAM_FLOAT32;
}

HostTensor encode(std::vector<float> const& values, simam_dtype dtype)
{
    HostTensor t{{}, dtype, values.size()};
    std::size_t const element = dtype == SIMAM_FLOAT32 ? 4 : 2;
    t.bytes.resize(values.size() * element);
    for (std::size_t i = 0; i < values.size(); ++i)
    {
        if (dtype == SIMAM_FLOAT32)
        {
            std::memcpy(t.bytes.data() + 4 * i, &values[i], 4);
        }
        else if (dtype == SIMAM_FLOAT16)
        {
            __half const h = __float2half(values[i]);
            std::memcpy(t.bytes.data() + 2 * i, &h, 2);
        }
        else
        {
            __nv_bfloat16 const b = __float2bfloat16(values[i]);
            std::memcpy(t.bytes.data() + 2 * i, &b, 2);
        }
    }
    return t;
}

float decodeAt(HostTensor const& t, std::size_t i)
{
    if (t.dtype == SIMAM_FLOAT32)
    {
        float v;
        std::memcpy(&v, t.bytes.data() + 4 * i, 4);
        return v;
    }
    if (t.dtype == SIMAM_FLOAT16)
    {
        __half h;
        std::memcpy(&h, t.bytes.data() + 2 * i, 2);
        return __half2float(h);
    }
    __nv_bfloat16 b;
    std::memcpy(&b, t.bytes.data() + 2 * i, 2);
    return __bfloat162float(b);
}

bool cudaOk(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
    {
        std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(status));
        CHECK_MSG(false, what);
        return false;
    }
    return true;
}

// Device buffers freed on scope exit.
struct DeviceBuffer
{
    void* ptr{nullptr};
    explicit DeviceBuffer(std::size_t bytes)
    {
        if (bytes > 0)
        {
            cudaOk(cudaMalloc(&ptr, bytes), "cudaMalloc");
        }
    }
    ~DeviceBuffer()
    {
        if (ptr != nullptr)
        {
            cudaFree(ptr);
        }
    }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
};

// One case: build-phase plugin configured for `maxDims`, then the runtime plugin runs `runDims`.
void enqueueCase(DataType type, Dims runDims, Dims maxDims, int32_t unbiased, bool useWorkspace, cudaStream_t stream)
{
    float const lambda = 1e-4F;
    Fields fields = validFields(&lambda, &unbiased);
    PluginFieldCollection fc = fields.collection();
    std::string const label = std::string("enqueue type=") + std::to_string(static_cast<int>(type)) + " shape="
        + std::to_string(runDims.d[0]) + "x" + std::to_string(runDims.d[1]) + "x" + std::to_string(runDims.d[2])
        + "x" + std::to_string(runDims.d[3]) + " unbiased=" + std::to_string(unbiased)
        + (useWorkspace ? " workspace" : " no-workspace");
    DynamicPluginTensorDesc profile = dynamicDesc(dims4(-1, runDims.d[1], -1, -1), type, runDims, runDims, maxDims);
    PluginTensorDesc runDesc = tensorDesc(runDims, type);

#if NV_TENSORRT_MAJOR >= 10
    auto builder = createPlugin(&fc);
    if (builder == nullptr)
    {
        CHECK_MSG(false, label + ": create");
        return;
    }
    CHECK(build(builder.get())->configurePlugin(&profile, 1, &profile, 1) == 0);
    std::size_t const workspaceBytes = build(builder.get())->getWorkspaceSize(&profile, 1, &profile, 1);
    SerializedFields stored = serializeFields(builder.get());
    PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
    auto loaded = createPlugin(&storedFc, TensorRTPhase::kRUNTIME);
    PluginPtr plugin(loaded != nullptr ? runtime(loaded.get())->attachToContext(nullptr) : nullptr);
    if (plugin == nullptr)
    {
        CHECK_MSG(false, label + ": runtime plugin");
        return;
    }
    CHECK(runtime(plugin.get())->onShapeChange(&runDesc, 1, &runDesc, 1) == 0);
    auto enqueue = [&](void const* const* in, void* const* out, void* ws) {
        return runtime(plugin.get())->enqueue(&runDesc, &runDesc, in, out, ws, stream);
    };
#else
    auto builder = createPlugin(&fc);
    if (builder == nullptr)
    {
        CHECK_MSG(false, label + ": create");
        return;
    }
    builder->configurePlugin(&profile, 1, &profile, 1);
    PluginTensorDesc largest = tensorDesc(maxDims, type);
    std::size_t const workspaceBytes = builder->getWorkspaceSize(&largest, 1, &largest, 1);
    std::vector<unsigned char> blob = serializeBlob(builder.get());
    PluginPtr plugin = deserialize(blob.data(), blob.size());
    if (plugin == nullptr)
    {
        CHECK_MSG(false, label + ": runtime plugin");
        return;
    }
    CHECK(plugin->initialize() == 0);
    auto enqueue = [&](void const* const* in, void* const* out, void* ws) {
        return plugin->enqueue(&runDesc, &runDesc, in, out, ws, stream);
    };
#endif

    std::size_t const count = static_cast<std::size_t>(runDims.d[0] * runDims.d[1] * runDims.d[2] * runDims.d[3]);
    uint32_t const seed = 1234U + static_cast<uint32_t>(count);
    HostTensor input = encode(harness::randomValues(count, seed, 2.0F, 0.5F), toSimam(type));
    HostTensor expected{std::vector<unsigned char>(input.bytes.size()), input.dtype, count};
    CHECK(simam_forward_cpu(input.bytes.data(), expected.bytes.data(), runDims.d[0], runDims.d[1], runDims.d[2],
              runDims.d[3], input.dtype, lambda, unbiased)
        == SIMAM_OK);

    DeviceBuffer dIn(input.bytes.size());
    DeviceBuffer dOut(input.bytes.size());
    DeviceBuffer dWorkspace(useWorkspace ? workspaceBytes : 0);
    if (!cudaOk(cudaMemcpy(dIn.ptr, input.bytes.data(), input.bytes.size(), cudaMemcpyHostToDevice), "copy in"))
    {
        return;
    }
    void const* inputs[] = {dIn.ptr};
    void* outputs[] = {dOut.ptr};
    CHECK_MSG(enqueue(inputs, outputs, dWorkspace.ptr) == 0, label + ": enqueue returns 0");
    if (!cudaOk(cudaStreamSynchronize(stream), "synchronize") || !cudaOk(cudaGetLastError(), "kernel"))
    {
        return;
    }
    HostTensor got{std::vector<unsigned char>(input.bytes.size()), input.dtype, count};
    cudaOk(cudaMemcpy(got.bytes.data(), dOut.ptr, got.bytes.size(), cudaMemcpyDeviceToHost), "copy out");

    float const rtol = type == DataType::kFLOAT ? 1e-4F : (type == DataType::kHALF ? 2e-3F : 1.6e-2F);
    float const atol = type == DataType::kFLOAT ? 1e-5F : (type == DataType::kHALF ? 1e-3F : 1e-2F);
    float worst = 0.0F;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < count; ++i)
    {
        float const e = decodeAt(expected, i);
        float const g = decodeAt(got, i);
        float const err = std::fabs(e - g);
        worst = std::max(worst, err);
        if (!(err <= atol + rtol * std::fabs(e)))
        {
            ++bad;
        }
    }
    std::printf("  %s: max |err| %.3g, %zu of %zu outside tolerance\n", label.c_str(), worst, bad, count);
    CHECK_MSG(bad == 0, label + ": matches simam_forward_cpu");
}

// One case in a channel-last format and/or with the epilogue: the runtime plugin's enqueue against the
// kernel library's CPU path for the same problem (layout, pixel stride, operands). The output buffer
// starts as a sentinel pattern: kHWC8/kHWC16's padding channels must come back untouched.
void enqueueLayoutCase(DataType type, TensorFormat format, Epilogue const& e, Dims runDims, cudaStream_t stream)
{
    float const lambda = 1e-4F;
    int32_t const unbiased = 1;
    Fields fields = epilogueFields(e, &lambda, &unbiased);
    PluginFieldCollection fc = fields.collection();
    int64_t const n = runDims.d[0], c = runDims.d[1], h = runDims.d[2], w = runDims.d[3];
    int64_t const stride = format == TensorFormat::kHWC8 ? (c + 7) / 8 * 8
        : format == TensorFormat::kHWC16                 ? (c + 15) / 16 * 16
                                                         : c;
    bool const nhwc = format != TensorFormat::kLINEAR;
    std::size_t const count = static_cast<std::size_t>(nhwc ? n * h * w * stride : n * c * h * w);
    std::string const label = std::string("enqueue type=") + std::to_string(static_cast<int>(type)) + " format="
        + std::to_string(static_cast<int>(format)) + " affine=" + std::to_string(e.affine)
        + " residual=" + std::to_string(e.residual) + " activation=" + e.activation;
    int32_t const nbInputs = 1 + 2 * e.affine + e.residual;
    Dims channels{};
    channels.nbDims = 1;
    channels.d[0] = static_cast<harness::DimValue>(c);
    std::vector<PluginTensorDesc> ins;
    ins.push_back(tensorDesc(runDims, type, format));
    if (e.affine != 0)
    {
        ins.push_back(tensorDesc(channels, type));
        ins.push_back(tensorDesc(channels, type));
    }
    if (e.residual != 0)
    {
        ins.push_back(tensorDesc(runDims, type, format));
    }
    PluginTensorDesc const outDesc = tensorDesc(runDims, type, format);
    std::vector<DynamicPluginTensorDesc> profile;
    for (PluginTensorDesc const& d : ins)
    {
        DynamicPluginTensorDesc dd = dynamicDesc(d.dims, type, d.dims, d.dims, d.dims);
        dd.desc.format = d.format;
        profile.push_back(dd);
    }
    DynamicPluginTensorDesc outProfile = dynamicDesc(runDims, type, runDims, runDims, runDims);
    outProfile.desc.format = format;

#if NV_TENSORRT_MAJOR >= 10
    auto builder = createPlugin(&fc);
    if (builder == nullptr)
    {
        CHECK_MSG(false, label + ": create");
        return;
    }
    CHECK(build(builder.get())->configurePlugin(profile.data(), nbInputs, &outProfile, 1) == 0);
    std::size_t const workspaceBytes = build(builder.get())->getWorkspaceSize(profile.data(), nbInputs, &outProfile, 1);
    SerializedFields stored = serializeFields(builder.get());
    PluginFieldCollection storedFc{static_cast<int32_t>(stored.fields.size()), stored.fields.data()};
    auto loaded = createPlugin(&storedFc, TensorRTPhase::kRUNTIME);
    PluginPtr plugin(loaded != nullptr ? runtime(loaded.get())->attachToContext(nullptr) : nullptr);
    if (plugin == nullptr)
    {
        CHECK_MSG(false, label + ": runtime plugin");
        return;
    }
    CHECK(runtime(plugin.get())->onShapeChange(ins.data(), nbInputs, &outDesc, 1) == 0);
    auto enqueue = [&](void const* const* in, void* const* out, void* ws) {
        return runtime(plugin.get())->enqueue(ins.data(), &outDesc, in, out, ws, stream);
    };
#else
    auto builder = createPlugin(&fc);
    if (builder == nullptr)
    {
        CHECK_MSG(false, label + ": create");
        return;
    }
    builder->configurePlugin(profile.data(), nbInputs, &outProfile, 1);
    std::size_t const workspaceBytes = builder->getWorkspaceSize(ins.data(), nbInputs, &outDesc, 1);
    std::vector<unsigned char> blob = serializeBlob(builder.get());
    PluginPtr plugin = deserialize(blob.data(), blob.size());
    if (plugin == nullptr)
    {
        CHECK_MSG(false, label + ": runtime plugin");
        return;
    }
    auto enqueue = [&](void const* const* in, void* const* out, void* ws) {
        return plugin->enqueue(ins.data(), &outDesc, in, out, ws, stream);
    };
#endif

    simam_dtype const dtype = toSimam(type);
    uint32_t const seed = 99U + static_cast<uint32_t>(count);
    HostTensor x = encode(harness::randomValues(count, seed, 2.0F, 0.5F), dtype);
    HostTensor residual = encode(harness::randomValues(count, seed + 1, 1.0F, 0.0F), dtype);
    HostTensor scale = encode(harness::randomValues(static_cast<std::size_t>(c), seed + 2, 0.5F, 1.0F), dtype);
    HostTensor bias = encode(harness::randomValues(static_cast<std::size_t>(c), seed + 3, 1.0F, 0.0F), dtype);
    HostTensor sentinel = encode(std::vector<float>(count, 12345.0F), dtype);
    HostTensor expected = sentinel;
    simam_problem problem = simam_problem_make(n, c, h, w, dtype, lambda, unbiased);
    problem.layout = nhwc ? SIMAM_LAYOUT_NHWC : SIMAM_LAYOUT_NCHW;
    problem.channel_stride = nhwc ? stride : 0;
    problem.scale = e.affine != 0 ? scale.bytes.data() : nullptr;
    problem.bias = e.affine != 0 ? bias.bytes.data() : nullptr;
    problem.residual = e.residual != 0 ? residual.bytes.data() : nullptr;
    problem.activation = e.activation == "relu" ? SIMAM_ACTIVATION_RELU
        : e.activation == "silu"                ? SIMAM_ACTIVATION_SILU
                                                : SIMAM_ACTIVATION_NONE;
    CHECK_MSG(simam_run_cpu(&problem, x.bytes.data(), expected.bytes.data()) == SIMAM_OK,
        label + ": CPU reference: " + simam_last_error());

    DeviceBuffer dX(x.bytes.size());
    DeviceBuffer dR(residual.bytes.size());
    DeviceBuffer dScale(scale.bytes.size());
    DeviceBuffer dBias(bias.bytes.size());
    DeviceBuffer dOut(sentinel.bytes.size());
    DeviceBuffer dWorkspace(workspaceBytes);
    bool copied = cudaOk(cudaMemcpy(dX.ptr, x.bytes.data(), x.bytes.size(), cudaMemcpyHostToDevice), "copy x")
        && cudaOk(cudaMemcpy(dR.ptr, residual.bytes.data(), residual.bytes.size(), cudaMemcpyHostToDevice), "copy r")
        && cudaOk(cudaMemcpy(dScale.ptr, scale.bytes.data(), scale.bytes.size(), cudaMemcpyHostToDevice), "copy s")
        && cudaOk(cudaMemcpy(dBias.ptr, bias.bytes.data(), bias.bytes.size(), cudaMemcpyHostToDevice), "copy b")
        && cudaOk(cudaMemcpy(dOut.ptr, sentinel.bytes.data(), sentinel.bytes.size(), cudaMemcpyHostToDevice), "y");
    if (!copied)
    {
        return;
    }
    std::vector<void const*> inputs{dX.ptr};
    if (e.affine != 0)
    {
        inputs.push_back(dScale.ptr);
        inputs.push_back(dBias.ptr);
    }
    if (e.residual != 0)
    {
        inputs.push_back(dR.ptr);
    }
    void* outputs[] = {dOut.ptr};
    CHECK_MSG(enqueue(inputs.data(), outputs, dWorkspace.ptr) == 0, label + ": enqueue returns 0");
    if (!cudaOk(cudaStreamSynchronize(stream), "synchronize") || !cudaOk(cudaGetLastError(), "kernel"))
    {
        return;
    }
    HostTensor got = sentinel;
    cudaOk(cudaMemcpy(got.bytes.data(), dOut.ptr, got.bytes.size(), cudaMemcpyDeviceToHost), "copy out");
    float const rtol = type == DataType::kFLOAT ? 1e-4F : (type == DataType::kHALF ? 2e-3F : 1.6e-2F);
    float const atol = type == DataType::kFLOAT ? 1e-5F : (type == DataType::kHALF ? 2e-3F : 2e-2F);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < count; ++i)
    {
        float const want = decodeAt(expected, i);
        float const have = decodeAt(got, i);
        bad += std::fabs(want - have) <= atol + rtol * std::fabs(want) ? 0 : 1;
    }
    std::printf("  %s: %zu of %zu outside tolerance\n", label.c_str(), bad, count);
    CHECK_MSG(bad == 0, label + ": matches simam_run_cpu (padding channels untouched)");
}

int groupEnqueue()
{
    int devices = 0;
    cudaError_t const status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess || devices == 0)
    {
        std::printf("SKIP: no CUDA device (%s); enqueue tests need a GPU\n",
            status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
        return kSkip;
    }
    cudaStream_t stream = nullptr;
    if (!cudaOk(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"))
    {
        return 1;
    }
    for (DataType type : kernelTypes())
    {
        for (int32_t unbiased : {1, 0})
        {
            // Small planes, a batch smaller than the profile's maximum, and planes larger than the
            // on-chip limit (16384 elements) with and without TensorRT's workspace.
            enqueueCase(type, dims4(2, 3, 7, 5), dims4(4, 3, 16, 16), unbiased, true, stream);
            enqueueCase(type, dims4(1, 16, 56, 56), dims4(8, 16, 56, 56), unbiased, true, stream);
            enqueueCase(type, dims4(2, 4, 130, 140), dims4(2, 4, 160, 160), unbiased, true, stream);
            enqueueCase(type, dims4(2, 4, 130, 140), dims4(2, 4, 160, 160), unbiased, false, stream);
        }
    }
    enqueueCase(DataType::kFLOAT, dims4(0, 3, 8, 8), dims4(4, 3, 8, 8), 1, true, stream);
    // Every format the plugin can be handed, each epilogue part, 5 channels (kHWC8/16 pad 3/11).
    for (DataType type : kernelTypes())
    {
        for (TensorFormat format :
            {TensorFormat::kLINEAR, TensorFormat::kHWC, TensorFormat::kHWC8, TensorFormat::kHWC16})
        {
            if (!expectFormatIn("all", type, format))
            {
                continue;
            }
            for (Epilogue const& e : {Epilogue{0, 0, "none"}, Epilogue{1, 0, "none"}, Epilogue{0, 1, "relu"},
                     Epilogue{1, 1, "silu"}})
            {
                enqueueLayoutCase(type, format, e, dims4(2, 5, 9, 7), stream);
            }
        }
        enqueueLayoutCase(type, TensorFormat::kHWC, Epilogue{1, 1, "relu"}, dims4(1, 64, 56, 56), stream);
        enqueueLayoutCase(type, TensorFormat::kHWC, Epilogue{1, 1, "relu"}, dims4(1, 8, 150, 150), stream);
    }
    cudaStreamDestroy(stream);
    return 0;
}

int usage()
{
    std::fprintf(stderr,
        "usage: simam_trt_harness --plugin PATH --group load|lifecycle|fields|serialization|enqueue\n");
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    std::string pluginPath;
    std::string group;
    for (int i = 1; i + 1 < argc; i += 2)
    {
        std::string const key = argv[i];
        if (key == "--plugin")
        {
            pluginPath = argv[i + 1];
        }
        else if (key == "--group")
        {
            group = argv[i + 1];
        }
        else
        {
            return usage();
        }
    }
    if (pluginPath.empty() || group.empty())
    {
        return usage();
    }
    std::printf("simam_trt_harness: TensorRT headers %d.%d.%d, group '%s'\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
        NV_TENSORRT_PATCH, group.c_str());
    if (!harness::openPluginLibrary(pluginPath, gLibrary))
    {
        std::fprintf(stderr, "FAILED to load %s: %s\n", pluginPath.c_str(), gLibrary.error.c_str());
        return 1;
    }
#if HARNESS_HAS_LOGGER_FINDER
    gLibrary.setLoggerFinder(&gFinder); // TensorRT calls this first, right after loading
#endif

    int rc = 0;
    if (group == "load")
    {
        rc = groupLoad();
    }
    else if (group == "lifecycle")
    {
        rc = groupLifecycle();
    }
    else if (group == "fields")
    {
        rc = groupFields();
    }
    else if (group == "serialization")
    {
        rc = groupSerialization();
    }
    else if (group == "enqueue")
    {
        rc = groupEnqueue();
    }
    else
    {
        return usage();
    }
    if (rc == kSkip)
    {
        return kSkip;
    }
    std::printf("%d checks, %d failed\n", harness::checksRun(), harness::failures());
    return harness::failures() == 0 && rc == 0 ? 0 : 1;
}
