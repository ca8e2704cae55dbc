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
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from simam_deploy.errors import InputError
from simam_deploy.fileio import check_output_path
from simam_deploy.graph import contract
from simam_deploy.nn import SimAM, find_simam_modules
from simam_deploy.onnx_utils import EXTERNAL_DATA_THRESHOLD, cap_ir_version, save_onnx
from simam_deploy.resources import check_input_memory
from simam_deploy.shapes import parse_shape

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
    input_shape: tuple[int, ...] | dict[str, list[int]]  # one input, or per input name
    dynamic: str
    simam_modules: list[dict] = field(default_factory=list)  # name, e_lambda, unbiased, input shape
    onnx_nodes: int = 0
    simam_nodes: int = 0  # custom SimAM nodes (plugin mode)
    seconds: float = 0.0
    file_bytes: int = 0
    # every SimAM block found in the exported graph, whatever class implements it: path (module
    # path as in node names), module (qualified name), class, e_lambda, unbiased
    simam_blocks: list[dict] = field(default_factory=list)
    local_function: bool = False
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"  # fp16/bf16: converted after export by simam_deploy.precision
    notices: list[str] = field(default_factory=list)
    epilogue: dict | None = None  # plugin mode with epilogue=True: what was folded (EpilogueReport)

    def to_dict(self) -> dict:
        return asdict(self)


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


