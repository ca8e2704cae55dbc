"""Run models with ``SimAM`` nodes in ONNX Runtime, backed by the fused CPU kernel.

ONNX Runtime's C API headers are not available to this project, so the op is registered through
onnxruntime-extensions' Python custom ops. Those only resolve in the domain ``ai.onnx.contrib``, so
the model handed to the session is a retargeted in-memory copy (the file keeps
``com.simam_deploy``). The kernel is ``simam_deploy.ops.simam_numpy`` (the compiled extension);
there is deliberately no slow Python fallback: without the extension we say so.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx

from simam_deploy.errors import MissingDependencyError
from simam_deploy.graph import contract
from simam_deploy.onnx_utils import cap_ir_version

CONTRIB_DOMAIN = "ai.onnx.contrib"

_registered = False


def _kernel():
    hint = (
        "build the extension: pip install --no-build-isolation -e . (or run `simam-deploy unfuse` to get "
        "a model with standard ops only)"
    )
    try:
        from simam_deploy.ops import native_available, simam_numpy
    except ImportError as exc:
        raise MissingDependencyError(f"the fused SimAM CPU kernel is not available ({exc})", hint) from exc
    if not native_available():
        raise MissingDependencyError("the fused SimAM CPU kernel (simam_deploy._C) is not built", hint)
    return simam_numpy


def _extensions():
    try:
        import onnxruntime_extensions
    except ImportError as exc:
        raise MissingDependencyError(
            "running SimAM nodes in ONNX Runtime needs onnxruntime-extensions",
            "pip install onnxruntime-extensions (or `simam-deploy unfuse` the model)",
        ) from exc
    return onnxruntime_extensions


def register_simam_op() -> None:
    """Register the SimAM Python op with onnxruntime-extensions (once per process)."""
    global _registered
    if _registered:
        return
    kernel = _kernel()
    ext = _extensions()
    dt = ext.PyCustomOpDef

    def simam(x: np.ndarray, **attrs: Any) -> np.ndarray:
        return np.asarray(kernel(np.ascontiguousarray(x), float(attrs["e_lambda"]), bool(attrs["unbiased"])))

    # The decorator stores the op in a process-wide table that the extensions library reads.
    ext.onnx_op(
        op_type=contract.OP_TYPE,
        inputs=[dt.dt_float],
        outputs=[dt.dt_float],
        attrs={"e_lambda": dt.dt_float, "unbiased": dt.dt_int64},
    )(simam)
    _registered = True


def retarget_for_ort(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose SimAM nodes live in ai.onnx.contrib with exactly the attributes the op declares."""
    found = contract.validate_simam_nodes(model)
    types = contract.inferred_types(model)
    out = copy.deepcopy(model)
    by_output = {node.output[0]: attrs for node, attrs in found}
    nodes = []
    for node in out.graph.node:
        nodes.append(node)
        if not contract.is_simam_node(node):
            continue
        attrs = by_output[node.output[0]]
        x_type = types.get(node.input[0])
        elem = x_type.tensor_type.elem_type if x_type is not None else 0
        if elem == onnx.TensorProto.FLOAT16:
            # the kernel reads float32; a float16 kernel would widen on load and round on store
            _widen_around(node, nodes)
        elif elem not in (0, onnx.TensorProto.FLOAT):
            raise MissingDependencyError(
                f"SimAM node {node.name!r} takes "
                f"{onnx.TensorProto.DataType.Name(x_type.tensor_type.elem_type)}; the ONNX Runtime op "
                "runs float32 and float16 only",
                "run bfloat16 models through TensorRT (ONNX Runtime's CPU provider has no bfloat16 kernels)",
            )
        node.domain = CONTRIB_DOMAIN
        del node.attribute[:]
        node.attribute.extend(
            [
                onnx.helper.make_attribute("e_lambda", float(attrs.e_lambda)),
                onnx.helper.make_attribute("unbiased", int(attrs.unbiased)),
            ]
        )
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    imports = [op for op in out.opset_import if op.domain not in (contract.DOMAIN, CONTRIB_DOMAIN)]
    imports.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))
    del out.opset_import[:]
    out.opset_import.extend(imports)
    return cap_ir_version(out)


def _widen_around(node: onnx.NodeProto, nodes: list[onnx.NodeProto]) -> None:
    """Run a float16 SimAM node in float32: Cast in, the node, Cast out (appended after it)."""
    x, y = node.input[0], node.output[0]
    nodes.insert(
        len(nodes) - 1, onnx.helper.make_node("Cast", [x], [f"{x}__fp32"], to=onnx.TensorProto.FLOAT)
    )
    node.input[0], node.output[0] = f"{x}__fp32", f"{y}__fp32"
    nodes.append(onnx.helper.make_node("Cast", [f"{y}__fp32"], [y], to=onnx.TensorProto.FLOAT16))


def prepare_session(model: onnx.ModelProto, options: Any = None) -> tuple[bytes, Any]:
    """(model bytes, SessionOptions) that let ONNX Runtime run ``model``'s SimAM nodes on the CPU."""
    import onnxruntime as ort

    register_simam_op()
    if options is None:
        options = ort.SessionOptions()
    options.register_custom_ops_library(_extensions().get_library_path())
    return retarget_for_ort(model).SerializeToString(), options
