// Run an ONNX model with fused SimAM nodes from C++: register libsimam_ort_ops.so, run once.
//
//   simam_ort_example MODEL.onnx LIBSIMAM_ORT_OPS.so [OUTPUT.bin]
//
// The input is deterministic (x[i] = ((i * 7919) % 1000) / 500 - 1, dynamic dimensions set to 1)
// so that a test can rebuild it; the first output is printed as shape + sum and, when OUTPUT.bin is
// given, written there as raw float32.
#include <onnxruntime_cxx_api.h>

#include <cstdio>
#include <fstream>
#include <numeric>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL.onnx LIBSIMAM_ORT_OPS.so [OUTPUT.bin]\n", argv[0]);
        return 2;
    }
    try {
        Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "simam-example");
        Ort::SessionOptions options;
        options.RegisterCustomOpsLibrary(argv[2]);  // registers SimAM in domain com.simam_deploy
        Ort::Session session(env, argv[1], options);

        Ort::AllocatorWithDefaultOptions allocator;
        auto input_name = session.GetInputNameAllocated(0, allocator);
        auto output_name = session.GetOutputNameAllocated(0, allocator);
        Ort::TypeInfo type_info = session.GetInputTypeInfo(0);  // owns what `info` reads
        auto info = type_info.GetTensorTypeAndShapeInfo();
        if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
            std::fprintf(stderr, "this example feeds float32 inputs only\n");
            return 2;
        }
        std::vector<int64_t> shape = info.GetShape();
        for (int64_t& dim : shape) dim = dim > 0 ? dim : 1;
        const size_t count = std::accumulate(shape.begin(), shape.end(), size_t{1},
                                             [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
        std::vector<float> x(count);
        for (size_t i = 0; i < count; ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;

        auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        Ort::Value input = Ort::Value::CreateTensor<float>(memory, x.data(), x.size(), shape.data(), shape.size());
        const char* input_names[] = {input_name.get()};
        const char* output_names[] = {output_name.get()};
        auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 1);

        auto out_info = outputs[0].GetTensorTypeAndShapeInfo();
        const float* y = outputs[0].GetTensorData<float>();
        const size_t n = out_info.GetElementCount();
        double sum = 0.0;
        for (size_t i = 0; i < n; ++i) sum += y[i];
        std::printf("output %s shape [", output_name.get());
        for (int64_t dim : out_info.GetShape()) std::printf(" %lld", static_cast<long long>(dim));
        std::printf(" ] sum %.6f\n", sum);
        if (argc > 3) {
            std::ofstream(argv[3], std::ios::binary).write(reinterpret_cast<const char*>(y), n * sizeof(float));
        }
        return 0;
    } catch (const Ort::Exception& e) {
        std::fprintf(stderr, "onnxruntime: %s\n", e.what());
        return 1;
    }
}
