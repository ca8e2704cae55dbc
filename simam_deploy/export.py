"""PyTorch -> ONNX export of SimAM networks.

Modes:
  decomposed  standard ONNX ops only (ReduceMean, Sub, Pow, ReduceSum, Div, Add, Mul, Sigmoid, ...)
  plugin      one custom-domain ``SimAM`` node per SimAM module (see simam_deploy.export_plugin)

Two torch exporters are supported: ``dynamo`` (torch.export based; opsets 18-21) and
``torchscript`` (the legacy tracer, deprecated by torch but still the only one that writes opsets
13-17 directly; opsets 13-20). ``auto`` picks dynamo for opset >= 18, torchscript below.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from simam_deploy.errors import InputError
from simam_deploy.fileio import atomic_output, check_output_path
from simam_deploy.nn import SimAM, find_simam_modules
from simam_deploy.onnx_utils import cap_ir_version

MIN_OPSET, MAX_OPSET = 13, 21
DEFAULT_OPSET = 18
EXPORTER_OPSETS = {"dynamo": (18, 21), "torchscript": (13, 20)}
DYNAMIC_CHOICES = ("batch", "all", "none")
MODES = ("decomposed", "plugin")

log = logging.getLogger(__name__)


@dataclass
class ExportReport:
    output: str
    mode: str
    exporter: str
    opset: int
    input_shape: tuple[int, ...]
    dynamic: str
    simam_modules: list[dict] = field(default_factory=list)  # name, e_lambda, unbiased, input shape
    onnx_nodes: int = 0
    simam_nodes: int = 0  # custom SimAM nodes (plugin mode)
    seconds: float = 0.0
    file_bytes: int = 0
    precision: str = "fp32"  # fp16/bf16: converted after export by simam_deploy.precision
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_shape(text: str | tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """Parse '1x3x224x224' (or a tuple) into an NCHW shape, refusing anything but 4 positive dims."""
    if isinstance(text, str):
        try:
            dims = tuple(int(p) for p in re.split(r"[x,]", text.strip().lower()) if p != "")
        except ValueError:
            raise InputError(
                f"cannot read input shape '{text}'", "write it as NxCxHxW, e.g. 1x3x224x224"
            ) from None
    else:
        dims = tuple(int(d) for d in text)
    if len(dims) != 4:
        raise InputError(
            f"input shape {'x'.join(map(str, dims)) or text!r} has {len(dims)} dimensions; SimAM networks "
            "take 4-D NCHW input",
            "write it as NxCxHxW, e.g. 1x3x224x224",
        )
    if any(d <= 0 for d in dims):
        raise InputError(f"input shape {dims} has a non-positive dimension", "every dimension must be >= 1")
    return dims  # type: ignore[return-value]


def resolve_exporter(exporter: str, opset: int) -> str:
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(
            f"--opset {opset} is out of range", f"simam-deploy exports opsets {MIN_OPSET} to {MAX_OPSET}"
        )
    if exporter == "auto":
        return "dynamo" if opset >= EXPORTER_OPSETS["dynamo"][0] else "torchscript"
    if exporter not in EXPORTER_OPSETS:
        raise InputError(f"unknown exporter '{exporter}'", "use auto, dynamo or torchscript")
    lo, hi = EXPORTER_OPSETS[exporter]
    if not lo <= opset <= hi:
        raise InputError(
            f"the {exporter} exporter cannot write opset {opset}",
            f"use opset {lo}-{hi} with {exporter}, or --exporter auto",
        )
    return exporter


def probe_simam_inputs(model: nn.Module, example: torch.Tensor) -> list[dict]:
    """Run the model once, recording what each SimAM sees; refuse planes the formula cannot handle."""
    seen: list[dict] = []
    handles = []

    def hook(name: str, module: SimAM):
        def record(_mod, args):
            x = args[0]
            if x.dim() != 4:
                raise InputError(f"SimAM layer '{name}' receives a {x.dim()}-D tensor; SimAM needs NCHW")
            h, w = int(x.shape[2]), int(x.shape[3])
            if module.unbiased and h * w == 1:
                raise InputError(
                    f"SimAM layer '{name}' sees a 1x1 plane for input shape {tuple(example.shape)}: the "
                    "paper's variance divides by H*W-1 = 0, so its output would be 0/0 (NaN)",
                    "use a larger input (H and W) or a network without SimAM after global pooling",
                )
            seen.append(
                {
                    "name": name,
                    "e_lambda": module.e_lambda,
                    "unbiased": module.unbiased,
                    "input_shape": list(x.shape),
                }
            )

        return record

    for name, module in find_simam_modules(model):
        handles.append(module.register_forward_pre_hook(hook(name, module)))
    try:
        with torch.no_grad():
            model(example)
    except InputError:
        raise
    except RuntimeError as exc:
        raise InputError(
            f"the model fails on an input of shape {tuple(example.shape)}: {str(exc).splitlines()[0]}",
            "check --input-shape (channels and size the network expects)",
        ) from exc
    finally:
        for h in handles:
            h.remove()
    return seen


def export_onnx(
    model: nn.Module,
    output: str | os.PathLike,
    *,
    mode: str = "decomposed",
    opset: int = DEFAULT_OPSET,
    input_shape: tuple[int, int, int, int] | str = (1, 3, 224, 224),
    dynamic: str = "batch",
    exporter: str = "auto",
    input_name: str = "input",
    output_name: str = "output",
    inputs_to_protect: tuple[str | os.PathLike, ...] = (),
    precision: str = "fp32",
) -> ExportReport:
    """Export ``model`` to ``output`` (written atomically) and check the file with onnx's full checker."""
    if mode not in MODES:
        raise InputError(f"unknown export mode '{mode}'", f"use one of: {', '.join(MODES)}")
    if dynamic not in DYNAMIC_CHOICES:
        raise InputError(f"unknown --dynamic '{dynamic}'", f"use one of: {', '.join(DYNAMIC_CHOICES)}")
    exporter = resolve_exporter(exporter, opset)
    shape = parse_shape(input_shape)
    out = check_output_path(output, inputs_to_protect)
    start = time.perf_counter()
    model = model.eval()
    example = torch.randn(*shape)
    report = ExportReport(str(out), mode, exporter, opset, shape, dynamic)
    report.simam_modules = probe_simam_inputs(model, example)

    if mode == "plugin":
        from simam_deploy.export_plugin import export_plugin_model_proto

        proto = export_plugin_model_proto(
            model,
            example,
            opset=opset,
            dynamic=dynamic,
            exporter=exporter,
            input_name=input_name,
            output_name=output_name,
        )
    else:
        proto = export_model_proto(model, example, opset, dynamic, exporter, input_name, output_name)
    name_nodes_by_module(proto, model)
    if precision != "fp32":
        from simam_deploy.precision import convert_precision

        proto, conversion = convert_precision(proto, precision)
        report.precision, report.notices, report.opset = precision, conversion.notices, conversion.opset_after
    finalize_and_save(proto, out)
    report.onnx_nodes = len(proto.graph.node)
    report.simam_nodes = sum(n.op_type == "SimAM" for n in proto.graph.node)
    report.seconds = time.perf_counter() - start
    report.file_bytes = out.stat().st_size
    return report


