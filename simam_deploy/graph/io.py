"""Load and save ONNX files for the graph tools, with errors a user can act on.

Files with external data (torch's dynamo exporter writes ``model.onnx.data``) are read with their
weights; outputs keep the input's layout under ``external_data="auto"``.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from simam_deploy.graph.contract import default_opset
from simam_deploy.onnx_utils import external_data_files, load_onnx, protected_files, save_onnx


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file (and its external data) of an opset the graph tools know."""
    model = load_onnx(path)
    default_opset(model)
    return model


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    external_data: str = "auto",
) -> list[Path]:
    """Write atomically (with an IR version current ONNX Runtime reads); returns the files written.

    ``source`` is the file the model was read from: with ``external_data="auto"`` the output keeps
    its weights outside when the source did, and the source and its data files are never overwritten.
    """
    source_external = bool(source) and bool(external_data_files(source))
    protect = protected_files(source) if source else []
    return save_onnx(
        model, path, external_data=external_data, source_external=source_external, protect=protect
    )
