"""ONNX Runtime backend: the runner (``runner``) and our custom-op library (``library``)."""

from simam_deploy.backends import ONNX_SUFFIXES, Backend, Capabilities

BACKEND = Backend(
    name="onnxruntime",
    label="ONNX Runtime",
    capabilities=Capabilities(
        precisions=("fp32", "fp16"),  # no bfloat16 kernels on its CPU provider
        devices=("cpu", "cuda"),
        dynamic_shapes=True,
        custom_op="libsimam_ort_ops.so (RegisterCustomOps), else the file's model-local function",
    ),
    suffixes=ONNX_SUFFIXES,
    runner="simam_deploy.backends.onnxruntime.runner:OnnxRuntimeRunner",
    library="simam_deploy.backends.onnxruntime.library:library_path",
    probe="simam_deploy.per_layer:onnx_file_probe",
)
