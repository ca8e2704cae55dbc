"""The fused SimAM kernels from Python: a ``torch.library`` op and a numpy entry point.

``simam(x, e_lambda, unbiased)`` calls ``torch.ops.simam_deploy.simam``, one opaque op that
``torch.compile`` and ``torch.export`` keep whole. It runs the native kernels of
``simam_deploy._C`` (plugins/simam): the CPU kernel for CPU tensors, the CUDA kernel (on the
tensor's device and current stream) for CUDA tensors.

Contract of the op (shared with the ONNX node and the TensorRT plugin):
  * input: a 4-D NCHW tensor of float32, float16 or bfloat16; a non-contiguous input (e.g.
    channels_last) is copied to contiguous NCHW first, and the output is contiguous NCHW;
  * an empty tensor (some dimension 0) returns an empty tensor without calling a kernel;
  * statistics accumulate in fp32 whatever the dtype; NaN/Inf in a plane make that whole plane
    NaN, as the float64 reference does, and never touch other planes;
  * e_lambda must be finite and > 0; a 1x1 plane needs ``unbiased=False`` (H*W-1 would be 0).
Gradients: the backward pass differentiates the decomposed formula in fp32 (inference is the
purpose; the backward exists so a fused model can still be fine-tuned).

The fused epilogue (keyword arguments of ``simam`` and ``simam_numpy``; op
``torch.ops.simam_deploy.simam_epilogue``): ``act(SimAM(x) * scale[c] + bias[c] + residual)`` in one
pass, fp32 math and one rounding: ``scale``/``bias`` 1-D with C elements (both or neither, e.g. a
folded BatchNorm), ``residual`` of x's shape, ``activation`` "none", "relu" or "silu"; all of x's
dtype and device. Without them the plain op runs, unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.formula import CIFAR_LAMBDA, _check_lambda, apply_epilogue, simam_decomposed

REBUILD_HINT = (
    "put the CUDA compiler nvcc on PATH (or set CUDACXX), then rebuild from the repository root with "
    "`pip install -e . --no-build-isolation`"
)
BUILD_HINT = "build it from the repository root with `pip install -e . --no-build-isolation`"

DTYPE_CODES: dict[torch.dtype, int] = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def _native() -> Any:
    try:
        import simam_deploy._C as _C  # compiled, no stub: see the mypy overrides in pyproject.toml
    except ImportError as exc:
        raise MissingDependencyError(
            f"the native extension simam_deploy._C is not available ({exc})", BUILD_HINT
        ) from exc
    return _C


def native_available() -> bool:
    """True when ``simam_deploy._C`` imports (the package was built, not just copied)."""
    try:
        _native()
    except MissingDependencyError:
        return False
    return True


def has_cuda() -> bool:
    """True when the extension was compiled with the CUDA kernels (says nothing about a GPU being present)."""
    return native_available() and bool(_native().has_cuda())


def _check_shape(shape: tuple[int, ...], unbiased: bool) -> None:
    if len(shape) != 4:
        raise InputError(
            f"SimAM expects a 4-D NCHW tensor, got {len(shape)}-D shape {tuple(shape)}",
            "reshape to [N, C, H, W] (add a batch dimension with x[None] for a single image)",
        )
    if unbiased and shape[2] * shape[3] == 1 and all(d > 0 for d in shape):
        raise InputError(
            f"SimAM with unbiased=True divides by H*W-1, which is 0 for the 1x1 planes of {tuple(shape)}",
            "use unbiased=False for 1x1 feature maps, or apply SimAM before the spatial size reaches 1x1",
        )


def _check_tensor(x: torch.Tensor, unbiased: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"SimAM expects a torch.Tensor, got {type(x).__name__}")
    _check_shape(tuple(x.shape), unbiased)
    if x.dtype not in DTYPE_CODES:
        raise InputError(
            f"the fused SimAM kernel supports float32, float16 and bfloat16, got {x.dtype}",
            "convert first, e.g. x.float(), or use simam_deploy.formula.simam_decomposed for other dtypes",
        )


def _launch_cuda(x: torch.Tensor, y: torch.Tensor, e_lambda: float, unbiased: bool) -> None:
    native = _native()
    if not native.has_cuda():
        raise MissingDependencyError(
            f"got a CUDA tensor ({x.device}) but simam_deploy._C was built without the CUDA kernels",
            REBUILD_HINT,
        )
    n, c, h, w = x.shape
    code = DTYPE_CODES[x.dtype]
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        workspace_bytes = native.cuda_workspace_size(n, c, h, w, code)
        # From torch's caching allocator, stream-ordered on the same stream: freed safely.
        workspace = (
            torch.empty(workspace_bytes, dtype=torch.uint8, device=x.device) if workspace_bytes else None
        )
        workspace_ptr = workspace.data_ptr() if workspace is not None else 0
        native.forward_cuda(
            x.data_ptr(), y.data_ptr(), n, c, h, w, code, e_lambda, unbiased,
            stream, workspace_ptr, workspace_bytes,
        )  # fmt: skip


@torch.library.custom_op("simam_deploy::simam", mutates_args=())
def _simam_op(x: torch.Tensor, e_lambda: float, unbiased: bool) -> torch.Tensor:
    _check_tensor(x, unbiased)
    e_lambda = _check_lambda(e_lambda)
    x = x.contiguous()
    y = torch.empty_like(x)
    if x.numel() == 0:
        return y
    if x.device.type == "cpu":
        n, c, h, w = x.shape
        _native().forward_cpu(
            x.data_ptr(), y.data_ptr(), n, c, h, w, DTYPE_CODES[x.dtype], e_lambda, unbiased
        )
    elif x.device.type == "cuda":
        _launch_cuda(x, y, e_lambda, unbiased)
    else:
        raise InputError(
            f"the fused SimAM kernel runs on cpu and cuda tensors, got {x.device}", "move the tensor"
        )
    return y


@_simam_op.register_fake
def _simam_fake(x: torch.Tensor, e_lambda: float, unbiased: bool) -> torch.Tensor:
    _check_tensor(x, unbiased)
    _check_lambda(e_lambda)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_backward(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, e_lambda, unbiased = inputs
    ctx.save_for_backward(x)
    ctx.e_lambda = e_lambda
    ctx.unbiased = unbiased


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
    (x,) = ctx.saved_tensors
    with torch.enable_grad():
        xf = x.detach().float().requires_grad_(True)
        yf = simam_decomposed(xf, ctx.e_lambda, ctx.unbiased)
        (gx,) = torch.autograd.grad(yf, xf, grad.float())
    return gx.to(x.dtype), None, None


_simam_op.register_autograd(_backward, setup_context=_setup_backward)


# ---- the fused epilogue ----------------------------------------------------------------------
ACTIVATIONS = ("none", "relu", "silu")  # index = the C API's simam_activation code


def _activation_code(activation: str) -> int:
    if activation not in ACTIVATIONS:
        raise InputError(
            f"unknown SimAM epilogue activation {activation!r}",
            f"use one of {', '.join(ACTIVATIONS)}",
        )
    return ACTIVATIONS.index(activation)


def _check_epilogue(
    shape: tuple[int, ...],
    dtype: Any,
    scale: Any,
    bias: Any,
    residual: Any,
    activation: str,
) -> int:
    """Checks the epilogue's operands against x (shape, dtype); returns the activation code."""
    if (scale is None) != (bias is None):
        raise InputError(
            "the SimAM epilogue takes scale and bias together, got only "
            + ("bias" if scale is None else "scale"),
            "pass scale=ones(C) for a bias alone, bias=zeros(C) for a scale alone",
        )
    for name, t in (("scale", scale), ("bias", bias)):
        if t is not None and tuple(t.shape) != (shape[1],):
            raise InputError(
                f"SimAM epilogue {name} must be 1-D with C={shape[1]} elements, got shape {tuple(t.shape)}",
                "one value per channel (a folded BatchNorm: scale = gamma / sqrt(var + eps))",
            )
    if residual is not None and tuple(residual.shape) != tuple(shape):
        raise InputError(
            f"SimAM epilogue residual must have x's shape {tuple(shape)}, got {tuple(residual.shape)}",
            "pass the tensor added after SimAM in the block",
        )
    for name, t in (("scale", scale), ("bias", bias), ("residual", residual)):
        if t is not None and t.dtype != dtype:
            got, want = (str(d).removeprefix("torch.") for d in (t.dtype, dtype))
            raise InputError(
                f"SimAM epilogue {name} is {got} but x is {want}", f"convert {name} to x's dtype"
            )
    return _activation_code(activation)


