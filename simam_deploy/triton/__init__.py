"""Serving SimAM networks on Triton Inference Server.

- :mod:`.repository` writes a Triton model repository for a TensorRT engine (``tensorrt_plan``), an
  ONNX file (``onnxruntime`` backend) or an ONNX file behind a ``python`` backend model, shipping our
  native library (TensorRT plugin or ONNX Runtime op library) inside the repository.
- :mod:`.server` finds a ``tritonserver`` binary and runs it on loopback for tests and benchmarks.
- :mod:`.client` queries a server over HTTP or gRPC and runs bounded load tests.
"""

from simam_deploy.triton.repository import RepositoryReport, TensorSpec, write_repository

__all__ = ["RepositoryReport", "TensorSpec", "write_repository"]
