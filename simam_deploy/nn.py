"""The SimAM module (decomposed or fused) and model-swap helpers; the math is in :mod:`simam_deploy.formula`.

SimAM (Yang et al., ICML 2021), for every channel plane of X[N, C, H, W]:
    d = (x - mean)^2
    v = sum(d) / (H*W - 1)          (unbiased=True, the paper; unbiased=False divides by H*W)
    y = x * sigmoid(d / (4 * (v + e_lambda)) + 0.5)
"""

from __future__ import annotations

import torch
from torch import nn

from simam_deploy.formula import (  # re-exported: the math lives in formula.py, below nn and ops
    CIFAR_LAMBDA,
    IMAGENET_LAMBDA,
    _check_lambda,
    simam_decomposed,
    simam_reference,
    simam_reference_numpy,
)

__all__ = [
    "CIFAR_LAMBDA",
    "IMAGENET_LAMBDA",
    "SimAM",
    "find_simam_modules",
    "set_simam_fused",
    "simam_decomposed",
    "simam_reference",
    "simam_reference_numpy",
]


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


def find_simam_modules(model: nn.Module) -> list[tuple[str, SimAM]]:
    """(qualified name, module) of every SimAM in ``model``, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SimAM)]


def set_simam_fused(model: nn.Module, fused: bool = True) -> int:
    """Switch every SimAM in ``model`` to the fused kernel (or back); returns how many changed."""
    modules = find_simam_modules(model)
    for _, module in modules:
        module.fused = fused
    return len(modules)
