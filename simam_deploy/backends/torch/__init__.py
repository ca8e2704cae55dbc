"""PyTorch backend: the reference runner (``runner``); it runs models, not files."""

from simam_deploy.backends import Backend, Capabilities

BACKEND = Backend(
    name="torch",
    label="PyTorch",
    capabilities=Capabilities(
        precisions=("fp32", "fp16", "bf16"),
        devices=("cpu", "cuda"),
        dynamic_shapes=True,
        custom_op="torch.ops.simam_deploy.simam over the kernel library (simam_deploy._C)",
    ),
)
