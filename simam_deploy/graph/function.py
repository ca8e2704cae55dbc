"""SimAM as a model-local ONNX function, so fused files run where our op is not registered.

A fused (or plugin-mode) file carries a ``FunctionProto`` named ``SimAM`` in domain
``com.simam_deploy`` whose body is the standard-op formula ``unfuse`` writes, with ``e_lambda`` and
``unbiased`` as function attributes. A runtime that knows no ``SimAM`` kernel (plain ONNX Runtime,
onnx's reference evaluator, Netron) expands each node into that body; one that has a kernel
registered under the same domain and name (our ONNX Runtime op, the TensorRT plugin: TensorRT >= 10.7
prefers a registered plugin over a local function) runs the fused kernel instead.

Nodes with a fused epilogue (``affine``/``residual``/``activation``) take 2 to 4 inputs, and one
function cannot serve several input counts: each epilogue configuration gets its own function,
told apart by ONNX's function ``overload`` (IR version 10), which the node names in its own
``overload`` field ('affine_residual_relu'); plain nodes keep the function without an overload.

The body works for any H and W: the divisor ``H*W - unbiased`` is read from the input's shape.
Attribute references need ``Constant``'s ``value_float``/``value_int`` (opset 12). The body computes
in float32 for every input type; the result goes back to the input's type with ``CastLike``
from opset 15, below that with ``Cast`` to the model's SimAM type (so a precision conversion rewrites
the function: ``simam_deploy.precision`` attaches it again).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from simam_deploy.graph import contract

MIN_FUNCTION_OPSET = 12
MIN_FUNCTION_IR = 8  # model-local functions arrived with IR version 8
# A node and a function are matched by (domain, name, overload); the overload field arrived with
# IR version 10. Each epilogue configuration has its own input count, so its own function.
MIN_OVERLOAD_IR = 10
FUNCTION_ATTRIBUTES = ("e_lambda", "unbiased", "plugin_version", "plugin_namespace")
EPILOGUE_FUNCTION_ATTRIBUTES = (*FUNCTION_ATTRIBUTES, *contract.EPILOGUE_ATTRIBUTES)


class _Body:
    def __init__(self, opset: int, elem_type: int | None) -> None:
        self.opset = opset
        self.elem_type = elem_type
        self.nodes: list[onnx.NodeProto] = []

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        # named nodes: runtimes that inline the function can show where an op came from
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def const_tensor(self, name: str, value: np.ndarray) -> str:
        return self.op("Constant", [], name, value=numpy_helper.from_array(value, name))

    def attr_const(self, name: str, attribute: str, kind: int) -> str:
        """A Constant whose value is the function attribute ``attribute`` (FLOAT or INT)."""
        field = "value_float" if kind == onnx.AttributeProto.FLOAT else "value_int"
        node = helper.make_node("Constant", [], [name], name=name)
        ref = onnx.AttributeProto(name=field, ref_attr_name=attribute, type=kind)
        node.attribute.append(ref)
        self.nodes.append(node)
        return name

    def like_x(self, tensor: str, name: str) -> str:
        """``tensor`` converted to X's element type."""
        if self.opset >= 15:
            return self.op("CastLike", [tensor, "X"], name)
        return self.op("Cast", [tensor], name, to=self.elem_type)

    def reduce(self, op_type: str, x: str, name: str, axes_input_from: int) -> str:
        if self.opset < axes_input_from:
            return self.op(op_type, [x], name, axes=[2, 3], keepdims=1)
        axes = self.const_tensor(f"{name}_axes", np.array([2, 3], np.int64))
        return self.op(op_type, [x, axes], name, keepdims=1)


def function_supported(opset: int, elem_types: set[int]) -> str | None:
    """None when a SimAM function can be written for this model, else the reason it cannot."""
    if opset < MIN_FUNCTION_OPSET:
        return (
            f"opset {opset} has no Constant value_float to read function attributes; "
            f"the local SimAM function needs opset >= {MIN_FUNCTION_OPSET}"
        )
    if opset < 15 and len(elem_types) > 1:
        return f"opset {opset} has no CastLike and the SimAM inputs mix element types"
    return None


