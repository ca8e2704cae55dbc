"""TensorRT backend: run and time serialized engines (``.engine``/``.plan``) built by ``simam-deploy build``.

Buffers are torch CUDA tensors (torch is already a dependency), so no pycuda is needed. TensorRT >= 8.5
uses the name-based API (``set_input_shape``/``set_tensor_address``/``execute_async_v3``); older
engines fall back to bindings and ``execute_async_v2``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from simam_deploy.backends.tensorrt.plugin import register_plugin
from simam_deploy.backends.tensorrt.runtime import import_runtime
from simam_deploy.errors import InputError, MissingDependencyError

MIN_ENGINE_BYTES = 64  # smaller files cannot be a TensorRT plan


def check_engine_file(path: str | os.PathLike) -> Path:
    """Reject what cannot be an engine before handing bytes to TensorRT."""
    engine = Path(path)
    if not engine.exists():
        raise InputError(
            f"{engine} does not exist", "build one with: simam-deploy build MODEL.onnx -o MODEL.engine"
        )
    if not engine.is_file():
        raise InputError(f"{engine} is not a file", "pass the path of a serialized TensorRT engine")
    size = engine.stat().st_size
    if size == 0:
        raise InputError(f"{engine} is empty", "the build was interrupted; rebuild the engine")
    if size < MIN_ENGINE_BYTES:
        raise InputError(f"{engine} has only {size} bytes: not a TensorRT engine", "rebuild the engine")
    return engine


def _torch_cuda() -> Any:
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "TensorRT engines need an NVIDIA GPU, but torch sees no CUDA device",
            "run on a machine with an NVIDIA GPU and a CUDA build of torch",
        )
    return torch


def _torch_dtype(trt: Any, torch: Any, dtype: Any) -> Any:
    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    for name, torch_type in (("BF16", torch.bfloat16), ("INT64", torch.int64), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_type
    if dtype not in table:
        raise InputError(
            f"engine tensor type {dtype} is not supported by this runner", "use float/half inputs"
        )
    return table[dtype]


def _numpy_dtype(torch_dtype: Any) -> np.dtype:
    import torch

    # numpy has no bfloat16: such tensors are handed over as float32.
    return (
        np.dtype(np.float32)
        if torch_dtype == torch.bfloat16
        else torch.empty(0, dtype=torch_dtype).numpy().dtype
    )


class TensorRTRunner:
    """Runs a serialized TensorRT engine on the current CUDA device."""

    name = "tensorrt"

    def __init__(
        self, path: str | os.PathLike, plugin_lib: str | os.PathLike | None = None, runtime: str = "auto"
    ) -> None:
        self.path = check_engine_file(path)
        self.torch = _torch_cuda()  # before TensorRT: without a GPU nothing below can run
        self.runtime = import_runtime(runtime)
        self.trt = self.runtime.module
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.plugin_library = self._register_plugin(plugin_lib)
        self.trt_runtime = self.trt.Runtime(self.logger)
        self.engine = self.trt_runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InputError(
                f"{self.runtime.label} could not deserialize {self.path.name}",
                "likely causes: the engine was built with another TensorRT version or for another GPU "
                "(engines are not portable: rebuild it here), or the SimAM plugin was not loaded "
                "(pass --plugin-lib or set SIMAM_TRT_PLUGIN)",
            )
        self.context = self.engine.create_execution_context()
        self.stream = self.torch.cuda.Stream()
        self._names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in self._names}
        self._inputs = [n for n in self._names if modes[n] == self.trt.TensorIOMode.INPUT]
        self._outputs = [n for n in self._names if modes[n] == self.trt.TensorIOMode.OUTPUT]
        self._buffers: dict[str, Any] = {}

    def _register_plugin(self, plugin_lib: str | os.PathLike | None) -> str | None:
        try:
            return str(register_plugin(self.runtime, plugin_lib))
        except MissingDependencyError:
            if plugin_lib is not None:
                raise
            return None  # engines without SimAM layers run without it; deserialization reports otherwise

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        spec = []
        for name in self._inputs:
            shape = tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(name))
            dtype = _numpy_dtype(_torch_dtype(self.trt, self.torch, self.engine.get_tensor_dtype(name)))
            spec.append((name, shape, dtype))
        return spec

    def _bind(self, inputs: dict[str, np.ndarray]) -> None:
        """Copy inputs to the GPU, set shapes, allocate outputs, and give TensorRT every address."""
        torch = self.torch
        missing = set(self._inputs) - set(inputs)
        extra = set(inputs) - set(self._inputs)
        if missing or extra:
            raise InputError(
                f"engine inputs are {self._inputs}; missing {sorted(missing)}, unexpected {sorted(extra)}",
                "name the inputs as the engine does",
            )
        for name in self._inputs:
            dtype = _torch_dtype(self.trt, torch, self.engine.get_tensor_dtype(name))
            tensor = torch.as_tensor(np.ascontiguousarray(inputs[name])).to(device="cuda", dtype=dtype)
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise InputError(
                    f"input {name} shape {tuple(tensor.shape)} is outside the engine's optimization profile",
                    "rebuild the engine with --shapes covering this shape",
                )
            self._buffers[name] = tensor
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputError(f"output {name} shape {shape} is unresolved", "set every input's shape")
            dtype = _torch_dtype(self.trt, torch, self.engine.get_tensor_dtype(name))
            buffer = self._buffers.get(name)
            if buffer is None or tuple(buffer.shape) != shape or buffer.dtype != dtype:
                buffer = torch.empty(shape, dtype=dtype, device="cuda")  # reused across calls
            self._buffers[name] = buffer
        for name in self._names:
            self.context.set_tensor_address(name, self._buffers[name].data_ptr())

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise InputError(
                "TensorRT failed to enqueue the engine (see the log above)", "rerun with a valid input"
            )

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._bind(inputs)
        self.torch.cuda.current_stream().synchronize()  # input copies ran on torch's stream
        self._enqueue()
        self.stream.synchronize()
        return {name: self._to_numpy(self._buffers[name]) for name in self._outputs}

    def _to_numpy(self, tensor: Any) -> np.ndarray:
        if tensor.dtype == self.torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        return tensor.cpu().numpy()

    def benchmark(
        self, inputs: dict[str, np.ndarray], warmup: int = 20, iters: int = 100, cuda_graph: bool = False
    ) -> list[float]:
        """Milliseconds per iteration, timed with CUDA events on the runner's stream. With ``cuda_graph``
        one enqueue is captured into a CUDA graph and replayed (removes launch overhead)."""
        if warmup < 0 or iters <= 0:
            raise InputError(
                f"need warmup >= 0 and iters > 0, got {warmup}, {iters}", "e.g. --warmup 20 --iters 100"
            )
        torch = self.torch
        self._bind(inputs)
        torch.cuda.current_stream().synchronize()
        self._enqueue()  # TensorRT finishes shape-dependent set-up on the first enqueue, before any capture
        self.stream.synchronize()
        run = self._enqueue
        if cuda_graph:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self._enqueue()
            run = graph.replay
        with torch.cuda.stream(self.stream):
            for _ in range(warmup):
                run()
            times = []
            for _ in range(iters):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record(self.stream)
                run()
                end.record(self.stream)
                times.append((start, end))
        self.stream.synchronize()
        return [start.elapsed_time(end) for start, end in times]
