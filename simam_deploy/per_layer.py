"""Per-SimAM-block parity: where, in network order, does a deployment start to differ from PyTorch?

The reference side records every SimAM block's input and output with forward hooks. The artefact
side exposes the same two tensors per block:

* ONNX Runtime: an in-memory copy of the file whose graph outputs also list those tensors (decomposed,
  plugin-mode and fused files alike; external weight files are read after checking their locations);
* TensorRT: an engine built from the ONNX file the engine came from, with those tensors marked as
  network outputs (the SimAM layers are plugins there, so marking their inputs and outputs breaks no
  fusion across them).

Blocks are found as ``fuse`` finds them (one ``SimAM`` node, or a subgraph matching the SimAM
formula, see :mod:`simam_deploy.graph.patterns`), so users' own SimAM classes work too. A block is
named by its module path: from the exporter's scope metadata, or from node names such as
``/layer1/0/conv2/simam/Sigmoid`` matched against the reference model's modules.

The walk in network order stops at the first tensor outside tolerance. If it is a block's *output*
while its input matched, that block is ``first_divergence``. If it is a block's *input*, the
difference started in the layers before it (a convolution, say) and no SimAM is blamed.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from simam_deploy.errors import InputError
from simam_deploy.graph import contract
from simam_deploy.onnx_utils import load_onnx
from simam_deploy.parity import OutputStats, RunResult, _finite, compare_arrays

LAYERS_SCHEMA_KEYS = ("layers", "first_divergence", "divergence")


# -- finding the blocks in the ONNX graph ---------------------------------------------------------------


@dataclass
class OnnxBlock:
    """One SimAM in the ONNX graph: the tensors around it and the node that names it."""

    node: str  # the SimAM node, or the Sigmoid of a decomposed block
    input: str
    output: str
    kind: str  # "node" (one SimAM node) or "decomposed"
    folder: str | None  # '/layer1/0/conv2/simam' when the node names carry a module path
    scope: str | None  # module qualname from the exporter's metadata or TorchScript scope names


def _scope_of(node: onnx.NodeProto) -> str | None:
    from simam_deploy.export import _module_path_of

    return _module_path_of(node)


def _folder(names: Sequence[str]) -> str | None:
    folders = {n.rsplit("/", 1)[0] for n in names if "/" in n}
    return folders.pop() if len(folders) == 1 else None


def find_blocks(model: onnx.ModelProto) -> list[OnnxBlock]:
    """Every SimAM block of ``model`` in graph order (the model is not modified)."""
    from simam_deploy.graph.fuse import _infer
    from simam_deploy.graph.patterns import find_simam
    from simam_deploy.onnx_utils import name_nodes

    blocks: list[tuple[int, OnnxBlock]] = []
    position = {n.output[0]: i for i, n in enumerate(model.graph.node) if n.output}
    for node in model.graph.node:
        if contract.is_simam_node(node):
            if contract.read_attributes(node).has_epilogue:
                # its output is act(SimAM * scale + bias + R), not the SimAM module's output
                raise InputError(
                    f"SimAM node {node.name or node.output[0]!r} carries a fused epilogue, so its output "
                    "is not the SimAM module's and cannot be compared layer by layer",
                    "run --per-layer on the file written without --epilogue, or on "
                    "`simam-deploy unfuse` of this one",
                )
            block = OnnxBlock(
                node.name or node.output[0], node.input[0], node.output[0], "node", _folder([node.name]),
                _scope_of(node),
            )  # fmt: skip
            blocks.append((position[node.output[0]], block))
    if any(n.op_type == "Sigmoid" for n in model.graph.node):
        work = copy.deepcopy(model)
        name_nodes(work)
        work = _infer(work)
        by_name = {n.name: n for n in work.graph.node}
        for match in find_simam(work).matches:
            sigmoid = by_name[match.interior[0]]
            block = OnnxBlock(
                sigmoid.name, match.x, match.y, "decomposed", _folder(match.interior), _scope_of(sigmoid)
            )
            blocks.append((position.get(match.y, len(position)), block))
    return [b for _, b in sorted(blocks, key=lambda item: item[0])]


# -- naming blocks after modules --------------------------------------------------------------------------


@dataclass
class Block:
    module: str  # module path in the reference model, e.g. 'layer1.0.conv2.1'
    onnx: OnnxBlock


def _module_paths(model: nn.Module) -> dict[str, str]:
    """'/layer1/0/conv2/simam' (the name export gives a SimAM's nodes) and '/layer1/0/conv2/1' -> path."""
    from simam_deploy.export import readable_path
    from simam_deploy.nn import find_simam_modules

    simam_names = {name for name, _ in find_simam_modules(model)}
    index: dict[str, str] = {}
    for name, _ in model.named_modules():
        if name:
            index.setdefault(readable_path(name, simam_names), name)
            index.setdefault("/" + name.replace(".", "/"), name)
    return index


def map_blocks(blocks: Sequence[OnnxBlock], model: nn.Module) -> list[Block]:
    """Name every ONNX block by the module it came from; refuse blocks no module can be found for."""
    from simam_deploy.nn import find_simam_modules

    modules = dict(model.named_modules())
    by_folder = _module_paths(model)
    mapped: list[Block | None] = []
    for block in blocks:
        path = block.scope if block.scope in modules and block.scope else None
        if path is None and block.folder:
            path = by_folder.get(block.folder)
        mapped.append(Block(path, block) if path else None)
    unnamed = [b for b, m in zip(blocks, mapped, strict=True) if m is None]
    if unnamed:
        # Files whose node names carry no module path: pair by order with the model's SimAM modules,
        # but only when that pairing is unambiguous.
        taken = {m.module for m in mapped if m}
        free = [name for name, _ in find_simam_modules(model) if name not in taken]
        if len(free) != len(unnamed):
            raise InputError(
                f"{len(unnamed)} SimAM block(s) in the file ({', '.join(b.node for b in unnamed[:3])}) "
                "cannot be tied to a module of the reference model",
                "export the file with `simam-deploy export` (its node names carry module paths), or keep "
                "the exporter's node names",
            )
        it = iter(free)
        mapped = [m if m else Block(next(it), b) for b, m in zip(blocks, mapped, strict=True)]
    result = [m for m in mapped if m is not None]
    dupes = {m.module for m in result if sum(r.module == m.module for r in result) > 1}
    if dupes:
        raise InputError(f"several SimAM blocks map to the same module(s) {sorted(dupes)}")
    return result


# -- the artefact side ------------------------------------------------------------------------------------


def probe_model(model: onnx.ModelProto, blocks: Sequence[OnnxBlock]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also list every block's input and output tensor."""
    from simam_deploy.graph.fuse import _infer

    out = copy.deepcopy(model)
    typed = _infer(copy.deepcopy(model))
    types = {vi.name: vi.type for vi in [*typed.graph.input, *typed.graph.value_info, *typed.graph.output]}
    present = {o.name for o in out.graph.output}
    inputs = {i.name for i in out.graph.input}
    for block in blocks:
        for tensor in (block.input, block.output):
            if tensor in present:
                continue
            if tensor in inputs:
                # a graph input cannot also be listed as an output; route it through an Identity
                alias = f"{tensor}__simam_probe"
                out.graph.node.insert(0, onnx.helper.make_node("Identity", [tensor], [alias]))
                _rename_probe(blocks, tensor, alias)
                tensor = alias
            elem = types.get(block.input)
            elem_type = elem.tensor_type.elem_type if elem is not None else onnx.TensorProto.FLOAT
            out.graph.output.append(onnx.helper.make_tensor_value_info(tensor, elem_type or 1, None))
            present.add(tensor)
    return out


def _rename_probe(blocks: Sequence[OnnxBlock], old: str, new: str) -> None:
    for block in blocks:
        if block.input == old:
            block.input = new


class ProbedRunner:
    """A Runner whose ``infer`` returns the model's own outputs and keeps the probed tensors aside.

    ``final`` computes the outputs; ``probe`` (when given, e.g. a debug TensorRT engine) computes the
    probed tensors on the same feed, otherwise ``final`` returns them as extra outputs.
    """

    def __init__(
        self, final: Any, output_names: Sequence[str], tensors: Sequence[str], probe: Any | None = None
    ) -> None:
        self.final = final
        self.probe = probe
        self.name = final.name
        self._outputs = list(output_names)
        self.tensors = list(tensors)
        self.captured: dict[str, np.ndarray] = {}

    @property
    def input_names(self) -> list[str]:
        return self.final.input_names

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_spec(self):
        return self.final.input_spec()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.final.infer(inputs)
        extra = self.probe.infer(inputs) if self.probe is not None else out
        self.captured = {t: np.asarray(extra[t]) for t in self.tensors}
        return {n: out[n] for n in self._outputs}


def onnx_file_probe(
    runner: Any,
    target: str | os.PathLike | onnx.ModelProto,
    model: nn.Module,
    shapes: Sequence[Sequence[int]],
    *,
    backend: Any,
    options: dict[str, Any],
    onnx_source: str | os.PathLike | None = None,
    precision: str = "fp32",
) -> tuple[ProbedRunner, list[Block]]:
    """The registry's per-layer probe for backends that open ONNX files (ONNX Runtime, OpenVINO):
    ``runner`` (the file as it is) for the outputs, the same backend on a copy of the file whose graph
    outputs also list the blocks' tensors for the blocks. The verdict stays on the untouched file: extra
    outputs can change which fusions a runtime applies. ``onnx_source``/``precision`` concern engines."""
    if onnx_source is not None:
        raise InputError(
            "--onnx-source is for TensorRT engines (the ONNX file the engine was built from)",
            "drop --onnx-source: the blocks are read from the ONNX file being validated",
        )
    proto = target if isinstance(target, onnx.ModelProto) else load_onnx(target, check=False)
    blocks = blocks_for(proto, model)
    probe = backend.load(probe_model(proto, [b.onnx for b in blocks]), **options)
    return ProbedRunner(runner, runner.output_names, block_tensors(blocks), probe=probe), blocks


def block_tensors(blocks: Sequence[Block]) -> list[str]:
    """Every block's input and output tensor, in block order, once each."""
    return list(dict.fromkeys(t for b in blocks for t in (b.onnx.input, b.onnx.output)))


# -- the reference side ---------------------------------------------------------------------------------


class TorchHooks:
    """Forward hooks that keep each block's first input and output of the latest forward pass."""

    def __init__(self, model: nn.Module, paths: Sequence[str]) -> None:
        self.captured: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.order: list[str] = []
        self.calls: dict[str, int] = {}
        self._handles = [model.get_submodule(p).register_forward_hook(self._hook(p)) for p in paths]

    def _hook(self, path: str) -> Callable:
        def record(_module: nn.Module, args: tuple, output: Any) -> None:
            self.calls[path] = self.calls.get(path, 0) + 1
            if path in self.captured or not args:
                return  # a module called twice per forward is compared on its first call
            x = args[0]
            self.captured[path] = (_numpy(x), _numpy(output))
            self.order.append(path)

        return record

    def reset(self) -> None:
        self.captured, self.order, self.calls = {}, [], {}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _numpy(t: Any) -> np.ndarray:
    t = t[0] if isinstance(t, (tuple, list)) else t
    return t.detach().float().cpu().numpy().copy()


class HookedTorchRunner:
    """The reference Runner with hooks reset before each run."""

    def __init__(self, runner: Any, hooks: TorchHooks) -> None:
        self.runner, self.hooks, self.name = runner, hooks, runner.name

    @property
    def input_names(self) -> list[str]:
        return self.runner.input_names

    @property
    def output_names(self) -> list[str]:
        return self.runner.output_names

    def input_spec(self):
        return self.runner.input_spec()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.hooks.reset()
        return self.runner.infer(inputs)


# -- comparing and reporting ----------------------------------------------------------------------------


@dataclass
class LayerResult:
    index: int
    module: str
    onnx_node: str
    kind: str
    input: OutputStats
    output: OutputStats
    status: str = "ok"  # ok | diverges | input differs | downstream

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "module": self.module,
            "onnx_node": self.onnx_node,
            "kind": self.kind,
            "status": self.status,
            "passed": self.input.passed and self.output.passed,
            "input": _finite(asdict(self.input)),
            "output": _finite(asdict(self.output)),
        }


@dataclass
class PerLayerReport:
    layers: list[LayerResult] = field(default_factory=list)
    outputs_passed: bool = True
    first_divergence: str | None = None
    divergence: dict | None = None

    def to_dict(self) -> dict:
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "first_divergence": self.first_divergence,
            "divergence": self.divergence,
        }


