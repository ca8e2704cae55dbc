"""OpenVINO backend (CPU): the runner (``runner``) and SimAM for its ONNX frontend (``simam``).

Fused files run without a native library of ours: SimAM nodes are rebuilt from OpenVINO's own
operations by a ConversionExtension of its ONNX frontend, which OpenVINO then fuses and schedules.
"""

from simam_deploy.backends import ONNX_SUFFIXES, Backend, Capabilities

BACKEND = Backend(
    name="openvino",
    label="OpenVINO",
    capabilities=Capabilities(
        precisions=("fp32", "fp16", "bf16"),  # INFERENCE_PRECISION_HINT; parity checks force f32
        devices=("cpu",),
        dynamic_shapes=True,
        custom_op="ONNX frontend ConversionExtension: SimAM rebuilt from OpenVINO ops",
    ),
    suffixes=ONNX_SUFFIXES,
    runner="simam_deploy.backends.openvino.runner:OpenVINORunner",
    probe="simam_deploy.per_layer:onnx_file_probe",
)
