"""TensorRT backend: run and time serialized engines (``.engine``/``.plan``) built by ``simam-deploy build``.

Device buffers, the stream and timing events come from cuda-python, else pycuda, else torch
(:mod:`simam_deploy.backends.tensorrt.device`), so a Jetson without torch runs engines too. The
name-based API (``set_input_shape``/``set_tensor_address``/``execute_async_v3``, TensorRT >= 8.5).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from simam_deploy.backends.tensorrt.device import open_device
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


def _numpy_dtype(trt: Any, dtype: Any) -> np.dtype:
    """The host dtype of an engine tensor type. bfloat16 (no numpy type) is float32 on the host and
    its 16-bit pattern on the device (see _bf16_bits)."""
    table = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_}
    table.update({"BF16": np.float32, "INT64": np.int64, "UINT8": np.uint8})
    for name, np_type in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return np.dtype(np_type)
    raise InputError(f"engine tensor type {dtype} is not supported by this runner", "use float/half inputs")


def _is_bf16(trt: Any, dtype: Any) -> bool:
    return hasattr(trt.DataType, "BF16") and dtype == trt.DataType.BF16


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even (what a float32->bf16 cast does)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    out = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    out[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)  # keep NaN a NaN
    return out


def _bf16_to_float(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


class TensorRTRunner:
    """Runs a serialized TensorRT engine on the current CUDA device."""

    name = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike,
        plugin_lib: str | os.PathLike | None = None,
        runtime: str = "auto",
        cuda_python: str | None = None,
    ) -> None:
        self.path = check_engine_file(path)
        # before TensorRT: without a GPU nothing below can run. cuda_python: see device.open_device.
        self.device = open_device(cuda_python)
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
        self._names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in self._names}
        self._inputs = [n for n in self._names if modes[n] == self.trt.TensorIOMode.INPUT]
        self._outputs = [n for n in self._names if modes[n] == self.trt.TensorIOMode.OUTPUT]
        self._types = {n: self.engine.get_tensor_dtype(n) for n in self._names}
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self._hosts: dict[str, np.ndarray] = {}  # host arrays of the latest bind (outputs read into them)

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
            spec.append((name, shape, _numpy_dtype(self.trt, self._types[name])))
        return spec

    def _device_array(self, name: str, host: np.ndarray) -> np.ndarray:
        """What the engine's buffer holds for a host array: bfloat16 travels as its bit pattern."""
        return _bf16_bits(host) if _is_bf16(self.trt, self._types[name]) else host

    def _buffer(self, name: str, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for ``name``, reused across calls."""
        ptr, capacity = self._buffers.get(name, (0, -1))
        if capacity < nbytes:
            if capacity >= 0:
                self.device.free(ptr)
            ptr, capacity = self.device.allocate(nbytes), max(1, nbytes)
            self._buffers[name] = (ptr, capacity)
        return ptr

    def _bind(self, inputs: dict[str, np.ndarray]) -> None:
        """Copy inputs to the GPU, set shapes, allocate outputs, and give TensorRT every address."""
        missing = set(self._inputs) - set(inputs)
        extra = set(inputs) - set(self._inputs)
        if missing or extra:
            raise InputError(
                f"engine inputs are {self._inputs}; missing {sorted(missing)}, unexpected {sorted(extra)}",
                "name the inputs as the engine does",
            )
        for name in self._inputs:
            dtype = _numpy_dtype(self.trt, self._types[name])
            host = np.ascontiguousarray(np.asarray(inputs[name]).astype(dtype, copy=False))
            if not self.context.set_input_shape(name, tuple(host.shape)):
                raise InputError(
                    f"input {name} shape {tuple(host.shape)} is outside the engine's optimization profile",
                    "rebuild the engine with --shapes covering this shape",
                )
            data = self._device_array(name, host)
            self._hosts[name] = data  # kept alive until the asynchronous copy has run
            self.device.to_device(self._buffer(name, data.nbytes), data)
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputError(f"output {name} shape {shape} is unresolved", "set every input's shape")
            bf16 = _is_bf16(self.trt, self._types[name])
            dtype = np.uint16 if bf16 else _numpy_dtype(self.trt, self._types[name])
            self._hosts[name] = np.empty(shape, dtype=dtype)
            self._buffer(name, self._hosts[name].nbytes)
        for name in self._names:
            self.context.set_tensor_address(name, self._buffers[name][0])

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.device.stream_handle):
            raise InputError(
                "TensorRT failed to enqueue the engine (see the log above)", "rerun with a valid input"
            )

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._bind(inputs)  # copies and the engine run in order on the one stream
        self._enqueue()
        for name in self._outputs:
            self.device.to_host(self._hosts[name], self._buffers[name][0])
        self.device.synchronize()
        return {name: self._to_numpy(name) for name in self._outputs}

    def _to_numpy(self, name: str) -> np.ndarray:
        host = self._hosts[name]
        return _bf16_to_float(host) if _is_bf16(self.trt, self._types[name]) else host.copy()

    def close(self) -> None:
        """Free the device buffers (also done when the runner is garbage collected)."""
        for ptr, _ in self._buffers.values():
            self.device.free(ptr)
        self._buffers.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn CUDA down already
            self.close()

    def benchmark(
        self, inputs: dict[str, np.ndarray], warmup: int = 20, iters: int = 100, cuda_graph: bool = False
    ) -> list[float]:
        """Milliseconds per iteration, timed with CUDA events on the runner's stream. With ``cuda_graph``
        one enqueue is captured into a CUDA graph and replayed (removes launch overhead)."""
        if warmup < 0 or iters <= 0:
            raise InputError(
                f"need warmup >= 0 and iters > 0, got {warmup}, {iters}", "e.g. --warmup 20 --iters 100"
            )
        self._bind(inputs)
        self._enqueue()  # TensorRT finishes shape-dependent set-up on the first enqueue, before any capture
        self.device.synchronize()
        run = self.device.capture(self._enqueue) if cuda_graph else self._enqueue
        for _ in range(warmup):
            run()
        marks = []
        for _ in range(iters):
            start = self.device.record_event()
            run()
            marks.append((start, self.device.record_event()))
        self.device.synchronize()
        return [self.device.elapsed_ms(start, end) for start, end in marks]
