"""Load and save ONNX files for the graph tools, with errors a user can act on."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from simam_deploy.errors import InputError
from simam_deploy.fileio import atomic_output
from simam_deploy.graph.contract import default_opset

# onnxruntime 1.31 reads IR versions up to 13 while onnx 1.23 writes 14 by default; IR 10 covers
# opsets up to 22 and IR 11 opset 23, so files stay readable by older runtimes too.
def readable_ir_version(opset: int) -> int:
    return 10 if opset <= 22 else 11


def _uses_external_data(model: onnx.ModelProto) -> bool:
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors)


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file; refuse missing, corrupt, non-ONNX and external-data files clearly."""
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src} does not exist or is not a file", "check the path")
    try:
        model = onnx.load(str(src), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise InputError(
            f"{src} is not a readable ONNX model ({type(exc).__name__}: {exc})",
            "pass an .onnx file written by an ONNX exporter",
        ) from exc
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{src} holds no ONNX graph (empty or not an ONNX file)", "pass an .onnx model file")
    if _uses_external_data(model):
        raise InputError(
            f"{src} keeps its weights in external data files, which the graph tools do not rewrite",
            "inline them first: onnx.save(onnx.load(path), 'inlined.onnx') (models under 2 GiB)",
        )
    default_opset(model)
    return model


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write atomically; the IR version is capped so current ONNX Runtime can read the file."""
    model.ir_version = min(model.ir_version, readable_ir_version(default_opset(model)))
    with atomic_output(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
