"""PyTorch backend: the reference side of every parity check."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {
            name: t.detach().float().cpu().numpy() for name, t in zip(self._output_names, outs, strict=False)
        }
