"""Load and save ONNX files for the graph tools, with errors a user can act on."""

from __future__ import annotations

import os

import onnx

from simam_deploy.fileio import atomic_output
from simam_deploy.graph.contract import default_opset
from simam_deploy.onnx_utils import cap_ir_version, load_onnx


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file (missing, corrupt, non-ONNX, external-data files refused) of a known opset."""
    model = load_onnx(path)
    default_opset(model)
    return model


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write atomically, with an IR version current ONNX Runtime can read."""
    cap_ir_version(model)
    with atomic_output(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
