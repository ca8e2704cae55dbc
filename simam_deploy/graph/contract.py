"""The ONNX contract of one SimAM node, shared by export, fuse, unfuse, ONNX Runtime and TensorRT.

A SimAM node is ``op_type="SimAM"`` in domain ``com.simam_deploy`` (opset import version 1) with
one input X (float, float16 or bfloat16, rank 4, NCHW) and one output Y of the same type and shape:

================  =======  =====================================================================
ONNX attribute    type     meaning / TensorRT plugin field
================  =======  =====================================================================
``e_lambda``      FLOAT    lambda added to the variance; plugin field ``e_lambda`` (kFLOAT32, 1)
``unbiased``      INT      1: variance over H*W-1 (paper), 0: over H*W; field ``unbiased`` (kINT32)
``plugin_version``  STRING  optional, "1": onnx-tensorrt's fallback passes it as the plugin version
``plugin_namespace`` STRING optional, "": plugin namespace for onnx-tensorrt's fallback
================  =======  =====================================================================

TensorRT's ONNX parser, on a node it has no importer for, looks up a plugin creator whose name is
the node's op_type (``SimAM``), version ``plugin_version`` (default "1") and namespace
``plugin_namespace`` (default ""), and hands every other attribute over as a plugin field of the same
name (FLOAT -> kFLOAT32, INT -> kINT32), which is why the attribute names above are the field names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import helper

from simam_deploy.errors import InputError
from simam_deploy.onnx_utils import opset_version

DOMAIN = "com.simam_deploy"
DOMAIN_VERSION = 1
OP_TYPE = "SimAM"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""

# Element types SimAM accepts (the kernels run float32, float16 and bfloat16).
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)

# Opsets whose standard ops the fuse/unfuse code knows (ReduceSum's axes moved to an input at 13,
# ReduceMean's at 18); newer ones are refused rather than guessed.
MIN_OPSET = 11
MAX_OPSET = 23


@dataclass(frozen=True)
class SimamAttributes:
    e_lambda: float
    unbiased: bool

    def as_dict(self) -> dict[str, float | int]:
        return {"e_lambda": float(self.e_lambda), "unbiased": int(self.unbiased)}


def is_simam_node(node: onnx.NodeProto) -> bool:
    return node.op_type == OP_TYPE and node.domain == DOMAIN


def node_attributes(
    attrs: SimamAttributes, *, with_plugin_fields: bool = True
) -> dict[str, float | int | str]:
    """A SimAM node's attributes: ``e_lambda``/``unbiased`` and (for TensorRT's parser, which looks the
    plugin up by them) ``plugin_version``/``plugin_namespace``. Every node we write gets these."""
    extra = (
        {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE} if with_plugin_fields else {}
    )
    return {**attrs.as_dict(), **extra}


def make_simam_node(
    x: str, y: str, attrs: SimamAttributes, name: str, *, with_plugin_fields: bool = True
) -> onnx.NodeProto:
    """One contract-conforming node (validated like one read from a file)."""
    fields = node_attributes(attrs, with_plugin_fields=with_plugin_fields)
    return helper.make_node(OP_TYPE, [x], [y], name=name, domain=DOMAIN, **fields)


def _node_label(node: onnx.NodeProto) -> str:
    return f"SimAM node {node.name or '(unnamed)'!r} (output {node.output[0] if node.output else '?'})"


def read_attributes(node: onnx.NodeProto) -> SimamAttributes:
    """The validated attributes of a SimAM node; InputError naming the node on anything off-contract."""
    label = _node_label(node)
    attrs = {a.name: a for a in node.attribute}
    if len(node.input) != 1 or len(node.output) != 1 or not node.input[0]:
        raise InputError(
            f"{label} has {len(node.input)} inputs and {len(node.output)} outputs; SimAM has 1 and 1",
            "re-export the model or fix the node with `simam-deploy unfuse` on the original",
        )
    if "e_lambda" not in attrs:
        raise InputError(f"{label} has no e_lambda attribute", "add e_lambda (FLOAT, e.g. 1e-4) to the node")
    lam_attr = attrs["e_lambda"]
    if lam_attr.type != onnx.AttributeProto.FLOAT:
        raise InputError(
            f"{label}: e_lambda must be a FLOAT attribute, got type {lam_attr.type}",
            "store e_lambda as a float",
        )
    e_lambda = float(lam_attr.f)
    if not math.isfinite(e_lambda) or e_lambda <= 0:
        raise InputError(
            f"{label}: e_lambda must be a finite number > 0, got {e_lambda!r}",
            "use the value the model was trained with (1e-4 for CIFAR models, 0.1 for the ImageNet ones)",
        )
    unbiased = 1
    if "unbiased" in attrs:
        un_attr = attrs["unbiased"]
        if un_attr.type != onnx.AttributeProto.INT or un_attr.i not in (0, 1):
            shown = helper.get_attribute_value(un_attr)
            raise InputError(
                f"{label}: unbiased must be an INT 0 or 1, got {shown!r}",
                "1 divides the variance by H*W-1 (the paper), 0 by H*W",
            )
        unbiased = un_attr.i
    for key in ("plugin_version", "plugin_namespace"):
        if key in attrs and attrs[key].type != onnx.AttributeProto.STRING:
            raise InputError(f"{label}: {key} must be a STRING attribute", f"store {key} as a string")
    known = {"e_lambda", "unbiased", "plugin_version", "plugin_namespace"}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise InputError(f"{label} has unknown attributes {unknown}", f"SimAM knows only {sorted(known)}")
    return SimamAttributes(e_lambda=e_lambda, unbiased=bool(unbiased))


def check_input_type(node: onnx.NodeProto, value_type: onnx.TypeProto | None) -> None:
    """Refuse a SimAM input whose known type is not float/float16/bfloat16 or whose known rank is not 4."""
    if value_type is None or not value_type.HasField("tensor_type"):
        return
    tensor_type = value_type.tensor_type
    label = _node_label(node)
    if tensor_type.elem_type and tensor_type.elem_type not in FLOAT_TYPES:
        name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        raise InputError(
            f"{label}: input type {name} is not supported", "SimAM takes float, float16 or bfloat16"
        )
    if tensor_type.HasField("shape") and len(tensor_type.shape.dim) != 4:
        raise InputError(
            f"{label}: input has rank {len(tensor_type.shape.dim)}, SimAM takes rank-4 NCHW tensors",
            "SimAM only applies after 2-D convolutions (N, C, H, W)",
        )


def simam_opset_import() -> onnx.OperatorSetIdProto:
    return helper.make_opsetid(DOMAIN, DOMAIN_VERSION)


def ensure_domain_import(model: onnx.ModelProto) -> None:
    """Declare com.simam_deploy in the model's opset imports (once)."""
    if not any(op.domain == DOMAIN for op in model.opset_import):
        model.opset_import.append(simam_opset_import())