def probe_simam_inputs(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> list[dict]:
    """Run the model once (``example``: its input, or a tuple of its inputs), recording what each
    SimAM sees; refuse planes the formula cannot handle. The network's inputs may have any rank;
    only the tensors SimAM receives must be 4-D."""
    args = example if isinstance(example, tuple) else (example,)
    given = ", ".join("x".join(map(str, a.shape)) for a in args)
    seen: list[dict] = []
    handles = []
    from simam_deploy.backends.torch.runner import tensor_outputs

    def hook(name: str, module: SimAM):
        def record(_mod, args):
            x = args[0]
            if x.dim() != 4:
                raise InputError(f"SimAM layer '{name}' receives a {x.dim()}-D tensor; SimAM needs NCHW")
            h, w = int(x.shape[2]), int(x.shape[3])
            if module.unbiased and h * w == 1:
                raise InputError(
                    f"SimAM layer '{name}' sees a 1x1 plane for input shape {given}: the "
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
            tensor_outputs(model(*args))  # a forward returning no tensor is the model's error, named
    except InputError:
        raise
    except RuntimeError as exc:
        raise InputError(
            f"the model fails on an input of shape {given}: {str(exc).splitlines()[0]}",
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
    allow_none: bool = False,
    function: bool = True,
    external_data: str = "auto",
    precision: str = "fp32",
    epilogue: bool = False,
) -> ExportReport:
    """Export ``model`` to ``output`` (written atomically) and check the file with onnx's full checker.

    SimAM blocks are recognised whatever class implements them: the fuse pass (structural match plus
    numeric check) runs on the exported graph. In plugin mode it turns every block into one SimAM node
    (with the model-local SimAM function unless ``function=False``); a network without any is refused
    in plugin mode unless ``allow_none``. ``external_data``: auto|always|never (auto = past 2 GB).
    ``epilogue`` (plugin mode) folds what follows each SimAM node (BatchNormalization or per-channel
    Mul/Add, the residual Add, Relu/SiLU) into it: :mod:`simam_deploy.graph.epilogue`.
    """
    if mode not in MODES:
        raise InputError(f"unknown export mode '{mode}'", f"use one of: {', '.join(MODES)}")
    if epilogue and mode != "plugin":
        raise InputError(
            "--epilogue folds into SimAM nodes, which only --mode plugin writes",
            "add --mode plugin, or run `simam-deploy fuse --epilogue` on the decomposed file",
        )
    if dynamic not in DYNAMIC_CHOICES:
        raise InputError(f"unknown --dynamic '{dynamic}'", f"use one of: {', '.join(DYNAMIC_CHOICES)}")
    exporter = resolve_exporter(exporter, opset)
    shapes = _export_shapes(input_shape, input_name)  # any rank: only the SimAM tensors are 4-D
    out = check_output_path(output, inputs_to_protect)
    check_input_memory(shapes, "--input-shape", copies=2)
    start = time.perf_counter()
    model = model.eval()
    # several inputs: the names (in forward's argument order) become the ONNX input names
    names = list(shapes)
    examples = tuple(torch.randn(*s) for s in shapes.values())
    example = examples[0] if len(examples) == 1 else examples
    input_name = names[0] if len(names) == 1 else names
    shape = shapes[names[0]] if len(names) == 1 else {n: list(s) for n, s in shapes.items()}
    report = ExportReport(str(out), mode, exporter, opset, shape, dynamic)
    report.simam_modules = probe_simam_inputs(model, example)

    if mode == "plugin":
        from simam_deploy.export_plugin import check_plugin_nodes, plugin_translation

        with plugin_translation(model, opset=opset, exporter=exporter) as table:
            proto = export_model_proto(
                model,
                example,
                opset,
                dynamic,
                exporter,
                input_name,
                output_name,
                custom_translation_table=table,
            )
        check_plugin_nodes(proto, model, exporter)
    else:
        proto = export_model_proto(model, example, opset, dynamic, exporter, input_name, output_name)
    name_nodes_by_module(proto, model)
    proto = recognise_simam_blocks(proto, model, report, function=function, epilogue=epilogue)
    if not report.simam_blocks:
        _no_simam_found(model, report, allow_none)
    if precision != "fp32":
        from simam_deploy.precision import convert_precision

        proto, conversion = convert_precision(proto, precision)
        report.precision, report.notices, report.opset = precision, conversion.notices, conversion.opset_after
    written = finalize_and_save(proto, out, external_data=external_data, protect=inputs_to_protect)
    report.onnx_nodes = len(proto.graph.node)
    report.simam_nodes = contract.count_simam_nodes(proto)
    report.seconds = time.perf_counter() - start
    report.files = [str(f) for f in written]
    report.file_bytes = sum(Path(f).stat().st_size for f in written)
    return report


def _module_of(model: nn.Module, path: str) -> tuple[str | None, str | None]:
    """('layer1.0.att', 'MySimAM') for the node folder '/layer1/0/att'; (None, None) if no such module.

    Our own SimAM modules are named '<parent>/simam' in node names (readable_path); they map back to
    the SimAM child of that parent ('layer1.0.conv2.1').
    """
    parts = [p for p in path.strip("/").split("/") if p]
    qual = ".".join(parts)
    with contextlib.suppress(AttributeError):
        return qual, type(model.get_submodule(qual) if qual else model).__name__
    if parts and parts[-1] == "simam":
        parent_qual = ".".join(parts[:-1])
        with contextlib.suppress(AttributeError):
            parent = model.get_submodule(parent_qual) if parent_qual else model
            if isinstance(parent, SimAM):
                return parent_qual, type(parent).__name__
            for name, child in parent.named_children():
                if isinstance(child, SimAM):
                    return ".".join(p for p in (parent_qual, name) if p), type(child).__name__
    return None, None


def recognise_simam_blocks(
    proto: onnx.ModelProto,
    model: nn.Module,
    report: ExportReport,
    *,
    function: bool = True,
    epilogue: bool = False,
) -> onnx.ModelProto:
    """Fill ``report.simam_blocks``; in plugin mode also fuse the blocks our SimAM class did not write."""
    from simam_deploy.graph import contract
    from simam_deploy.graph.fuse import fuse_simam

    plugin = report.mode == "plugin"
    blocks = []
    for node in proto.graph.node:
        if contract.is_simam_node(node):
            attrs = contract.read_attributes(node)
            blocks.append((node.name, attrs.e_lambda, int(attrs.unbiased)))
    fused, fuse_report = fuse_simam(
        proto, dry_run=not plugin, function=function and plugin, epilogue=epilogue and plugin
    )
    blocks += [(f.name, f.e_lambda, f.unbiased) for f in fuse_report.fused]
    if fuse_report.epilogue is not None:
        report.epilogue = fuse_report.epilogue.to_dict()
    folded = bool(fuse_report.epilogue and fuse_report.epilogue.folded)
    if plugin and not fuse_report.fused and not folded and blocks and function:
        from simam_deploy.graph.fuse import add_function

        add_function(fused, fuse_report)
    for name, e_lambda, unbiased in blocks:
        path = name.rsplit("/", 1)[0] if name.startswith("/") else name
        qual, cls = _module_of(model, path)
        report.simam_blocks.append(
            {"path": path, "module": qual, "class": cls, "e_lambda": e_lambda, "unbiased": unbiased}
        )
    report.local_function = fuse_report.function
    report.notes += fuse_report.notes
    return fused if plugin else proto


def _no_simam_found(model: nn.Module, report: ExportReport, allow_none: bool) -> None:
    message = f"no SimAM block found in {type(model).__name__}"
    hint = (
        "SimAM is recognised by its formula, whatever the class: run `simam-deploy fuse MODEL.onnx "
        "--dry-run` on the decomposed export to see near misses and why they were rejected"
    )
    if report.mode == "plugin" and not allow_none:
        raise InputError(
            f"{message}: --mode plugin would write a file with 0 SimAM nodes", hint + "; or --allow-none"
        )
    report.notes.append(f"{message}; {hint}")


def _export_shapes(input_shape, input_name: str) -> dict[str, tuple[int, ...]]:
    """The example shape per input: one shape (any rank) for ``input_name``, or NAME=SHAPE each
    ('feats=2x200x80,weights=2x200', or a mapping), in the order of forward's arguments."""
    from simam_deploy.shapes import parse_input_shapes

    if isinstance(input_shape, Mapping):
        shapes = {k: parse_shape(v, rank=None) for k, v in input_shape.items()}
    elif isinstance(input_shape, str):
        shapes = parse_input_shapes(input_shape)
    else:
        shapes = {None: parse_shape(input_shape, rank=None)}
    return {input_name if name is None else name: s for name, s in shapes.items()}


def _dynamic_axes(dynamic: str, rank: int = 4) -> dict[int, str]:
    """Axes left dynamic. 'all' is every axis but the one the weights are made for: on an image
    [N,C,H,W] batch, H and W; on [B,T,F] features (speech) B and T; on [B,T] (per-frame values)
    both; on higher ranks every axis but the channels (axis 1)."""
    if dynamic == "all" and rank != 4:
        fixed = rank - 1 if rank == 3 else 1 if rank > 4 else None
        return {i: "batch" if i == 0 else f"dim{i}" for i in range(rank) if i != fixed}
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
    example: torch.Tensor | tuple[torch.Tensor, ...],
    opset: int,
    dynamic: str,
    exporter: str,
    input_name: str | Sequence[str] = "input",
    output_name: str = "output",
    custom_translation_table: dict | None = None,
) -> onnx.ModelProto:
    """Run one of torch's exporters and return the ModelProto (nothing written to disk).

    ``example``/``input_name``: one input, or a tuple of inputs with one name each."""
    examples = example if isinstance(example, tuple) else (example,)
    names = [input_name] if isinstance(input_name, str) else list(input_name)
    per_input = {n: _dynamic_axes(dynamic, e.dim()) for n, e in zip(names, examples, strict=True)}
    axes = any(per_input.values())
    try:
        with quiet_exporter():
            if exporter == "dynamo":
                dims = tuple({i: torch.export.Dim.AUTO for i in per_input[n]} or None for n in names)
                program = torch.onnx.export(
                    model,
                    examples,
                    dynamo=True,
                    opset_version=opset,
                    input_names=names,
                    output_names=[output_name],
                    dynamic_shapes=dims if axes else None,
                    custom_translation_table=custom_translation_table,
                    verbose=False,
                )
                return program.model_proto
            buffer = io.BytesIO()
            dynamic_axes = {n: a for n, a in per_input.items() if a} | {output_name: {0: "batch"}}
            torch.onnx.export(
                model,
                examples,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=[output_name],
                dynamic_axes=dynamic_axes if axes else None,
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
    its output tensors names that follow it (/layer1/0/conv2/simam/Sigmoid_output_0; a SimAM node's:
    /layer1/0/conv2/simam/output), and drop exporter stack traces (they carry local file paths)."""
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
    name_tensors_by_node(proto.graph)


def name_tensors_by_node(graph: onnx.GraphProto) -> None:
    """Rename the outputs of module-named nodes after the node; graph inputs/outputs keep their names."""
    fixed = {v.name for v in [*graph.input, *graph.output]} | {t.name for t in graph.initializer}
    taken = set(fixed) | {o for n in graph.node for o in n.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        if not node.name.startswith("/"):
            continue
        for i, old in enumerate(node.output):
            if not old or old in fixed:
                continue
            folder = node.name.rsplit("/", 1)[0]
            new = f"{folder}/output" if contract.is_simam_node(node) else f"{node.name}_output_{i}"
            if new == old or new in taken:
                continue
            rename[old] = new
            taken.add(new)
    for node in graph.node:
        node.input[:] = [rename.get(t, t) for t in node.input]
        node.output[:] = [rename.get(t, t) for t in node.output]
    for vi in graph.value_info:
        vi.name = rename.get(vi.name, vi.name)


def finalize_and_save(
    proto: onnx.ModelProto,
    out: Path,
    *,
    external_data: str = "auto",
    protect: tuple[str | os.PathLike, ...] = (),
) -> list[Path]:
    """Check (full) and write atomically; weights go to ``<out>.data`` past 2 GB or when asked."""
    cap_ir_version(proto)
    proto.producer_name = "simam-deploy"
    try:
        if proto.ByteSize() < EXTERNAL_DATA_THRESHOLD:
            onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise InputError(f"the exported model fails onnx's checker: {str(exc).splitlines()[0]}") from exc
    return save_onnx(proto, out, external_data=external_data, protect=protect)
