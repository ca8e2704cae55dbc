"""SimAM's math in PyTorch, below both the module (:mod:`simam_deploy.nn`) and the fused op
(:mod:`simam_deploy.ops`), which both build on it without importing each other.

SimAM (Yang et al., ICML 2021), for every channel plane of X[N, C, H, W]:
    d = (x - mean)^2
    v = sum(d) / (H*W - 1)          (unbiased=True, the paper; unbiased=False divides by H*W)
    y = x * sigmoid(d / (4 * (v + e_lambda)) + 0.5)

and the fused epilogue of the ONNX contract (:mod:`simam_deploy.graph.contract`):
    z = act(y * scale[c] + bias[c] + residual),  act = none | relu | silu
"""

from __future__ import annotations

import math

import numpy as np
import torch

from simam_deploy.errors import InputError

CIFAR_LAMBDA = 1e-4
IMAGENET_LAMBDA = 0.1


def _check_lambda(e_lambda: float) -> float:
    e_lambda = float(e_lambda)
    if not math.isfinite(e_lambda) or e_lambda <= 0:
        raise InputError(
            f"SimAM e_lambda must be a finite number > 0, got {e_lambda!r}",
            "use 1e-4 (CIFAR models) or 0.1 (the authors' ImageNet models)",
        )
    return e_lambda


def simam_reference(x: torch.Tensor, e_lambda: float = CIFAR_LAMBDA, unbiased: bool = True) -> torch.Tensor:
    """The ground truth every parity test compares with: float64 on the CPU, returned as float64."""
    if x.dim() != 4:
        raise InputError(f"SimAM expects a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    x64 = x.detach().to(device="cpu", dtype=torch.float64)
    n_minus = x64.shape[2] * x64.shape[3] - (1 if unbiased else 0)
    d = (x64 - x64.mean(dim=(2, 3), keepdim=True)).pow(2)
    v = d.sum(dim=(2, 3), keepdim=True) / n_minus
    return x64 * torch.sigmoid(d / (4 * (v + e_lambda)) + 0.5)


def simam_reference_numpy(x: np.ndarray, e_lambda: float, unbiased: bool = True) -> np.ndarray:
    """:func:`simam_reference` for numpy arrays (ONNX-side checks): float64 in, float64 out."""
    return simam_reference(torch.from_numpy(np.asarray(x, dtype=np.float64)), e_lambda, unbiased).numpy()


EPILOGUE_ACTIVATIONS = ("none", "relu", "silu")


def apply_epilogue(
    z: torch.Tensor,
    scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str,
) -> torch.Tensor:
    """The epilogue's math, ``act(z * scale[c] + bias[c] + residual)``, in z's dtype and device (the
    one Python home of it: the float64 reference, the torch op's backward and the benchmark's
    decomposed block call this)."""
    if scale is not None and bias is not None:
        z = z * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    if residual is not None:
        z = z + residual
    if activation == "relu":
        z = torch.relu(z)
    elif activation == "silu":
        z = torch.nn.functional.silu(z)
    return z


def simam_epilogue_reference(
    x: torch.Tensor,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
    *,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    activation: str = "none",
) -> torch.Tensor:
    """SimAM with the fused epilogue, ``act(simam(x) * scale[c] + bias[c] + residual)``, in float64."""
    if (scale is None) != (bias is None):
        raise InputError("the SimAM epilogue takes scale and bias together", "pass both or neither")
    if activation not in EPILOGUE_ACTIVATIONS:
        raise InputError(
            f"unknown SimAM epilogue activation {activation!r}", f"use one of {EPILOGUE_ACTIVATIONS}"
        )
    z = simam_reference(x, e_lambda, unbiased)
    if scale is not None and bias is not None:
        channels = z.shape[1]
        s64 = scale.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        b64 = bias.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        if s64.numel() != channels or b64.numel() != channels:
            raise InputError(
                f"scale/bias have {s64.numel()}/{b64.numel()} elements, X has {channels} channels",
                "give one scale and one bias per channel",
            )
        scale, bias = s64, b64
    if residual is not None:
        if tuple(residual.shape) != tuple(z.shape):
            raise InputError(
                f"residual has shape {tuple(residual.shape)}, X {tuple(z.shape)}", "R takes X's shape"
            )
        residual = residual.detach().to(device="cpu", dtype=torch.float64)
    return apply_epilogue(z, scale, bias, residual, activation)


def simam_epilogue_reference_numpy(
    x: np.ndarray,
    e_lambda: float,
    unbiased: bool = True,
    *,
    scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    residual: np.ndarray | None = None,
    activation: str = "none",
) -> np.ndarray:
    """:func:`simam_epilogue_reference` for numpy arrays: float64 out."""

    def t(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))

    x64 = torch.from_numpy(np.asarray(x, dtype=np.float64))
    out = simam_epilogue_reference(
        x64, e_lambda, unbiased, scale=t(scale), bias=t(bias), residual=t(residual), activation=activation
    )
    return out.numpy()


def simam_decomposed(x: torch.Tensor, e_lambda: float, unbiased: bool = True) -> torch.Tensor:
    """The paper's formula in plain tensor ops (traceable; this is what the decomposed export emits)."""
    h, w = x.shape[2], x.shape[3]
    n = h * w - 1 if unbiased else h * w
    d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
    y = d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + e_lambda)) + 0.5
    return x * torch.sigmoid(y)