def _dynamic_axes(dynamic: str) -> dict[int, str]:
    return {"batch": {0: "batch"}, "all": {0: "batch", 2: "height", 3: "width"}, "none": {}}[dynamic]


@contextlib.contextmanager
def quiet_exporter():
    """torch's exporters print progress and deprecation chatter; keep our output readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_model_proto(
    model: nn.Module,
    example: torch.Tensor,
    opset: int,
    dynamic: str,
    exporter: str,
    input_name: str = "input",
    output_name: str = "output",
    custom_translation_table: dict | None = None,
) -> onnx.ModelProto:
    """Run one of torch's exporters and return the ModelProto (nothing written to disk)."""
    axes = _dynamic_axes(dynamic)
    try:
        with quiet_exporter():
            if exporter == "dynamo":
                dims = {i: torch.export.Dim.AUTO for i in axes}
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[input_name],
                    output_names=[output_name],
                    dynamic_shapes=(dims,) if dims else None,
                    custom_translation_table=custom_translation_table,
                    verbose=False,
                )
                return program.model_proto
            buffer = io.BytesIO()
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: axes, output_name: {0: "batch"}} if axes else None,
                do_constant_folding=True,
            )
            return onnx.load_from_string(buffer.getvalue())
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"the {exporter} exporter failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
            "try the other exporter (--exporter dynamo|torchscript), a fixed shape (--dynamic batch/none), "
            "or another opset",
        ) from exc


def _module_path_of(node: onnx.NodeProto) -> str | None:
    """The qualified module name a node came from, from dynamo metadata or TorchScript scope names."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip().strip("'\"") for s in prop.value.strip("[]").split(",")]
            return scopes[-2] if len(scopes) >= 2 else ""
    if node.name.startswith("/"):
        # TorchScript: /layer1/layer1.0/conv2/conv2.1/Sub -> layer1.0.conv2.1
        parts, qual = node.name.strip("/").split("/")[:-1], []
        for i, part in enumerate(parts):
            prev = parts[i - 1] if i else None
            qual.append(part[len(prev) + 1 :] if prev and part.startswith(prev + ".") else part)
        return ".".join(qual)
    return None


def readable_path(qualname: str, simam_names: set[str]) -> str:
    """'layer1.0.conv2.1' (a SimAM) -> '/layer1/0/conv2/simam'; 'layer1.0.conv1' -> '/layer1/0/conv1'."""
    parts = qualname.split(".") if qualname else []
    if qualname in simam_names:
        if parts and parts[-1].isdigit():
            parts = parts[:-1]
        parts.append("simam")
    return "/" + "/".join(parts)


def name_nodes_by_module(proto: onnx.ModelProto, model: nn.Module) -> None:
    """Give every node a name that says where it sits in the network, e.g. /layer1/0/conv2/simam/Sigmoid,
    and drop exporter stack traces (they carry local file paths)."""
    simam_names = {name for name, _ in find_simam_modules(model)}
    used: dict[str, int] = {}
    for node in proto.graph.node:
        keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
        qual = _module_path_of(node)
        if qual is None:
            continue
        base = f"{readable_path(qual, simam_names)}/{node.op_type}".replace("//", "/")
        count = used.get(base, 0)
        used[base] = count + 1
        node.name = base if count == 0 else f"{base}_{count}"


def finalize_and_save(proto: onnx.ModelProto, out: Path) -> None:
    cap_ir_version(proto)
    proto.producer_name = "simam-deploy"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise InputError(f"the exported model fails onnx's checker: {str(exc).splitlines()[0]}") from exc
    with atomic_output(out, suffix=".onnx") as tmp:
        onnx.save(proto, str(tmp))