def count_simam_nodes(model: onnx.ModelProto) -> int:
    """SimAM nodes (op type and domain) in the main graph."""
    return sum(is_simam_node(node) for node in model.graph.node)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ai.onnx opset; InputError if missing or outside what this tool knows."""
    opset = opset_version(model)
    if not opset:
        raise InputError("the model imports no standard ONNX opset", "re-export it with an ONNX opset 11-23")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(
            f"unsupported ONNX opset {opset}; this tool handles opsets {MIN_OPSET}-{MAX_OPSET}",
            "convert it first with onnx.version_converter.convert_version(model, "
            f"{min(max(opset, MIN_OPSET), MAX_OPSET)})",
        )
    return opset


def value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Name -> type of every graph input, output and value_info entry."""
    graph = model.graph
    return {vi.name: vi.type for vi in [*graph.input, *graph.value_info, *graph.output]}


def inferred_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types after (best-effort) shape inference: unknown types are simply not checked."""
    try:
        return value_types(onnx.shape_inference.infer_shapes(model, strict_mode=False))
    except Exception:  # onnx raises several C++ error types
        return value_types(model)


def validate_simam_nodes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, SimamAttributes]]:
    """Every SimAM node of the main graph with its validated attributes (and input type/rank)."""
    if not any(node.op_type == OP_TYPE for node in model.graph.node):
        return []
    types = inferred_types(model)
    found = []
    for node in model.graph.node:
        if node.op_type == OP_TYPE and node.domain != DOMAIN:
            raise InputError(
                f"{_node_label(node)} is in domain {node.domain!r}, expected {DOMAIN!r}",
                f"set the node's domain to {DOMAIN} and import that domain at version {DOMAIN_VERSION}",
            )
        if node.op_type == OP_TYPE:
            attrs = read_attributes(node)
            check_input_type(node, types.get(node.input[0]))
            found.append((node, attrs))
    return found


def set_output_value_info(model: onnx.ModelProto, x: str, y: str) -> None:
    """Give Y the type and shape of X in value_info, since shape inference knows no SimAM schema."""
    types = value_types(model)
    if x not in types or y in {o.name for o in model.graph.output}:
        if y in {o.name for o in model.graph.output} and x in types:
            for out in model.graph.output:
                if out.name == y and not out.type.tensor_type.elem_type:
                    out.type.CopyFrom(types[x])
        return
    for vi in model.graph.value_info:
        if vi.name == y:
            vi.type.CopyFrom(types[x])
            return
    vi = model.graph.value_info.add()
    vi.name = y
    vi.type.CopyFrom(types[x])


def _infer_simam(ctx) -> None:
    """Shape inference: Y has X's type and shape."""
    x_type = ctx.get_input_type(0)
    if x_type is not None:
        ctx.set_output_type(0, x_type)


_schema_registered = False


def register_schema() -> None:
    """Register the SimAM schema with onnx (once per process).

    With it, onnx's checker validates SimAM nodes (attribute names and types, input types), shape
    inference gives Y the type and shape of X, and onnxscript can emit the op in the dynamo exporter.
    """
    global _schema_registered
    if _schema_registered:
        return
    from onnx.defs import OpSchema

    if onnx.defs.has(OP_TYPE, DOMAIN):
        _schema_registered = True
        return
    schema = OpSchema(
        OP_TYPE,
        DOMAIN,
        DOMAIN_VERSION,
        "SimAM attention (Yang et al., ICML 2021): "
        "Y = X * sigmoid(d / (4 * (sum_HW(d) / n + e_lambda)) + 0.5), "
        "d = (X - mean_HW(X))^2, n = H*W - unbiased.",
        inputs=[OpSchema.FormalParameter("X", "T", "NCHW input")],
        outputs=[OpSchema.FormalParameter("Y", "T", "same type and shape as X")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "float types")],
        attributes=[
            OpSchema.Attribute("e_lambda", OpSchema.AttrType.FLOAT, "lambda > 0 added to the variance"),
            OpSchema.Attribute(
                "unbiased", helper.make_attribute("unbiased", 1), "1: divide by H*W-1, 0: by H*W"
            ),
            OpSchema.Attribute(
                "plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version", required=False
            ),
            OpSchema.Attribute(
                "plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace", required=False
            ),
        ],
    )
    schema.set_type_and_shape_inference_function(_infer_simam)
    onnx.defs.register_schema(schema)
    _schema_registered = True


register_schema()
