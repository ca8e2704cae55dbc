"""SimAM for OpenVINO's ONNX frontend: each ``com.simam_deploy.SimAM`` node becomes OpenVINO operations.

Per channel plane of X[N,C,H,W]: d = (x - mean)^2, v = sum(d) / (H*W - unbiased),
y = x * sigmoid(d / (4 * (v + e_lambda)) + 0.5), with the attributes read as the ONNX contract
(:mod:`simam_deploy.graph.contract`) defines them. H*W comes from the input's runtime shape, so
dynamic spatial sizes work. A node with the fused epilogue (``affine``/``residual``/``activation``)
gets it rebuilt after SimAM: ``act(y * scale + bias + R)`` with scale/bias reshaped to [1,C,1,1].
Built from OpenVINO's own ops rather than a custom op calling our kernel:
OpenVINO fuses and vectorises them with the surrounding graph, which measured faster.
"""

from __future__ import annotations

from typing import Any

from simam_deploy.graph import contract


def _convert_simam(node: Any) -> list[Any]:
    import numpy as np
    import openvino.opset13 as ops

    x = node.get_input(0)
    # the runner validated every SimAM node against the contract before OpenVINO read the file
    e_lambda = float(node.get_attribute("e_lambda"))
    unbiased = int(node.get_attribute("unbiased", 1))  # the contract's default

    def const(value: float) -> Any:
        return ops.convert_like(ops.constant(np.float32(value)), x)

    axes = ops.constant(np.array([2, 3], dtype=np.int64))
    diff = ops.subtract(x, ops.reduce_mean(x, axes, keep_dims=True))
    d = ops.power(diff, const(2.0))  # not diff*diff: OpenVINO fuses Sub+Power into one eltwise chain
    shape = x.get_partial_shape()
    if shape.rank.is_static and shape[2].is_static and shape[3].is_static:
        # a constant plane size lets OpenVINO fold the divisor into the graph (measured faster)
        count = const(shape[2].get_length() * shape[3].get_length() - unbiased)
    else:  # dynamic H or W: the plane size from the runtime shape
        plane = ops.reduce_prod(
            ops.gather(ops.shape_of(x), axes, ops.constant(np.int64(0))), 0, keep_dims=False
        )
        count = ops.subtract(ops.convert_like(plane, x), const(unbiased))
    v = ops.divide(ops.reduce_sum(d, axes, keep_dims=True), count)
    energy = ops.add(ops.divide(d, ops.multiply(ops.add(v, const(e_lambda)), const(4.0))), const(0.5))
    y = ops.multiply(x, ops.sigmoid(energy))
    return [_epilogue(node, y, ops).output(0)]


def _epilogue(node: Any, y: Any, ops: Any) -> Any:
    """The contract's epilogue, act(y * scale + bias + R), in the order the attributes define."""
    import numpy as np

    affine = int(node.get_attribute("affine", 0))
    residual = int(node.get_attribute("residual", 0))
    activation = str(node.get_attribute("activation", "none"))
    if affine:
        per_channel = ops.constant(np.array([1, -1, 1, 1], dtype=np.int64))
        y = ops.multiply(y, ops.reshape(node.get_input(1), per_channel, special_zero=False))
        y = ops.add(y, ops.reshape(node.get_input(2), per_channel, special_zero=False))
    if residual:
        y = ops.add(y, node.get_input(1 + 2 * affine))
    if activation == "relu":
        y = ops.relu(y)
    elif activation == "silu":
        y = ops.multiply(y, ops.sigmoid(y))
    return y


def conversion_extension() -> Any:
    """The ONNX frontend extension that turns SimAM nodes (our domain, version 1) into OpenVINO ops."""
    from openvino.frontend.onnx import ConversionExtension

    return ConversionExtension(contract.OP_TYPE, contract.DOMAIN, _convert_simam)