def _epilogue_decomposed(
    x: torch.Tensor,
    e_lambda: float,
    unbiased: bool,
    scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str,
) -> torch.Tensor:
    return apply_epilogue(simam_decomposed(x, e_lambda, unbiased), scale, bias, residual, activation)


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


@torch.library.custom_op("simam_deploy::simam_epilogue", mutates_args=())
def _simam_epilogue_op(
    x: torch.Tensor,
    e_lambda: float,
    unbiased: bool,
    scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str,
) -> torch.Tensor:
    _check_tensor(x, unbiased)
    e_lambda = _check_lambda(e_lambda)
    act = _check_epilogue(tuple(x.shape), x.dtype, scale, bias, residual, activation)
    for name, t in (("scale", scale), ("bias", bias), ("residual", residual)):
        if t is not None and t.device != x.device:
            raise InputError(f"SimAM epilogue {name} is on {t.device} but x is on {x.device}", "move it")
    x = x.contiguous()
    scale, bias, residual = (None if t is None else t.contiguous() for t in (scale, bias, residual))
    y = torch.empty_like(x)
    if x.numel() == 0:
        return y
    n, c, h, w = x.shape
    args = (x.data_ptr(), y.data_ptr(), n, c, h, w, DTYPE_CODES[x.dtype], e_lambda, unbiased)
    epilogue = {"scale": _ptr(scale), "bias": _ptr(bias), "residual": _ptr(residual), "activation": act}
    native = _native()
    if x.device.type == "cpu":
        native.run_cpu(*args, **epilogue)
    elif x.device.type == "cuda":
        if not native.has_cuda():
            raise MissingDependencyError(
                f"got a CUDA tensor ({x.device}) but simam_deploy._C was built without the CUDA kernels",
                REBUILD_HINT,
            )
        with torch.cuda.device(x.device):
            stream = torch.cuda.current_stream(x.device).cuda_stream
            workspace_bytes = native.run_cuda_workspace_size(n, c, h, w, DTYPE_CODES[x.dtype])
            workspace = (
                torch.empty(workspace_bytes, dtype=torch.uint8, device=x.device) if workspace_bytes else None
            )
            native.run_cuda(
                *args, **epilogue, stream=stream, workspace=_ptr(workspace), workspace_bytes=workspace_bytes
            )
    else:
        raise InputError(
            f"the fused SimAM kernel runs on cpu and cuda tensors, got {x.device}", "move the tensor"
        )
    return y


