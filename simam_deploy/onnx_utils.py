"""Loading ONNX files safely: every problem becomes an InputError that names the fix."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from simam_deploy.errors import InputError

SIMAM_OP_TYPE = "SimAM"


def load_onnx(path: str | os.PathLike, *, check: bool = True) -> onnx.ModelProto:
    """Load ``path`` as an ONNX model; refuse missing, corrupt, non-ONNX and external-data files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist", "check the path")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty", "re-export the model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(
            f"{path} is not a readable ONNX file ({type(exc).__name__})",
            "give a .onnx model file (is it truncated, or another format?)",
        ) from exc
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path} parsed as ONNX but holds no graph", "is it really an ONNX model?")
    if uses_external_data(model):
        raise InputError(
            f"{path} keeps its weights in external data files",
            "re-save it with the weights inside (onnx.save(model, path, save_as_external_data=False)); "
            "models over 2 GB are not supported",
        )
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise InputError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from exc
    return model


def uses_external_data(model: onnx.ModelProto) -> bool:
    return any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)


def count_simam_nodes(model: onnx.ModelProto) -> int:
    return sum(node.op_type == SIMAM_OP_TYPE for node in model.graph.node)
