"""simam-deploy: SimAM networks from PyTorch to ONNX and TensorRT, with parity proofs and benchmarks."""

from simam_deploy.errors import InputError, ParityFailure, SimamDeployError

__version__ = "0.1.0"
__all__ = ["InputError", "ParityFailure", "SimamDeployError", "__version__"]
