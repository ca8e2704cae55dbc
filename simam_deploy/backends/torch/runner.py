"""PyTorch backend: the reference side of every parity check."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from simam_deploy.errors import UserModelError


def tensor_outputs(out: object) -> tuple[torch.Tensor, ...]:
    """A model's outputs as a tuple of tensors (a tensor, or a tuple/list/dict of them); anything
    else breaks the contract of the user's model: their error (exit 2), not a crash further on."""
    if isinstance(out, dict):
        outs = tuple(out.values())
    else:
        outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    wrong = [type(t).__name__ for t in outs if not isinstance(t, torch.Tensor)]
    if wrong or not outs:
        raise UserModelError(
            f"the PyTorch model's forward returned {type(out).__name__}"
            + (f" holding {', '.join(wrong)}" if wrong and isinstance(out, (tuple, list, dict)) else "")
            + ", not a tensor (or a tuple, list or dict of tensors)",
            "return the network's output tensors from forward()",
        )
    return outs


class TorchRunner:
    """Runs an nn.Module on named numpy inputs (float64 inputs are cast to the model's dtype)."""

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self._input_names = input_names or ["input"]
        self._output_names = output_names or ["output"]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        return [(n, ("batch", None, None, None), np.dtype(np.float32)) for n in self._input_names]

    @torch.inference_mode()
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self._input_names]
        out = self.model(*args)
        outs = tensor_outputs(out)
        return {
            name: t.detach().float().cpu().numpy() for name, t in zip(self._output_names, outs, strict=False)
        }
