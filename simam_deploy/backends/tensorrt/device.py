"""GPU memory, a stream, copies and timing events for the TensorRT runner, from whichever CUDA Python
package is installed: cuda-python (``cuda.bindings``, what TensorRT's own samples use), else pycuda,
else torch. A Jetson often has TensorRT's bindings and numpy but no torch; one of the first two
is enough there.

:func:`open_device` picks the provider at run time (``SIMAM_CUDA_PYTHON`` or ``which`` forces one),
checks that it sees a GPU, and raises :class:`MissingDependencyError` (exit 2) saying what to install
or that a GPU is needed. Every provider works on raw device pointers and one stream of its own, so the
runner is the same code whichever is used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from simam_deploy.errors import InputError, MissingDependencyError

PROVIDERS = ("cuda-python", "pycuda", "torch")
PROVIDER_CHOICES = ("auto", *PROVIDERS)
PROVIDER_ENV = "SIMAM_CUDA_PYTHON"
INSTALL_HINT = (
    "install one of: pip install cuda-python (match your CUDA major: 'cuda-python<13' for CUDA 12, "
    "e.g. JetPack 6), pip install pycuda, or torch with CUDA"
)
NO_GPU = "TensorRT engines need an NVIDIA GPU"


class DeviceMemory(Protocol):
    """What the runner needs from CUDA: allocations, one stream, async copies, events, graphs."""

    name: str
    stream_handle: int

    def allocate(self, nbytes: int) -> int: ...

    def free(self, ptr: int) -> None: ...

    def to_device(self, ptr: int, host: np.ndarray) -> None: ...

    def to_host(self, host: np.ndarray, ptr: int) -> None: ...

    def synchronize(self) -> None: ...

    def record_event(self) -> Any: ...

    def elapsed_ms(self, start: Any, end: Any) -> float: ...

    def capture(self, enqueue: Callable[[], None]) -> Callable[[], None]: ...


# -- cuda-python --------------------------------------------------------------------------------------


def _import_cudart() -> Any:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (12.6+, 13), else ``cuda.cudart`` (older)."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


class CudaPython:
    """cuda-python: every call returns ``(error, *values)``; errors become exceptions here."""

    name = "cuda-python"

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or count < 1:
            reason = self._error_name(err) if err != cudart.cudaError_t.cudaSuccess else "0 devices"
            hint = "run on a machine with an NVIDIA GPU and its driver"
            if "InsufficientDriver" in reason:  # no driver at all reads the same as an old one
                hint += "; if it has both, the driver is older than this cuda-python: " + INSTALL_HINT
            raise MissingDependencyError(f"{NO_GPU}, but cuda-python sees none ({reason})", hint)
        self.stream = self._call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self.stream)

    def _error_name(self, err: Any) -> str:
        result = self.rt.cudaGetErrorName(err)
        name = result[1] if isinstance(result, tuple) else result
        return name.decode() if isinstance(name, bytes) else str(name)

    def _call(self, result: tuple, what: str) -> Any:
        err, *values = result
        if err != self.rt.cudaError_t.cudaSuccess:
            raise MissingDependencyError(
                f"CUDA call {what} failed: {self._error_name(err)}",
                "the GPU or its driver refused it: check the device (nvidia-smi, or tegrastats on a Jetson)",
            )
        return values[0] if len(values) == 1 else (tuple(values) or None)

    def allocate(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree(ptr), "cudaFree")

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        copy = self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream)
        self._call(copy, "cudaMemcpyAsync")

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        copy = self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream)
        self._call(copy, "cudaMemcpyAsync")

    def synchronize(self) -> None:
        self._call(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def record_event(self) -> Any:
        event = self._call(self.rt.cudaEventCreate(), "cudaEventCreate")
        self._call(self.rt.cudaEventRecord(event, self.stream), "cudaEventRecord")
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        self._call(self.rt.cudaEventSynchronize(end), "cudaEventSynchronize")
        ms = self._call(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")
        for event in (start, end):
            self._call(self.rt.cudaEventDestroy(event), "cudaEventDestroy")
        return float(ms)

    def capture(self, enqueue: Callable[[], None]) -> Callable[[], None]:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call(self.rt.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = self._call(self.rt.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
        executable = self._call(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        return lambda: self._call(self.rt.cudaGraphLaunch(executable, self.stream), "cudaGraphLaunch")


# -- pycuda -------------------------------------------------------------------------------------------


class PyCuda:
    """pycuda on the device's primary context, the one TensorRT and the CUDA runtime use."""

    name = "pycuda"

    def __init__(self, driver: Any) -> None:
        self.cuda = driver
        try:
            driver.init()
            count = driver.Device.count()
        except Exception as exc:  # pycuda raises its own RuntimeError/LogicError without a driver
            raise MissingDependencyError(
                f"{NO_GPU}, but pycuda finds no CUDA driver ({exc})",
                "run on a machine with an NVIDIA GPU and its driver",
            ) from exc
        if count < 1:
            raise MissingDependencyError(f"{NO_GPU}, but pycuda sees 0 devices", "run on a GPU machine")
        self.context = driver.Device(0).retain_primary_context()
        self.context.push()
        self.stream = driver.Stream()
        self.stream_handle = int(self.stream.handle)
        self._allocations: dict[int, Any] = {}

    def allocate(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        # pageable host memory: the copy is staged by the driver (synchronous to the host), still in
        # stream order; page-locked buffers would only matter for overlapping copies, which we never do
        self.cuda.memcpy_htod_async(ptr, host, self.stream)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def record_event(self) -> Any:
        return self.cuda.Event().record(self.stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(end.time_since(start))

    def capture(self, enqueue: Callable[[], None]) -> Callable[[], None]:
        raise MissingDependencyError(
            "CUDA graph capture of an engine is done with cuda-python or torch, not pycuda",
            "pip install cuda-python, or bench without --cuda-graph",
        )


# -- torch --------------------------------------------------------------------------------------------


class TorchCuda:
    """torch's caching allocator and streams; byte tensors stand for raw allocations."""

    name = "torch"

    def __init__(self, torch: Any) -> None:
        if not torch.cuda.is_available():
            raise MissingDependencyError(
                f"{NO_GPU}, but torch sees no CUDA device",
                "run on a machine with an NVIDIA GPU and a CUDA build of torch",
            )
        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.stream_handle = int(self.stream.cuda_stream)
        self._tensors: dict[int, Any] = {}

    def allocate(self, nbytes: int) -> int:
        tensor = self.torch.empty(max(1, nbytes), dtype=self.torch.uint8, device="cuda")
        self._tensors[tensor.data_ptr()] = tensor
        return tensor.data_ptr()

    def free(self, ptr: int) -> None:
        del self._tensors[ptr]

    def _bytes(self, host: np.ndarray) -> Any:
        return self.torch.from_numpy(host.reshape(-1).view(np.uint8))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            self._tensors[ptr][: host.nbytes].copy_(self._bytes(host), non_blocking=True)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        with self.torch.cuda.stream(self.stream):
            self._bytes(host).copy_(self._tensors[ptr][: host.nbytes], non_blocking=True)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def record_event(self) -> Any:
        event = self.torch.cuda.Event(enable_timing=True)
        event.record(self.stream)
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(start.elapsed_time(end))

    def capture(self, enqueue: Callable[[], None]) -> Callable[[], None]:
        graph = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(graph, stream=self.stream):
            enqueue()
        return graph.replay


# -- choosing one -------------------------------------------------------------------------------------


def _import_pycuda() -> Any:
    return importlib.import_module("pycuda.driver")


def _import_torch() -> Any:
    return importlib.import_module("torch")


# name -> (import the module, wrap it); tried in this order by "auto"
_FACTORIES: dict[str, tuple[Callable[[], Any], Callable[[Any], DeviceMemory]]] = {
    "cuda-python": (_import_cudart, CudaPython),
    "pycuda": (_import_pycuda, PyCuda),
    "torch": (_import_torch, TorchCuda),
}


def find_provider(which: str | None = None) -> tuple[str, Any]:
    """The first provider whose Python package imports (``which`` or ``$SIMAM_CUDA_PYTHON`` forces
    one): its name and module. No GPU is touched here."""
    which = which or os.environ.get(PROVIDER_ENV) or "auto"
    if which not in PROVIDER_CHOICES:
        raise InputError(
            f"unknown CUDA Python package {which!r} (from {PROVIDER_ENV} or the caller)",
            f"use one of {', '.join(PROVIDER_CHOICES)}",
        )
    names: Sequence[str] = PROVIDERS if which == "auto" else (which,)
    problems = []
    for name in names:
        importer, _ = _FACTORIES[name]
        try:
            return name, importer()
        except ImportError as exc:  # also a package whose native library is missing
            problems.append(f"{name}: {exc}")
    if which != "auto":
        raise MissingDependencyError(
            f"the TensorRT runner was told to take its GPU buffers from {which} ({PROVIDER_ENV}), which "
            f"does not import ({problems[0]})",
            f"install it, or unset {PROVIDER_ENV} to use whichever of {', '.join(PROVIDERS)} is installed",
        )
    raise MissingDependencyError(
        "the TensorRT runner needs GPU buffers from cuda-python, pycuda or torch, and none imports ("
        + "; ".join(problems)
        + ")",
        INSTALL_HINT,
    )


def open_device(which: str | None = None) -> DeviceMemory:
    """The provider :func:`find_provider` picks, opened on the GPU (exit 2 when there is none)."""
    name, module = find_provider(which)
    return _FACTORIES[name][1](module)