def make_simam_function(
    opset: int,
    elem_type: int = onnx.TensorProto.FLOAT,
    epilogue: contract.SimamAttributes | None = None,
) -> onnx.FunctionProto:
    """The FunctionProto ``com.simam_deploy.SimAM``: the paper's formula in standard ops.

    Everything is computed in float32 whatever X's type (X is cast to float32 first, every constant
    is float32) and only Y is cast back to X's type: what the fused kernel does, and the one body
    that stays well typed and accurate when a file is converted to float16 or bfloat16 (sums of
    squares overflow float16), and that runs where a runtime has few reduced-precision kernels
    (ONNX Runtime's CPU provider has no bfloat16 Mul or Sigmoid).

    With an ``epilogue`` configuration (affine/residual/activation; its lambda is ignored) the
    function is the overload named :attr:`~SimamAttributes.epilogue_name` with the inputs X, scale,
    bias, R that configuration takes, and applies the epilogue in float32 before the one cast."""
    b = _Body(opset, elem_type)
    xf = b.op("Cast", ["X"], "x_f32", to=onnx.TensorProto.FLOAT)
    mean = b.reduce("ReduceMean", xf, "mean", axes_input_from=18)
    dev = b.op("Sub", [xf, mean], "dev")
    d = b.op("Mul", [dev, dev], "d")
    total = b.reduce("ReduceSum", d, "sum_d", axes_input_from=13)
    shape = b.op("Shape", ["X"], "shape")
    hw = b.op("Gather", [shape, b.const_tensor("hw_index", np.array([2, 3], np.int64))], "hw")
    count = b.op("ReduceProd", [hw], "count", keepdims=0)
    unbiased = b.attr_const("unbiased_value", "unbiased", onnx.AttributeProto.INT)
    n = b.op("Cast", [b.op("Sub", [count, unbiased], "n_int")], "n", to=onnx.TensorProto.FLOAT)
    lam = b.attr_const("lambda", "e_lambda", onnx.AttributeProto.FLOAT)
    var = b.op("Div", [total, n], "var")
    four = b.const_tensor("four", np.array(4.0, np.float32))
    den = b.op("Mul", [b.op("Add", [var, lam], "var_lambda"), four], "den")
    half = b.const_tensor("half", np.array(0.5, np.float32))
    energy = b.op("Add", [b.op("Div", [d, den], "ratio"), half], "energy")
    y = b.op("Mul", [xf, b.op("Sigmoid", [energy], "attention")], "y_f32")
    inputs = ["X"]
    if epilogue is not None and not epilogue.has_epilogue:
        epilogue = None
    if epilogue is not None:
        y, inputs = _epilogue_body(b, y, epilogue)
    b.like_x(y, "Y")
    function = helper.make_function(
        contract.DOMAIN,
        contract.OP_TYPE,
        inputs,
        ["Y"],
        b.nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=list(EPILOGUE_FUNCTION_ATTRIBUTES if len(inputs) > 1 or epilogue else FUNCTION_ATTRIBUTES),
        doc_string="SimAM (Yang et al., ICML 2021) in standard ops; a registered SimAM kernel replaces it.",
    )
    if epilogue is not None:
        function.overload = epilogue.epilogue_name
    return function


def _epilogue_body(b: _Body, y: str, epilogue: contract.SimamAttributes) -> tuple[str, list[str]]:
    """act(y * scale + bias + R) in float32; returns the result and the function's inputs."""
    inputs = ["X"]
    if epilogue.affine:
        inputs += ["scale", "bias"]
        per_channel = b.const_tensor("per_channel_shape", np.array([1, -1, 1, 1], np.int64))
        for role, op in (("scale", "Mul"), ("bias", "Add")):
            value = b.op("Cast", [role], f"{role}_f32", to=onnx.TensorProto.FLOAT)
            value = b.op("Reshape", [value, per_channel], f"{role}_nchw")
            y = b.op(op, [y, value], f"y_{role}")
    if epilogue.residual:
        inputs.append("R")
        y = b.op("Add", [y, b.op("Cast", ["R"], "r_f32", to=onnx.TensorProto.FLOAT)], "y_residual")
    if epilogue.activation == "relu":
        y = b.op("Relu", [y], "y_relu")
    elif epilogue.activation == "silu":
        y = b.op("Mul", [y, b.op("Sigmoid", [y], "y_sigmoid")], "y_silu")
    return y, inputs


def has_simam_function(model: onnx.ModelProto) -> bool:
    return any(f.domain == contract.DOMAIN and f.name == contract.OP_TYPE for f in model.functions)


def remove_simam_function(model: onnx.ModelProto) -> None:
    """Drop the local SimAM function (in place), e.g. once no SimAM node is left."""
    keep = [f for f in model.functions if not (f.domain == contract.DOMAIN and f.name == contract.OP_TYPE)]
    del model.functions[:]
    model.functions.extend(keep)


def attach_simam_function(model: onnx.ModelProto) -> str | None:
    """Add the local SimAM function to a model with SimAM nodes (in place).

    Returns None when it was added (or already there, or there is no SimAM node), else the reason it
    could not be (the model is left without one). Every SimAM node gets an explicit ``unbiased``,
    since a function body cannot fall back to the contract's default.
    """
    nodes = [n for n in model.graph.node if contract.is_simam_node(n)]
    remove_simam_function(model)
    if not nodes:
        return None
    opset = contract.default_opset(model)
    types = contract.inferred_types(model)
    elems = {types[n.input[0]].tensor_type.elem_type for n in nodes if n.input[0] in types}
    elems.discard(0)
    reason = function_supported(opset, elems)
    if reason:
        return reason
    elem = elems.pop() if elems else onnx.TensorProto.FLOAT
    configs: dict[str, contract.SimamAttributes] = {}
    for node in nodes:
        if not any(a.name == "unbiased" for a in node.attribute):
            node.attribute.append(helper.make_attribute("unbiased", 1))
        attrs = contract.read_attributes(node)
        if attrs.has_epilogue:
            node.overload = attrs.epilogue_name
            configs.setdefault(attrs.epilogue_name, attrs)
        else:
            node.ClearField("overload")
    if any(not contract.read_attributes(n).has_epilogue for n in nodes):
        model.functions.append(make_simam_function(opset, elem))
    for attrs in configs.values():
        model.functions.append(make_simam_function(opset, elem, attrs))
    contract.ensure_domain_import(model)
    model.ir_version = max(model.ir_version, MIN_OVERLOAD_IR if configs else MIN_FUNCTION_IR)
    return None
