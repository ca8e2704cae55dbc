"""OpenVINO runner: an ONNX file (or ModelProto) compiled for OpenVINO's CPU plugin.

Parity needs float32 arithmetic, and on CPUs with bf16 (or fp16) units OpenVINO's default inference
precision is the lower one: ``precision`` defaults to "fp32" and is passed as
``INFERENCE_PRECISION_HINT``, always, so a validation never measures bf16 rounding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from simam_deploy.errors import InputError, MissingDependencyError, SimamDeployError
from simam_deploy.graph import contract
from simam_deploy.onnx_utils import load_onnx, save_onnx

INSTALL_HINT = 'pip install "simam-deploy[openvino]" (OpenVINO for the CPU)'
# our precision names -> OpenVINO's element type names for INFERENCE_PRECISION_HINT
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError(f"OpenVINO cannot be imported ({exc})", INSTALL_HINT) from exc
    return openvino


def _shape(port: Any) -> tuple[int | str | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())


class OpenVINORunner:
    """Runs an ONNX file with OpenVINO; SimAM nodes through :mod:`.simam`'s frontend extension."""

    name = "openvino"

    def __init__(
        self,
        target: str | os.PathLike | onnx.ModelProto,
        device: str = "CPU",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        ov = import_openvino()
        if precision not in HINTS:
            raise InputError(f"unknown OpenVINO precision {precision!r}", f"use one of {', '.join(HINTS)}")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}", "e.g. --threads 1")
        # a file is vetted by the one loader (external-data locations confined to its folder) first
        proto = target if isinstance(target, onnx.ModelProto) else load_onnx(target, load_external=False)
        contract.validate_simam_nodes(proto)  # OpenVINO would otherwise meet an off-contract node
        core = ov.Core()
        if any(contract.is_simam_node(n) for n in proto.graph.node):
            from simam_deploy.backends.openvino.simam import conversion_extension

            core.add_extension(conversion_extension())
        # Threads are not pinned to cores (ONNX Runtime's default too): on a shared or containerised
        # machine OpenVINO's pinning put its thread on a busy core (cifar-resnet20 batch 1: 4.6 vs 1.5 ms).
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "ENABLE_CPU_PINNING": "NO"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self.precision, self.device = precision, device
        try:
            self.compiled = self._compile(core, target, device, config)
        except SimamDeployError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError/GeneralFailure/... with its message
            raise InputError(
                f"OpenVINO cannot load the model: {str(exc).strip().splitlines()[0]}",
                "check the file with `python -m onnx.checker`, or run it on --backend onnxruntime",
            ) from exc
        self.request = self.compiled.create_infer_request()
        self._inputs = [p.get_any_name() for p in self.compiled.inputs]
        self._outputs = [p.get_any_name() for p in self.compiled.outputs]

    @staticmethod
    def _compile(core: Any, target: str | os.PathLike | onnx.ModelProto, device: str, config: dict) -> Any:
        if not isinstance(target, onnx.ModelProto):
            return core.compile_model(core.read_model(str(target)), device, config)  # data beside the file
        # an in-memory model (per-layer probes): through a private folder, compiled before it goes away
        with tempfile.TemporaryDirectory(prefix="simam-openvino-") as folder:
            path = Path(folder) / "model.onnx"
            save_onnx(target, path)
            return core.compile_model(core.read_model(str(path)), device, config)

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        return [
            (p.get_any_name(), _shape(p), np.dtype(p.get_element_type().to_dtype()))
            for p in self.compiled.inputs
        ]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self.request.infer({n: np.ascontiguousarray(inputs[n]) for n in self._inputs})
        except KeyError as exc:
            raise InputError(f"no value given for input {exc}", f"give {', '.join(self._inputs)}") from None
        except Exception as exc:
            raise InputError(
                f"OpenVINO failed to run the model: {str(exc).strip().splitlines()[0]}",
                "check the input shapes and dtypes against the model",
            ) from exc
        by_port = {p.get_any_name(): np.array(results[p]) for p in self.compiled.outputs}
        return {n: by_port[n] for n in self._outputs}
