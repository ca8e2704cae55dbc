"""Backends run a deployed artefact on named numpy inputs and return named numpy outputs.

Every backend offers the same small interface (:class:`Runner`) so that ``validate`` and
``bench`` treat ONNX Runtime, TensorRT and PyTorch alike. Heavy imports happen lazily inside
each backend module, so ``import simam_deploy`` never needs TensorRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from simam_deploy.errors import InputError


@runtime_checkable
class Runner(Protocol):
    """A loaded model that maps named inputs to named outputs."""

    name: str

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        """(name, shape with symbolic/None dims for dynamic axes, numpy dtype) per input."""
        ...

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def load_runner(target: str | Path, *, providers: Sequence[str] | None = None, **options) -> Runner:
    """Open ``target`` with the backend its file type calls for (.onnx -> ONNX Runtime,
    .engine/.plan/.trt -> TensorRT)."""
    path = Path(target)
    if not path.exists():
        raise InputError(f"{path} does not exist", "check the path")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, providers=providers)
    if suffix in ENGINE_SUFFIXES:
        from simam_deploy.backends.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(path, **options)
    raise InputError(
        f"don't know how to run {path.name}: unknown file type {suffix or '(none)'}",
        f"use an ONNX file ({', '.join(ONNX_SUFFIXES)}) or a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})",
    )