_COUNT_FIELDS = ("elements", "nan_target", "nan_reference", "inf_target", "inf_reference")


def merge_stats(a: OutputStats | None, b: OutputStats) -> OutputStats:
    """The worst of two runs' statistics: counts add up, errors take the maximum (NaN wins), a pass
    needs both; fields of other kinds keep the first run's value."""
    if a is None:
        return b
    values = {}
    for f in fields(OutputStats):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "passed":
            values[f.name] = bool(x) and bool(y)
        elif x is None or y is None or isinstance(x, bool) or f.name == "top1_agreement":
            values[f.name] = (
                None if f.name == "top1_agreement" else (x if y is None else y if x is None else x)
            )
        elif f.name in _COUNT_FIELDS and isinstance(x, int):
            values[f.name] = x + y
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)):
            values[f.name] = max(x, y, key=lambda v: (math.isnan(v), v))
        else:
            values[f.name] = x
    return OutputStats(**values)


class LayerRecorder:
    """Called after every parity run: compares the captured block tensors of both sides."""

    def __init__(
        self, blocks: Sequence[Block], target: ProbedRunner, hooks: TorchHooks, atol: float, rtol: float
    ):
        self.blocks = {b.module: b for b in blocks}
        self.target, self.hooks = target, hooks
        self.atol, self.rtol = atol, rtol
        self.order: list[str] = []
        self.stats: dict[str, list[OutputStats | None]] = {b.module: [None, None] for b in blocks}
        self.outputs_passed = True

    def __call__(self, run: RunResult) -> None:
        self.outputs_passed = self.outputs_passed and run.passed
        if not self.order:
            self.order = list(self.hooks.order)
            missing = [m for m in self.blocks if m not in self.hooks.captured]
            if missing:
                raise InputError(
                    f"the reference model never ran the module(s) {missing} the file's SimAM blocks map to",
                    "check that --reference is the model the file was exported from",
                )
        for path, (want_x, want_y) in self.hooks.captured.items():
            block = self.blocks.get(path)
            if block is None:
                continue
            got_x = self.target.captured[block.onnx.input]
            got_y = self.target.captured[block.onnx.output]
            pair = self.stats[path]
            pair[0] = merge_stats(pair[0], compare_arrays(got_x, want_x, self.atol, self.rtol))
            pair[1] = merge_stats(pair[1], compare_arrays(got_y, want_y, self.atol, self.rtol))

    def report(self) -> PerLayerReport:
        report = PerLayerReport(outputs_passed=self.outputs_passed)
        for i, path in enumerate(self.order or list(self.blocks)):
            block = self.blocks[path]
            x, y = self.stats[path]
            if x is None or y is None:
                continue
            report.layers.append(LayerResult(i, path, block.onnx.node, block.onnx.kind, x, y))
        locate_divergence(report)
        return report


