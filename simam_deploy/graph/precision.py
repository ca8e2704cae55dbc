"""Store a float32 ONNX model in float16 or bfloat16 (inputs, outputs, weights, activations).

Meant for the files this tool writes (convolutional networks with SimAM, fused or not): every
FLOAT tensor type, initializer, Constant value and Cast target becomes the new type; integer
tensors (shapes, indices) are left alone. ONNX Runtime's CPU provider runs ops that lack a
float16 kernel through float32 casts it inserts itself; SimAM nodes run the native kernel.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from simam_deploy.errors import InputError

_TARGETS = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}


def _retype_tensor(tensor: onnx.TensorProto, elem_type: int) -> onnx.TensorProto:
    if tensor.data_type != TensorProto.FLOAT:
        return tensor
    values = numpy_helper.to_array(tensor).astype(np.float32)
    out = onnx.helper.make_tensor(
        tensor.name, elem_type, values.shape, values.astype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    )
    return out


def _retype_value(value: onnx.ValueInfoProto, elem_type: int) -> None:
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type == TensorProto.FLOAT:
        tensor_type.elem_type = elem_type


def convert_float_model(model: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    """A copy of ``model`` with every float32 tensor stored as ``precision`` (float16 | bfloat16)."""
    if precision not in _TARGETS:
        raise InputError(f"unknown precision {precision!r}", f"use one of {', '.join(_TARGETS)}")
    elem_type = _TARGETS[precision]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if any(n.op_type in ("If", "Loop", "Scan") for n in graph.node):
        raise InputError("the model has subgraphs (If/Loop/Scan)", "convert models without control flow")
    if graph.initializer and any(t.data_location == TensorProto.EXTERNAL for t in graph.initializer):
        raise InputError("the model keeps its weights in external data", "load them into the model first")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        _retype_value(value, elem_type)
    new_inits = [_retype_tensor(t, elem_type) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(_retype_tensor(attr.t, elem_type))
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = elem_type
    return out