@_simam_epilogue_op.register_fake
def _simam_epilogue_fake(
    x: torch.Tensor,
    e_lambda: float,
    unbiased: bool,
    scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str,
) -> torch.Tensor:
    _check_tensor(x, unbiased)
    _check_lambda(e_lambda)
    _check_epilogue(tuple(x.shape), x.dtype, scale, bias, residual, activation)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_epilogue_backward(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, e_lambda, unbiased, scale, bias, residual, activation = inputs
    ctx.save_for_backward(x, scale, bias, residual)
    ctx.e_lambda, ctx.unbiased, ctx.activation = e_lambda, unbiased, activation


def _epilogue_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    saved = ctx.saved_tensors
    with torch.enable_grad():
        inputs = [None if t is None else t.detach().float().requires_grad_(True) for t in saved]
        x, scale, bias, residual = inputs
        assert x is not None  # x is always saved; the others may be None
        z = _epilogue_decomposed(x, ctx.e_lambda, ctx.unbiased, scale, bias, residual, ctx.activation)
        wanted = [t for t in inputs if t is not None]
        grads = iter(torch.autograd.grad(z, wanted, grad.float()))
    out = [None if t is None else next(grads).to(s.dtype) for t, s in zip(inputs, saved, strict=True)]
    return out[0], None, None, out[1], out[2], out[3], None


_simam_epilogue_op.register_autograd(_epilogue_backward, setup_context=_setup_epilogue_backward)


def simam(
    x: torch.Tensor,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
    *,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    activation: str = "none",
) -> torch.Tensor:
    """Fused SimAM of a 4-D NCHW tensor, optionally with the fused epilogue (see the module
    docstring for the contract)."""
    if scale is None and bias is None and residual is None and activation == "none":
        return torch.ops.simam_deploy.simam(x, float(e_lambda), bool(unbiased))
    return torch.ops.simam_deploy.simam_epilogue(
        x, float(e_lambda), bool(unbiased), scale, bias, residual, str(activation)
    )


# ---- numpy ----------------------------------------------------------------------------------
def _numpy_dtype_codes() -> dict[np.dtype, int]:
    codes = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}
    try:
        import ml_dtypes
    except ImportError:  # bfloat16 arrays need ml_dtypes; without it none can exist anyway
        return codes
    codes[np.dtype(ml_dtypes.bfloat16)] = 2
    return codes