def locate_divergence(report: PerLayerReport) -> None:
    """Walk the blocks in network order and stop at the first tensor outside tolerance."""
    previous = None
    for i, layer in enumerate(report.layers):
        if not layer.input.passed:
            layer.status = "input differs"
            report.divergence = {
                "where": "before_simam",
                "module": layer.module,
                "after": previous,
                "message": (
                    f"the outputs already differ at the input of {layer.module}"
                    + (f", after {previous} matched" if previous else ", before any SimAM")
                    + ": the divergence starts in the layers in between (a convolution, say), not in a SimAM"
                ),
            }
            _mark_downstream(report.layers[i + 1 :])
            return
        if not layer.output.passed:
            layer.status = "diverges"
            report.first_divergence = layer.module
            report.divergence = {
                "where": "simam",
                "module": layer.module,
                "after": previous,
                "message": f"SimAM block {layer.module} gets a matching input and returns a different output",
            }
            _mark_downstream(report.layers[i + 1 :])
            return
        previous = layer.module
    if not report.outputs_passed:
        report.divergence = {
            "where": "after_last_simam",
            "module": None,
            "after": previous,
            "message": f"every SimAM block matches; the outputs diverge after {previous or 'the input'}",
        }


def _mark_downstream(layers: Sequence[LayerResult]) -> None:
    for layer in layers:
        layer.status = "downstream" if not (layer.input.passed and layer.output.passed) else "ok"


