"""SimAM as the paper defines it, a float64 functional reference, and model-swap helpers.

SimAM (Yang et al., ICML 2021), for every channel plane of X[N, C, H, W]:
    d = (x - mean)^2
    v = sum(d) / (H*W - 1)          (unbiased=True, the paper; unbiased=False divides by H*W)
    y = x * sigmoid(d / (4 * (v + e_lambda)) + 0.5)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

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


class SimAM(nn.Module):
    """Parameter-free SimAM attention.

    ``fused=False`` runs the decomposed formula in eager PyTorch (what the decomposed ONNX
    export traces); ``fused=True`` calls the fused kernel op ``simam_deploy.ops.simam``.
    ``unbiased`` selects the variance divisor (True: H*W-1 as in the paper; False: H*W).
    """

    def __init__(self, e_lambda: float = CIFAR_LAMBDA, unbiased: bool = True, fused: bool = False) -> None:
        super().__init__()
        self.e_lambda = _check_lambda(e_lambda)
        self.unbiased = bool(unbiased)
        self.fused = bool(fused)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}, unbiased={self.unbiased}, fused={self.fused}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            from simam_deploy import ops

            return ops.simam(x, self.e_lambda, self.unbiased)
        return simam_decomposed(x, self.e_lambda, self.unbiased)


def simam_decomposed(x: torch.Tensor, e_lambda: float, unbiased: bool = True) -> torch.Tensor:
    """The paper's formula in plain tensor ops (traceable; this is what the decomposed export emits)."""
    h, w = x.shape[2], x.shape[3]
    n = h * w - 1 if unbiased else h * w
    d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
    y = d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + e_lambda)) + 0.5
    return x * torch.sigmoid(y)


def find_simam_modules(model: nn.Module) -> list[tuple[str, SimAM]]:
    """(qualified name, module) of every SimAM in ``model``, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SimAM)]


def set_simam_fused(model: nn.Module, fused: bool = True) -> int:
    """Switch every SimAM in ``model`` to the fused kernel (or back); returns how many changed."""
    modules = find_simam_modules(model)
    for _, module in modules:
        module.fused = fused
    return len(modules)