def simam_numpy(
    x: np.ndarray,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
    *,
    scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    residual: np.ndarray | None = None,
    activation: str = "none",
) -> np.ndarray:
    """Fused SimAM of a 4-D NCHW numpy array on the CPU (float32, float16, ml_dtypes.bfloat16),
    optionally with the fused epilogue ``act(SimAM(x) * scale[c] + bias[c] + residual)``.

    Returns a new C-contiguous array of the same dtype; no input is ever modified.
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"simam_numpy expects a numpy array, got {type(x).__name__}")
    _check_shape(x.shape, unbiased)
    codes = _numpy_dtype_codes()
    if x.dtype not in codes:
        raise InputError(
            f"the fused SimAM kernel supports float32, float16 and bfloat16 arrays, got {x.dtype}",
            "convert first, e.g. x.astype(np.float32)",
        )
    e_lambda = _check_lambda(e_lambda)
    for name, a in (("scale", scale), ("bias", bias), ("residual", residual)):
        if a is not None and not isinstance(a, np.ndarray):
            raise InputError(f"simam_numpy's {name} must be a numpy array, got {type(a).__name__}")
    act = _check_epilogue(x.shape, x.dtype, scale, bias, residual, activation)
    x = np.ascontiguousarray(x)
    scale, bias, residual = (None if a is None else np.ascontiguousarray(a) for a in (scale, bias, residual))
    y = np.empty_like(x)
    if x.size == 0:
        return y
    n, c, h, w = x.shape
    native = _native()
    if scale is None and residual is None and act == 0:
        native.forward_cpu(x.ctypes.data, y.ctypes.data, n, c, h, w, codes[x.dtype], e_lambda, bool(unbiased))
        return y
    native.run_cpu(
        x.ctypes.data, y.ctypes.data, n, c, h, w, codes[x.dtype], e_lambda, bool(unbiased),
        scale=0 if scale is None else scale.ctypes.data,
        bias=0 if bias is None else bias.ctypes.data,
        residual=0 if residual is None else residual.ctypes.data,
        activation=act,
    )  # fmt: skip
    return y