# -- one object for validate ------------------------------------------------------------------------------


class PerLayerSession:
    """Wraps the target and reference runners so that a normal parity check also records every block."""

    def __init__(
        self, blocks: Sequence[Block], target: ProbedRunner, reference: Any, model: nn.Module
    ) -> None:
        self.blocks = list(blocks)
        self.hooks = TorchHooks(model, [b.module for b in blocks])
        self.target = target
        self.reference = HookedTorchRunner(reference, self.hooks)
        self.recorder: LayerRecorder | None = None

    def on_run(self, atol: float, rtol: float, then: Callable[[RunResult], None] | None) -> Callable:
        recorder = self.recorder = LayerRecorder(self.blocks, self.target, self.hooks, atol, rtol)

        def callback(run: RunResult) -> None:
            recorder(run)
            if then is not None:
                then(run)

        return callback

    def report(self) -> PerLayerReport:
        self.hooks.remove()
        if self.recorder is None:
            return PerLayerReport()
        return self.recorder.report()


def blocks_for(model_proto: onnx.ModelProto, model: nn.Module) -> list[Block]:
    onnx_blocks = find_blocks(model_proto)
    if not onnx_blocks:
        raise InputError(
            "--per-layer found no SimAM block in the file (neither SimAM nodes nor the SimAM formula)",
            "check the file with `simam-deploy fuse --dry-run`, or validate without --per-layer",
        )
    return map_blocks(onnx_blocks, model)


