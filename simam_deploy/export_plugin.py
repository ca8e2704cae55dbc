"""Plugin-mode export: one ``SimAM`` node (domain com.simam_deploy) per SimAM module.

The SimAM modules are switched to the fused op ``torch.ops.simam_deploy.simam`` for the duration of
the export, and each exporter is told how to write that op:

* dynamo (torch.export): a custom translation table entry, an onnxscript function that emits the
  custom-domain node;
* TorchScript: a custom-op symbolic registered with ``torch.onnx.register_custom_op_symbolic``.

See :mod:`simam_deploy.graph.contract` for the node's attributes and how TensorRT reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import onnx
import torch
from torch import nn

from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.graph import contract
from simam_deploy.nn import find_simam_modules

_OP_QUALNAME = "simam_deploy::simam"
_registered_symbolic_opsets: set[int] = set()


def _simam_op():
    """The torch.library op (importing simam_deploy.ops defines it)."""
    try:
        import simam_deploy.ops  # noqa: F401  (defines torch.ops.simam_deploy.simam)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the fused SimAM op is not available ({exc})",
            "build the extension (pip install --no-build-isolation -e .) or export --mode decomposed",
        ) from exc
    try:
        return torch.ops.simam_deploy.simam
    except (AttributeError, RuntimeError) as exc:
        raise MissingDependencyError(
            "torch.ops.simam_deploy.simam is not registered", "reinstall simam-deploy"
        ) from exc


def _dynamo_translation():
    """onnxscript translation of simam_deploy::simam into one custom-domain node."""
    import onnxscript

    simam_opset = onnxscript.values.Opset(domain=contract.DOMAIN, version=contract.DOMAIN_VERSION)

    def simam_to_onnx(x, e_lambda: float = 1e-4, unbiased: bool = True):
        return simam_opset.SimAM(
            x,
            e_lambda=float(e_lambda),
            unbiased=int(bool(unbiased)),
            plugin_version=contract.PLUGIN_VERSION,
            plugin_namespace=contract.PLUGIN_NAMESPACE,
        )

    return simam_to_onnx


def _torchscript_symbolic(g, x, e_lambda, unbiased):
    from torch.onnx import symbolic_helper

    lam = symbolic_helper._maybe_get_const(e_lambda, "f")
    unb = symbolic_helper._maybe_get_const(unbiased, "b")
    if not isinstance(lam, float) or symbolic_helper._is_value(unb):
        raise InputError(
            "SimAM's e_lambda/unbiased must be Python constants to export the op",
            "keep them as module attributes (simam_deploy.nn.SimAM does)",
        )
    out = g.op(
        f"{contract.DOMAIN}::{contract.OP_TYPE}",
        x,
        e_lambda_f=float(lam),
        unbiased_i=int(bool(unb)),
        plugin_version_s=contract.PLUGIN_VERSION,
        plugin_namespace_s=contract.PLUGIN_NAMESPACE,
    )
    out.setType(x.type())
    return out


def _register_torchscript_symbolic(opset: int) -> None:
    if opset not in _registered_symbolic_opsets:
        torch.onnx.register_custom_op_symbolic(_OP_QUALNAME, _torchscript_symbolic, opset)
        _registered_symbolic_opsets.add(opset)


@contextmanager
def fused_simam(model: nn.Module) -> Iterator[int]:
    """Switch every SimAM of ``model`` to the fused op, restoring each module's flag afterwards."""
    modules = find_simam_modules(model)
    before = [m.fused for _, m in modules]
    for _, module in modules:
        module.fused = True
    try:
        yield len(modules)
    finally:
        for (_, module), flag in zip(modules, before, strict=True):
            module.fused = flag


def _check_nodes(proto: onnx.ModelProto, model: nn.Module, exporter: str) -> None:
    modules = find_simam_modules(model)
    nodes = contract.validate_simam_nodes(proto)
    if len(nodes) != len(modules):
        raise InputError(
            f"the {exporter} exporter wrote {len(nodes)} SimAM nodes for {len(modules)} SimAM modules",
            "try the other exporter (--exporter dynamo|torchscript)",
        )
    want = sorted((round(m.e_lambda, 12), m.unbiased) for _, m in modules)
    got = sorted(
        (round(float(torch.tensor(a.e_lambda, dtype=torch.float32)), 12), a.unbiased) for _, a in nodes
    )
    want32 = sorted((round(float(torch.tensor(lam, dtype=torch.float32)), 12), u) for lam, u in want)
    if got != want32:
        raise InputError(f"SimAM node attributes {got} do not match the modules' {want32}")
    contract.ensure_domain_import(proto)
    for node, _ in nodes:
        contract.set_output_value_info(proto, node.input[0], node.output[0])


@contextmanager
def plugin_translation(model: nn.Module, *, opset: int, exporter: str) -> Iterator[dict | None]:
    """While active, torch's ``exporter`` writes every SimAM module of ``model`` as one SimAM node:
    yields the dynamo custom translation table (None for TorchScript, whose symbolic is registered).
    The exporter itself is called by :mod:`simam_deploy.export`, which sits above this module."""
    op = _simam_op()
    table = None
    if exporter == "dynamo":
        table = {op.default: _dynamo_translation()}
    else:
        _register_torchscript_symbolic(opset)
    with fused_simam(model):
        yield table


def check_plugin_nodes(proto: onnx.ModelProto, model: nn.Module, exporter: str) -> None:
    """One contract-conforming SimAM node per SimAM module, with the modules' attributes."""
    _check_nodes(proto, model, exporter)
