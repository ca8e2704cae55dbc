"""Backends run a deployed artefact on named numpy inputs and return named numpy outputs.

Every backend offers the same small interface (:class:`Runner`) so that ``validate`` and ``bench``
treat ONNX Runtime, TensorRT, OpenVINO and PyTorch alike. Each backend is one package here whose
``__init__`` states a :class:`Backend`: what it can do (:class:`Capabilities`), which files it opens,
and where its runner, native library and per-layer probe live (as ``module:attribute`` strings, so
nothing heavy is imported until it is used: ``import simam_deploy`` never needs TensorRT or OpenVINO).

Adding a backend: a folder ``backends/<name>/`` with ``BACKEND = Backend(...)`` in its ``__init__``,
and its name in :data:`PACKAGES` below (see ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simam_deploy.errors import InputError

# The registry: one line per backend package. The order is the order of preference when several
# backends open the same file type (an .onnx file runs on ONNX Runtime unless --backend says otherwise).
PACKAGES: tuple[str, ...] = ("tensorrt", "onnxruntime", "openvino", "torch")

# The precisions anything in simam-deploy speaks of (export, convert, build, validate, bench).
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")


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


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as a user choosing one needs to know it."""

    precisions: tuple[str, ...]  # element types it computes in (subset of PRECISIONS)
    devices: tuple[str, ...]  # "cpu", "cuda", ...
    dynamic_shapes: bool  # runs one loaded model at several input shapes
    custom_op: str  # how a fused SimAM node runs there

    def to_dict(self) -> dict[str, Any]:
        return {
            "precisions": list(self.precisions),
            "devices": list(self.devices),
            "dynamic_shapes": self.dynamic_shapes,
            "custom_op": self.custom_op,
        }


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Backend:
    """One backend: its capabilities and, by ``module:attribute``, the code behind them.

    ``runner``: a callable ``(target, **options) -> Runner``; ``target`` is a path of one of
    ``suffixes`` (or an ``onnx.ModelProto`` when ``.onnx`` is one of them). ``library``: a callable
    ``() -> Path`` finding our native library for this backend (``simam-deploy libs``). ``probe``:
    the per-layer probe ``(runner, target, model, shapes, **options) -> (ProbedRunner, blocks)``."""

    name: str
    label: str
    capabilities: Capabilities
    suffixes: tuple[str, ...] = ()  # file types it opens; () = runs a PyTorch model, not a file
    runner: str | None = None
    library: str | None = None
    probe: str | None = None
    options: tuple[str, ...] = field(default=())  # the runner options its loader takes

    def load(self, target: Any, **options: Any) -> Runner:
        """Open ``target`` with this backend. Options left as None are not passed; an option this
        backend does not take is an input error naming it (never silently dropped)."""
        if self.runner is None:
            raise InputError(
                f"the {self.name} backend runs PyTorch models, not files", "use another --backend"
            )
        given = {k: v for k, v in options.items() if v is not None}
        loader: Callable[..., Runner] = _resolve(self.runner)
        accepted = set(inspect.signature(loader).parameters)
        unknown = sorted(set(given) - accepted)
        if unknown:
            raise InputError(
                f"the {self.name} backend has no option {', '.join(unknown)}",
                f"drop it, or choose a backend that takes it ({self.name} takes: "
                f"{', '.join(sorted(accepted - {'target', 'model', 'path'})) or 'no options'})",
            )
        return loader(target, **given)

    def find_library(self) -> Path:
        """Our native library for this backend; raises (saying how to build it) when it is missing."""
        if self.library is None:
            raise InputError(f"the {self.name} backend loads no native library of ours")
        return Path(_resolve(self.library)())

    def per_layer_probe(self) -> Callable[..., Any]:
        if self.probe is None:
            raise InputError(
                f"--per-layer is not available on the {self.name} backend",
                f"drop --per-layer, or use {' or '.join(b.name for b in backends() if b.probe)}",
            )
        return _resolve(self.probe)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "suffixes": list(self.suffixes),
            **self.capabilities.to_dict(),
            "native_library": self.library is not None,
            "per_layer": self.probe is not None,
        }


@cache
def registry() -> dict[str, Backend]:
    """Every backend by name, in :data:`PACKAGES` order."""
    found = {}
    for package in PACKAGES:
        backend: Backend = importlib.import_module(f"{__name__}.{package}").BACKEND
        found[backend.name] = backend
    return found


def backends() -> list[Backend]:
    return list(registry().values())


def file_backends(suffix: str | None = None) -> list[Backend]:
    """Backends that open files (of ``suffix``, when given), in order of preference."""
    return [b for b in backends() if b.suffixes and (suffix is None or suffix.lower() in b.suffixes)]


def get_backend(name: str) -> Backend:
    try:
        return registry()[name]
    except KeyError:
        raise InputError(f"unknown backend {name!r}", f"use one of {', '.join(registry())}") from None


def suffixes(backend: str) -> tuple[str, ...]:
    return get_backend(backend).suffixes


def backend_for(target: str | os.PathLike, backend: str | None = None) -> Backend:
    """The backend that runs ``target``: ``backend`` when named (checked against the file type), else
    the first registered backend that opens its file type."""
    suffix = Path(target).suffix.lower()
    if backend is not None:
        chosen = get_backend(backend)
        if suffix not in chosen.suffixes:
            raise InputError(
                f"the {chosen.name} backend cannot run {Path(target).name}: it opens "
                f"{', '.join(chosen.suffixes) or 'PyTorch models only'}",
                "use "
                + (" or ".join(b.name for b in file_backends(suffix)) or "a file type some backend opens")
                + f" for {suffix or 'this file'}",
            )
        return chosen
    candidates = file_backends(suffix)
    if not candidates:
        known = ", ".join(dict.fromkeys(s for b in file_backends() for s in b.suffixes))
        raise InputError(
            f"don't know how to run {Path(target).name}: unknown file type {suffix or '(none)'}",
            f"use a file of type {known}",
        )
    return candidates[0]


# Kept for callers that sort files by kind (bench's target kinds).
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def load_runner(target: str | os.PathLike, *, backend: str | None = None, **options: Any) -> Runner:
    """Open ``target`` with ``backend``, or with the backend its file type calls for (.onnx -> ONNX
    Runtime, .engine/.plan/.trt -> TensorRT). ``options`` go to that backend's loader."""
    path = Path(target)
    if not path.exists():
        raise InputError(f"{path} does not exist", "check the path")
    return backend_for(path, backend).load(path, **options)


def backend_names(
    kind: Callable[[Backend], bool] = lambda b: True, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """Names of the backends ``kind`` accepts (for click choices), then ``extra``."""
    return (*(b.name for b in backends() if kind(b)), *extra)
