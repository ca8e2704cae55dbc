"""The ONNX contract of one SimAM node, shared by export, fuse, unfuse, ONNX Runtime and TensorRT.

A SimAM node is ``op_type="SimAM"`` in domain ``com.simam_deploy`` (opset import version 1) with
input X (float, float16 or bfloat16, rank 4, NCHW) and one output Y of the same type and shape,
``Y = act(SimAM(X) * scale + bias + R)`` where the fused epilogue (scale/bias, R, act) is optional:

================  =======  =====================================================================
ONNX attribute    type     meaning / TensorRT plugin field
================  =======  =====================================================================
``e_lambda``      FLOAT    lambda added to the variance; plugin field ``e_lambda`` (kFLOAT32, 1)
``unbiased``      INT      1: variance over H*W-1 (paper), 0: over H*W; field ``unbiased`` (kINT32)
``plugin_version``  STRING  optional, "1": onnx-tensorrt's fallback passes it as the plugin version
``plugin_namespace`` STRING optional, "": plugin namespace for onnx-tensorrt's fallback
``affine``        INT      optional, 0|1 (default 0): inputs 1 and 2 are ``scale`` and ``bias``, 1-D of
                           C elements and X's type (a folded BatchNormalization or per-channel
                           Mul/Add); plugin field ``affine`` (kINT32)
``residual``      INT      optional, 0|1 (default 0): the next input (1, or 3 after scale/bias) is R,
                           X's shape and type, added after scale/bias; field ``residual`` (kINT32)
``activation``    STRING   optional, "none"|"relu"|"silu" (default "none"), applied last; field
                           ``activation`` (kCHAR, not NUL-terminated)
================  =======  =====================================================================

A node has exactly ``1 + 2*affine + residual`` inputs; a node without the epilogue attributes is the
plain op, written byte for byte as before they existed (``make_simam_node`` writes them only when
used). The epilogue computes in float32 with one rounding to X's type at the end.

TensorRT's ONNX parser, on a node it has no importer for, looks up a plugin creator whose name is
the node's op_type (``SimAM``), version ``plugin_version`` (default "1") and namespace
``plugin_namespace`` (default ""), and hands every other attribute over as a plugin field of the same
name (FLOAT -> kFLOAT32, INT -> kINT32, STRING -> kCHAR), which is why the attribute names above are
the field names; the plugin's inputs are the node's inputs in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

ACTIVATIONS = ("none", "relu", "silu")
EPILOGUE_ATTRIBUTES = ("affine", "residual", "activation")


@dataclass(frozen=True)
class SimamAttributes:
    e_lambda: float
    unbiased: bool
    # the fused epilogue: act(SimAM(X) * scale + bias + R)
    affine: bool = False
    residual: bool = False
    activation: str = "none"

    @property
    def has_epilogue(self) -> bool:
        return self.affine or self.residual or self.activation != "none"

    @property
    def input_count(self) -> int:
        """X, then scale and bias when ``affine``, then R when ``residual``."""
        return 1 + 2 * int(self.affine) + int(self.residual)

    @property
    def epilogue_name(self) -> str:
        """'' for the plain op, else e.g. 'affine_residual_relu': names the local function overload."""
        parts = [p for p, on in (("affine", self.affine), ("residual", self.residual)) if on]
        if self.activation != "none":
            parts.append(self.activation)
        return "_".join(parts)

    def epilogue_dict(self) -> dict[str, int | str]:
        """The epilogue attributes a node carries: only those that differ from the defaults."""
        out: dict[str, int | str] = {}
        if self.affine:
            out["affine"] = 1
        if self.residual:
            out["residual"] = 1
        if self.activation != "none":
            out["activation"] = self.activation
        return out

    def as_dict(self) -> dict[str, float | int | str]:
        return {"e_lambda": float(self.e_lambda), "unbiased": int(self.unbiased), **self.epilogue_dict()}


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
    x: str,
    y: str,
    attrs: SimamAttributes,
    name: str,
    *,
    with_plugin_fields: bool = True,
    epilogue_inputs: Sequence[str] = (),
) -> onnx.NodeProto:
    """One contract-conforming node; ``epilogue_inputs`` are scale and bias (``attrs.affine``) then
    R (``attrs.residual``). A node without an epilogue is written exactly as before it existed."""
    if len(epilogue_inputs) != attrs.input_count - 1:
        raise ValueError(
            f"SimAM with affine={int(attrs.affine)} residual={int(attrs.residual)} takes "
            f"{attrs.input_count - 1} epilogue inputs, got {len(epilogue_inputs)}"
        )
    fields = node_attributes(attrs, with_plugin_fields=with_plugin_fields)
    return helper.make_node(OP_TYPE, [x, *epilogue_inputs], [y], name=name, domain=DOMAIN, **fields)


def _node_label(node: onnx.NodeProto) -> str:
    return f"SimAM node {node.name or '(unnamed)'!r} (output {node.output[0] if node.output else '?'})"


def read_attributes(node: onnx.NodeProto) -> SimamAttributes:
    """The validated attributes of a SimAM node; InputError naming the node on anything off-contract."""
    label = _node_label(node)
    attrs = {a.name: a for a in node.attribute}
    if len(node.output) != 1 or not node.input or not node.input[0]:
        raise InputError(
            f"{label} has {len(node.input)} inputs and {len(node.output)} outputs; SimAM has input X "
            "(plus the epilogue's) and 1 output",
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
    for key in ("plugin_version", "plugin_namespace", "activation"):
        if key in attrs and attrs[key].type != onnx.AttributeProto.STRING:
            raise InputError(f"{label}: {key} must be a STRING attribute", f"store {key} as a string")
    known = {"e_lambda", "unbiased", "plugin_version", "plugin_namespace", *EPILOGUE_ATTRIBUTES}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise InputError(f"{label} has unknown attributes {unknown}", f"SimAM knows only {sorted(known)}")
    flags = {}
    for key in ("affine", "residual"):
        flags[key] = False
        if key in attrs:
            attr = attrs[key]
            if attr.type != onnx.AttributeProto.INT or attr.i not in (0, 1):
                shown = helper.get_attribute_value(attr)
                raise InputError(
                    f"{label}: {key} must be an INT 0 or 1, got {shown!r}",
                    f"1 fuses the {'per-channel scale/bias' if key == 'affine' else 'residual Add'}, "
                    "0 (the default) leaves it out",
                )
            flags[key] = bool(attr.i)
    activation = "none"
    if "activation" in attrs:
        raw = attrs["activation"].s
        activation = raw.decode("utf-8", errors="replace")
        if activation not in ACTIVATIONS:
            raise InputError(
                f"{label}: unknown activation {activation!r}",
                f"SimAM's epilogue knows {', '.join(ACTIVATIONS)} (lower case); re-fuse the unfused file",
            )
    parsed = SimamAttributes(e_lambda, bool(unbiased), flags["affine"], flags["residual"], activation)
    if len(node.input) != parsed.input_count or not all(node.input):
        raise InputError(
            f"{label} has {len(node.input)} inputs {list(node.input)}; with affine={int(parsed.affine)} "
            f"and residual={int(parsed.residual)} it takes {parsed.input_count} (X"
            + (", scale, bias" if parsed.affine else "")
            + (", R" if parsed.residual else "")
            + ")",
            "make the node's inputs match its affine/residual attributes, or re-fuse from the unfused file",
        )
    return parsed


def _known_dims(value_type: onnx.TypeProto | None) -> list[int | str | None] | None:
    if value_type is None or not value_type.HasField("tensor_type"):
        return None
    if not value_type.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in value_type.tensor_type.shape.dim
    ]


def check_epilogue_types(
    node: onnx.NodeProto, attrs: SimamAttributes, types: dict[str, onnx.TypeProto]
) -> None:
    """Refuse epilogue inputs whose known type or shape is off-contract: scale/bias 1-D of C elements
    of X's type, R of X's type and shape (dims compared where both are known)."""
    if not attrs.has_epilogue:
        return
    label = _node_label(node)
    x_type = types.get(node.input[0])
    x_elem = x_type.tensor_type.elem_type if x_type is not None and x_type.HasField("tensor_type") else 0
    x_dims = _known_dims(x_type)
    channels = x_dims[1] if x_dims is not None and len(x_dims) == 4 else None
    slots = ([("scale", 1), ("bias", 2)] if attrs.affine else []) + (
        [("R", attrs.input_count - 1)] if attrs.residual else []
    )
    for role, slot in slots:
        value_type = types.get(node.input[slot])
        if value_type is None or not value_type.HasField("tensor_type"):
            continue
        elem = value_type.tensor_type.elem_type
        if elem and x_elem and elem != x_elem:
            names = [onnx.TensorProto.DataType.Name(t) for t in (elem, x_elem)]
            raise InputError(
                f"{label}: {role} ({node.input[slot]}) is {names[0]}, X is {names[1]}",
                f"the epilogue's {role} has X's element type; convert it (or the whole file with "
                "`simam-deploy convert`)",
            )
        dims = _known_dims(value_type)
        if dims is None:
            continue
        if role == "R":
            same = len(dims) == 4 and (
                x_dims is None
                or all(a is None or b is None or a == b for a, b in zip(dims, x_dims, strict=True))
            )
            if not same:
                raise InputError(
                    f"{label}: residual R ({node.input[slot]}) has shape {dims}, X has {x_dims}",
                    "R must have X's shape (no broadcasting); unfuse the file or re-fuse it",
                )
        elif len(dims) != 1 or (
            isinstance(channels, int) and isinstance(dims[0], int) and dims[0] != channels
        ):
            raise InputError(
                f"{label}: {role} ({node.input[slot]}) has shape {dims}; it must be 1-D with C"
                + (f" = {channels}" if isinstance(channels, int) else "")
                + " elements",
                "store the per-channel scale/bias as a [C] tensor",
            )


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
    for init in model.graph.initializer:  # scale/bias are usually initializers, absent from value_info
        types.setdefault(init.name, helper.make_tensor_type_proto(init.data_type, list(init.dims)))
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
            check_epilogue_types(node, attrs, types)
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
    optional = OpSchema.FormalParameterOption.Optional
    schema = OpSchema(
        OP_TYPE,
        DOMAIN,
        DOMAIN_VERSION,
        "SimAM attention (Yang et al., ICML 2021) with an optional fused epilogue: "
        "Y = act(X * sigmoid(d / (4 * (sum_HW(d) / n + e_lambda)) + 0.5) * scale + bias + R), "
        "d = (X - mean_HW(X))^2, n = H*W - unbiased. Inputs: X, then scale and bias (affine=1), "
        "then R (residual=1).",
        inputs=[
            OpSchema.FormalParameter("X", "T", "NCHW input"),
            # positional: with affine=0 and residual=1 the second input is R (the contract checks)
            OpSchema.FormalParameter("E1", "T", "scale [C] (affine=1) or R", param_option=optional),
            OpSchema.FormalParameter("E2", "T", "bias [C] (affine=1)", param_option=optional),
            OpSchema.FormalParameter("E3", "T", "R (affine=1, residual=1)", param_option=optional),
        ],
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
            OpSchema.Attribute("affine", OpSchema.AttrType.INT, "1: inputs scale, bias", required=False),
            OpSchema.Attribute("residual", OpSchema.AttrType.INT, "1: input R is added", required=False),
            OpSchema.Attribute(
                "activation", OpSchema.AttrType.STRING, "none, relu or silu (last)", required=False
            ),
        ],
    )
    schema.set_type_and_shape_inference_function(_infer_simam)
    onnx.defs.register_schema(schema)
    _schema_registered = True


register_schema()
