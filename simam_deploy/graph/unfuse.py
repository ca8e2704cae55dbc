"""Expand every ``SimAM`` node back into standard ONNX ops, for the file's own opset.

The expansion is the paper's formula: ``d = (x - mean_HW(x))^2``,
``y = x * sigmoid(d / (4 * (sum_HW(d) / n + e_lambda)) + 0.5)`` with ``n = H*W - unbiased``, then a
fused epilogue's standard ops: ``Mul``/``Add`` by scale/bias reshaped to [1,C,1,1], ``Add`` of the
residual, ``Relu`` or ``t * Sigmoid(t)``.
``n`` is a constant when H and W are known and is computed with Shape/Gather/ReduceProd when they
are dynamic. ReduceSum takes its axes as an input from opset 13, ReduceMean only from opset 18.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

from simam_deploy.graph import contract
from simam_deploy.graph.function import remove_simam_function
from simam_deploy.graph.fuse import finalize


class _Emitter:
    """Builds the standard-op nodes of one SimAM node with unique names under ``prefix``."""

    def __init__(self, prefix: str, opset: int, elem_type: int) -> None:
        self.prefix = prefix
        self.opset = opset
        self.elem_type = elem_type
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, tag: str) -> str:
        self._count += 1
        return f"{self.prefix}/{tag}_{self._count}"

    def const(self, tag: str, value: np.ndarray | float, elem_type: int | None = None) -> str:
        name = self.name(tag)
        dtype = helper.tensor_dtype_to_np_dtype(elem_type or self.elem_type)
        if (elem_type or self.elem_type) == onnx.TensorProto.BFLOAT16:
            tensor = helper.make_tensor(
                name, onnx.TensorProto.BFLOAT16, np.shape(value), np.ravel(value).tolist()
            )
        else:
            tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self.name(op_type) + "_out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes_from_opset: int) -> str:
        """Reduce over H,W with keepdims=1; axes as attribute before ``axes_from_opset``."""
        if self.opset < axes_from_opset:
            return self.op(op_type, [x], axes=[2, 3], keepdims=1)
        axes = self.const("axes", np.array([2, 3], dtype=np.int64), onnx.TensorProto.INT64)
        return self.op(op_type, [x, axes], keepdims=1)

    def divisor(self, x: str, dims: list[int | str | None] | None, unbiased: bool) -> str:
        """n = H*W - unbiased as a scalar of the input's type (constant if H and W are known)."""
        if dims is not None and len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]):
            return self.const("n", float(dims[2] * dims[3] - int(unbiased)))
        shape = self.op("Shape", [x])
        hw = self.op(
            "Gather", [shape, self.const("hw_idx", np.array([2, 3], np.int64), onnx.TensorProto.INT64)]
        )
        count = self.op("ReduceProd", [hw], keepdims=0)
        if unbiased:
            count = self.op("Sub", [count, self.const("one", np.array(1, np.int64), onnx.TensorProto.INT64)])
        return self.op("Cast", [count], to=self.elem_type)


def _expand(node: onnx.NodeProto, attrs: contract.SimamAttributes, opset: int, types: dict) -> _Emitter:
    x, y = node.input[0], node.output[0]
    x_type = types.get(x)
    elem = x_type.tensor_type.elem_type if x_type is not None and x_type.tensor_type.elem_type else 1
    dims = None
    if x_type is not None and x_type.tensor_type.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in x_type.tensor_type.shape.dim]
    em = _Emitter(node.name or f"SimAM_{y}", opset, elem)
    mean = em.reduce("ReduceMean", x, axes_from_opset=18)
    dev = em.op("Sub", [x, mean])
    d = em.op("Mul", [dev, dev])
    total = em.reduce("ReduceSum", d, axes_from_opset=13)
    var = em.op("Div", [total, em.divisor(x, dims, attrs.unbiased)])
    shifted = em.op("Add", [var, em.const("e_lambda", attrs.e_lambda)])
    den = em.op("Mul", [shifted, em.const("four", 4.0)])
    energy = em.op("Add", [em.op("Div", [d, den]), em.const("half", 0.5)])
    if not attrs.has_epilogue:
        em.op("Mul", [x, em.op("Sigmoid", [energy])], output=y)
        return em
    z = em.op("Mul", [x, em.op("Sigmoid", [energy])])
    steps: list[tuple[str, str]] = []  # (op, operand) in the contract's order
    if attrs.affine:
        shape = em.const("per_channel", np.array([1, -1, 1, 1], np.int64), onnx.TensorProto.INT64)
        steps += [
            ("Mul", em.op("Reshape", [node.input[1], shape])),
            ("Add", em.op("Reshape", [node.input[2], shape])),
        ]
    if attrs.residual:
        steps.append(("Add", node.input[attrs.input_count - 1]))
    if attrs.activation == "relu":
        steps.append(("Relu", ""))
    elif attrs.activation == "silu":
        steps.append(("SiLU", ""))
    for i, (op, operand) in enumerate(steps):
        out = y if i == len(steps) - 1 else None
        if op == "Relu":
            z = em.op("Relu", [z], output=out)
        elif op == "SiLU":
            z = em.op("Mul", [z, em.op("Sigmoid", [z])], output=out)
        else:
            z = em.op(op, [z, operand], output=out)
    return em


def unfuse_simam(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every SimAM node replaced by standard ops (no-op copy if none).

    The expansion is the body of the local SimAM function, inlined (with ``H*W - unbiased`` folded
    to a constant where the shape is known); the function itself is dropped.
    """
    opset = contract.default_opset(model)
    found = contract.validate_simam_nodes(model)
    out = copy.deepcopy(model)
    if not found:
        return out
    remove_simam_function(out)
    inferred = onnx.shape_inference.infer_shapes(out, strict_mode=False)
    types = contract.value_types(inferred)
    new_nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if not contract.is_simam_node(node):
            new_nodes.append(node)
            continue
        em = _expand(node, contract.read_attributes(node), opset, types)
        new_nodes.extend(em.nodes)
        out.graph.initializer.extend(em.initializers)
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    still_used = any(n.domain == contract.DOMAIN for n in out.graph.node)
    if not still_used:
        imports = [op for op in out.opset_import if op.domain != contract.DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(imports)
    return finalize(out)
