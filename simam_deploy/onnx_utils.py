"""Loading ONNX files safely: every problem becomes an InputError that names the fix."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from simam_deploy.errors import InputError

SIMAM_OP_TYPE = "SimAM"

# The IR version every file we write or hand to ONNX Runtime carries: IR 10 covers every opset up
# to 22 and every ONNX Runtime >= 1.16 reads it, while onnx 1.23's helpers stamp IR 14 (which
# onnxruntime 1.31 refuses) even when nothing newer is used.
READABLE_IR_VERSION = 10
READABLE_IR_MAX_OPSET = 22


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ('' / ai.onnx) domain; 0 when the model does not import it."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def cap_ir_version(model: onnx.ModelProto) -> onnx.ModelProto:
    """Lower ``model.ir_version`` (in place) to READABLE_IR_VERSION when its opset allows; returns it."""
    if default_opset(model) <= READABLE_IR_MAX_OPSET:
        model.ir_version = min(model.ir_version, READABLE_IR_VERSION)
    return model


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