# -- presentation ---------------------------------------------------------------------------------------


def layers_table(report: PerLayerReport | dict):
    """A rich table of the per-layer results (a PerLayerReport or its JSON form)."""
    from rich.table import Table

    layers = report["layers"] if isinstance(report, dict) else [x.to_dict() for x in report.layers]
    table = Table(title="per SimAM block: target vs PyTorch (worst over all runs)")
    for col in ("#", "module", "in max abs", "out max abs", "out max rel", "out mean abs", "NaN/Inf", ""):
        table.add_column(col)
    for layer in layers:
        status = layer["status"]
        colour = {"ok": "green", "diverges": "red", "input differs": "red"}.get(status, "yellow")
        o = layer["output"]
        table.add_row(
            str(layer["index"]),
            layer["module"],
            _num(layer["input"]["max_abs"]),
            _num(o["max_abs"]),
            _num(o["max_rel"]),
            _num(o["mean_abs"]),
            f"{o['nan_target']}/{o['inf_target']}",
            f"[{colour}]{status}[/{colour}]",
        )
    return table


def _num(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.3g}"


def plot_layers(report: PerLayerReport, path: str | os.PathLike, atol: float | None = None) -> Path:
    """Max abs error per SimAM block (input and output), log scale, the first divergence marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simam_deploy.fileio import atomic_output, check_output_path

    out = check_output_path(path)
    if not report.layers:
        raise InputError("no per-layer results to plot", "run validate with --per-layer")
    floor = 1e-12  # exact matches have no logarithm; draw them on the floor
    names = [layer.module for layer in report.layers]
    x = np.arange(len(names))
    err_in = [max(layer.input.max_abs, floor) for layer in report.layers]
    err_out = [max(layer.output.max_abs, floor) for layer in report.layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.2))
    ax.semilogy(x, err_in, "o--", color="tab:gray", label="block input")
    ax.semilogy(x, err_out, "o-", color="tab:blue", label="block output")
    if atol is not None:
        ax.axhline(atol, color="tab:orange", linestyle=":", label=f"atol {atol:g}")
    div = report.divergence
    if div and div.get("module") in names:
        k = names.index(div["module"])
        ax.axvline(k, color="tab:red", alpha=0.35, linewidth=6)
        label = "first divergence" if div["where"] == "simam" else "diverges before this block"
        # x in data units, y in axes units: the label sits beside the band, clear of the curves' ends
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85}
        right_side = k < len(names) - 2
        ax.text(
            k + (0.15 if right_side else -0.15), 0.5, label, transform=ax.get_xaxis_transform(),
            color="tab:red", fontsize=9, ha="left" if right_side else "right", bbox=box,
        )  # fmt: skip
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("max |target - PyTorch|")
    ax.set_title("error per SimAM block, in network order")
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.8)
    fig.tight_layout()
    with atomic_output(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out
