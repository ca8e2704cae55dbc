"""The TensorRT runner's device buffers: cuda-python, else pycuda, else torch, chosen at run time.

Without a GPU these tests cover the choice and every line up to the first device call: each
provider's import is made to fail (``sys.modules[name] = None`` makes ``import name`` raise), and the
providers that do import make their real first CUDA call, which must end in a clear exit-2 error
saying that a GPU is needed. The bfloat16 host conversion is checked against torch's own cast."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

from simam_deploy.backends.tensorrt import device
from simam_deploy.backends.tensorrt.runner import TensorRTRunner, _bf16_bits, _bf16_to_float
from simam_deploy.errors import InputError, MissingDependencyError

MODULES = {
    "cuda-python": ("cuda.bindings.runtime", "cuda.cudart"),
    "pycuda": ("pycuda.driver",),
    "torch": ("torch",),
}


def _importable(provider: str) -> bool:
    for name in MODULES[provider]:
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except ImportError:  # the parent package is absent
            continue
    return False


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv(device.PROVIDER_ENV, raising=False)


def block(monkeypatch, *providers: str) -> None:
    for provider in providers:
        for name in MODULES[provider]:
            monkeypatch.setitem(sys.modules, name, None)


def test_without_any_provider_every_one_is_named_in_order_with_what_to_install(monkeypatch):
    block(monkeypatch, *device.PROVIDERS)
    with pytest.raises(MissingDependencyError) as caught:
        device.find_provider()
    error = caught.value
    where = [error.message.index(f"{name}: ") for name in device.PROVIDERS]
    assert where == sorted(where)  # tried cuda-python, then pycuda, then torch
    assert "pip install cuda-python" in error.hint and "pip install pycuda" in error.hint
    assert error.exit_code == 2


@pytest.mark.skipif(not _importable("cuda-python"), reason="cuda-python is not installed")
def test_cuda_python_is_chosen_first_when_it_imports():
    name, module = device.find_provider()
    assert name == "cuda-python"
    assert module.__name__ in ("cuda.bindings.runtime", "cuda.cudart")


def test_without_cuda_python_and_pycuda_torch_is_the_last_resort(monkeypatch):
    block(monkeypatch, "cuda-python", "pycuda")
    name, module = device.find_provider()
    assert name == "torch" and module is torch


@pytest.mark.skipif(not _importable("pycuda"), reason="pycuda is not installed")
def test_without_cuda_python_pycuda_comes_before_torch(monkeypatch):
    block(monkeypatch, "cuda-python")
    assert device.find_provider()[0] == "pycuda"


def test_a_forced_provider_is_the_only_one_tried(monkeypatch):
    monkeypatch.setenv(device.PROVIDER_ENV, "torch")
    assert device.find_provider()[0] == "torch"
    block(monkeypatch, "pycuda")
    monkeypatch.setenv(device.PROVIDER_ENV, "pycuda")
    with pytest.raises(MissingDependencyError) as caught:
        device.find_provider()
    assert "from pycuda (SIMAM_CUDA_PYTHON)" in caught.value.message
    assert "cuda-python:" not in caught.value.message and "torch:" not in caught.value.message
    assert "unset SIMAM_CUDA_PYTHON" in caught.value.hint


def test_an_unknown_provider_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(device.PROVIDER_ENV, "cupy")
    with pytest.raises(InputError, match="unknown CUDA Python package 'cupy'"):
        device.find_provider()


needs_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without a GPU"
)


@needs_no_gpu
@pytest.mark.parametrize("provider", device.PROVIDERS)
def test_each_installed_provider_says_a_gpu_is_needed_at_its_first_device_call(provider):
    if not _importable(provider):
        pytest.skip(f"{provider} is not installed")
    with pytest.raises(MissingDependencyError, match="TensorRT engines need an NVIDIA GPU") as caught:
        device.open_device(provider)
    assert provider in caught.value.message and caught.value.exit_code == 2


def test_the_runner_asks_for_device_buffers_before_it_needs_tensorrt(monkeypatch, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(os.urandom(4096))
    block(monkeypatch, *device.PROVIDERS)
    for name in ("tensorrt", "tensorrt_rtx_bindings"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match="GPU buffers from cuda-python, pycuda or torch"):
        TensorRTRunner(engine)


def test_bfloat16_travels_as_the_bit_pattern_torch_casts_to():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(4096).astype(np.float32) * 1e3,
            np.array([0.0, -0.0, np.inf, -np.inf, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38], np.float32),
        ]
    )
    want = torch.from_numpy(x).bfloat16()
    bits = _bf16_bits(x)
    assert np.array_equal(bits, want.view(torch.int16).numpy().view(np.uint16))
    assert np.array_equal(_bf16_to_float(bits), want.float().numpy())
    nan = _bf16_bits(np.array([np.nan], np.float32))
    assert np.isnan(_bf16_to_float(nan)).all()


def test_engine_tensor_types_map_to_host_dtypes_with_the_real_module():
    from simam_deploy.backends.tensorrt.runner import _is_bf16, _numpy_dtype
    from simam_deploy.backends.tensorrt.runtime import import_runtime

    try:
        trt = import_runtime("auto").module
    except MissingDependencyError as exc:
        pytest.skip(f"no TensorRT Python package: {exc.message}")
    assert _numpy_dtype(trt, trt.DataType.FLOAT) == np.float32
    assert _numpy_dtype(trt, trt.DataType.HALF) == np.float16
    assert _numpy_dtype(trt, trt.DataType.INT32) == np.int32
    if hasattr(trt.DataType, "BF16"):
        assert _numpy_dtype(trt, trt.DataType.BF16) == np.float32 and _is_bf16(trt, trt.DataType.BF16)
    assert not _is_bf16(trt, trt.DataType.FLOAT)


@needs_no_gpu
@pytest.mark.skipif(not _importable("cuda-python"), reason="cuda-python is not installed")
def test_every_cuda_python_call_is_marshalled_by_the_real_bindings():
    """Each method's call reaches the driver (which, absent, answers with an error code) instead of
    failing in the bindings on a wrong argument type or count: the signatures are the real ones."""
    _, cudart = device.find_provider("cuda-python")
    memory = object.__new__(device.CudaPython)  # __init__ stops at the missing GPU (tested above)
    memory.rt, memory.stream, memory.stream_handle = cudart, cudart.cudaStream_t(), 0
    host = np.zeros(4, np.float32)
    calls = {
        "cudaMalloc": lambda: memory.allocate(16),
        "cudaFree": lambda: memory.free(0),
        "cudaMemcpyAsync": lambda: memory.to_device(0, host),
        "cudaStreamSynchronize": memory.synchronize,
        "cudaEventCreate": memory.record_event,
        "cudaEventSynchronize": lambda: memory.elapsed_ms(cudart.cudaEvent_t(), cudart.cudaEvent_t()),
        "cudaStreamBeginCapture": lambda: memory.capture(lambda: None),
    }
    for call, run in calls.items():
        with pytest.raises(MissingDependencyError, match=f"CUDA call {call} failed: cudaError"):
            run()
    with pytest.raises(MissingDependencyError, match="cudaMemcpyAsync failed"):
        memory.to_host(host, 0)
