"""Replace SimAM subgraphs of any ONNX model by single ``SimAM`` nodes.

Each structural match (see :mod:`simam_deploy.graph.patterns`) is checked numerically before it
is replaced: the original subgraph runs in ONNX Runtime on random inputs of two image sizes and must
equal the float64 reference op with the attributes read off the graph.
"""

from __future__ import annotations

import ast
import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import helper

from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.graph import contract
from simam_deploy.graph.epilogue import EpilogueReport, fold_epilogues
from simam_deploy.graph.function import attach_simam_function
from simam_deploy.graph.patterns import TRIALS, GraphIndex, Match, Reject, find_simam
from simam_deploy.nn import simam_reference_numpy
from simam_deploy.onnx_utils import cap_ir_version, infer_shapes, name_nodes

DEFAULT_ATOL = 1e-4
# float16 subgraphs round every intermediate; compare them loosely.
HALF_ATOL = 2e-2


@dataclass
class FusedNode:
    name: str
    input: str
    output: str
    e_lambda: float
    unbiased: int
    replaced_nodes: list[str]
    max_abs_error: float


@dataclass
class FuseReport:
    fused: list[FusedNode] = field(default_factory=list)
    rejected: list[Reject] = field(default_factory=list)
    existing_simam_nodes: int = 0
    seconds: float = 0.0
    function: bool = False  # the output carries the model-local SimAM function
    notes: list[str] = field(default_factory=list)
    epilogue: EpilogueReport | None = None  # what --epilogue folded (None: not asked for)

    def to_dict(self) -> dict:
        return {
            **({"epilogue": self.epilogue.to_dict()} if self.epilogue is not None else {}),
            "fused": [asdict(f) for f in self.fused],
            "rejected": [asdict(r) for r in self.rejected],
            "existing_simam_nodes": self.existing_simam_nodes,
            "local_function": self.function,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 4),
        }


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises several error types from C++
        raise InputError(
            f"ONNX shape inference failed on this model: {exc}",
            "check the file with onnx.checker.check_model and re-export it",
        ) from exc


# -- numeric check -----------------------------------------------------------------------------


def _subgraph_model(model: onnx.ModelProto, index: GraphIndex, match: Match) -> onnx.ModelProto:
    """A model computing match.y from match.x (and the tensors whose shapes it reads)."""
    stops = {match.x, *match.shape_sources}
    keep: set[str] = set()
    needed_inits: set[str] = set()
    frontier = [match.y]
    while frontier:
        tensor = frontier.pop()
        if tensor in stops or not tensor:
            continue
        if tensor in index.initializers:
            needed_inits.add(tensor)
            continue
        node = index.producer.get(tensor)
        if node is None:
            raise InputError(f"the SimAM subgraph at {match.anchor} reads graph input {tensor}")
        if node.name in keep:
            continue
        keep.add(node.name)
        frontier.extend(node.input)
    nodes = [n for n in model.graph.node if n.name in keep]
    inputs = [_free_input(name, index) for name in sorted(stops)]
    out = helper.make_tensor_value_info(match.y, match.dtype, None)
    graph = helper.make_graph(
        nodes, "simam_check", inputs, [out], [index.initializers[i] for i in sorted(needed_inits)]
    )
    sub = helper.make_model(graph, opset_imports=list(model.opset_import))
    sub.ir_version = model.ir_version
    return cap_ir_version(sub)


def _free_input(name: str, index: GraphIndex) -> onnx.ValueInfoProto:
    dims = index.dims(name) or []
    return helper.make_tensor_value_info(
        name, index.elem_type(name) or onnx.TensorProto.FLOAT, [None] * len(dims)
    )


def check_match(model: onnx.ModelProto, index: GraphIndex, match: Match, atol: float, seed: int = 0) -> float:
    """Max |subgraph - reference| over two image sizes; raises _NumericMismatch past tolerance."""
    ort = _onnxruntime()
    sub = _subgraph_model(model, index, match)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(sub.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise _NumericMismatch(f"the subgraph does not run on its own in ONNX Runtime ({exc})") from exc
    np_type = helper.tensor_dtype_to_np_dtype(match.dtype)
    tol = atol if match.dtype == onnx.TensorProto.FLOAT else max(atol, HALF_ATOL)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for trial in TRIALS:
        feeds = {}
        for name in [match.x, *match.shape_sources]:
            shape = index.trial_dims(name, trial, match.x)
            elem = index.elem_type(name) or onnx.TensorProto.FLOAT
            value = rng.standard_normal(shape) * 1.5
            if name == match.x:  # per-channel offsets: planes whose mean is far from 0
                value = value + rng.standard_normal((*shape[:2], 1, 1))
            feeds[name] = value.astype(helper.tensor_dtype_to_np_dtype(elem))
        got = session.run(None, feeds)[0].astype(np.float64)
        want = simam_reference_numpy(
            feeds[match.x].astype(np_type), match.attrs.e_lambda, match.attrs.unbiased
        )
        if got.shape != want.shape:
            raise _NumericMismatch(f"the subgraph returns shape {got.shape}, SimAM {want.shape}")
        err = float(np.max(np.abs(got - want) / (1.0 + np.abs(want))))
        worst = max(worst, err)
        if not err <= tol:
            raise _NumericMismatch(
                f"numeric check failed: subgraph and SimAM({match.attrs.e_lambda:g}, unbiased="
                f"{int(match.attrs.unbiased)}) differ by {err:.3g} (> {tol:g}) "
                f"on input {list(feeds[match.x].shape)}"
            )
    return worst


class _NumericMismatch(Exception):
    pass


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime is needed to check each match numerically", "pip install onnxruntime"
        ) from exc
    return onnxruntime


# -- surgery -----------------------------------------------------------------------------------


def _module_named(node: onnx.NodeProto) -> str:
    """The node's name as a module path: its own when it has one (TorchScript, our export), else one
    built from the dynamo exporter's scope metadata ('stage.0.attention' -> /stage/0/attention/<op>)."""
    if node.name.startswith("/"):
        # TorchScript repeats the parent in each scope: /stage/stage.0/attention/Sub -> /stage/0/attention/Sub
        parts = node.name.split("/")
        return "/".join(
            part[len(prev) + 1 :] if prev and part.startswith(prev + ".") else part
            for prev, part in zip(["", *parts[:-1]], parts, strict=True)
        )
    for prop in node.metadata_props:
        if prop.key != "pkg.torch.onnx.name_scopes":
            continue
        try:
            scopes = ast.literal_eval(prop.value)
        except (ValueError, SyntaxError):
            return node.name
        if isinstance(scopes, list) and len(scopes) >= 3 and all(isinstance(x, str) for x in scopes):
            return "/" + scopes[-2].replace(".", "/") + "/" + node.op_type
    return node.name


def _fused_name(match: Match, index: GraphIndex, taken: set[str], ordinal: int) -> str:
    # TorchScript/lead-style names share the module path: /layer1/0/simam/Sigmoid -> /layer1/0/simam/SimAM
    # (a user's class may nest its sigmoid: /att/ReduceMean, /att/activation/Sigmoid -> /att/SimAM)
    by_name = {n.name: n for n in index.nodes if n.name in set(match.interior)}
    folder = _common_folder([_module_named(by_name[name]) for name in match.interior if name in by_name])
    base = f"{folder}/SimAM" if folder else f"SimAM_{ordinal}"
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _output_name(node_name: str, current: str, taken: set[str], graph_outputs: set[str]) -> str:
    """'/layer1/0/conv2/simam/SimAM' -> '/layer1/0/conv2/simam/output', so tools' tensor names map back
    to modules; graph outputs and other names keep theirs."""
    if current in graph_outputs or not node_name.startswith("/") or "/" not in node_name:
        return current
    wanted = node_name.rsplit("/", 1)[0] + "/output"
    return current if wanted in taken else wanted


def _common_folder(names: list[str]) -> str:
    """The longest common '/a/b' folder of module-path node names ('' when any name has none)."""
    if not names or not all(n.startswith("/") and n.count("/") >= 2 for n in names):
        return ""
    split = [n.split("/")[1:-1] for n in names]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/" + "/".join(common) if common else ""


def _replace(model: onnx.ModelProto, matches: list[tuple[Match, str]]) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    tensors = graph.tensors()
    taken = set(tensors)
    graph_outputs = {t.name for t in graph.outputs}
    by_name = {n.name: n for n in graph.nodes}
    for match, name in matches:
        anchor = by_name[match.anchor]
        y = anchor.outputs[0]
        new_name = _output_name(name, y.name, taken, graph_outputs)
        if new_name != y.name:
            taken.add(new_name)
            y.name = new_name
        anchor.outputs.clear()  # the old subgraph is now dead; cleanup() drops it
        graph.nodes.append(
            gs.Node(
                contract.OP_TYPE,
                name=name,
                attrs=contract.node_attributes(match.attrs),
                inputs=[tensors[match.x]],
                outputs=[y],
                domain=contract.DOMAIN,
            )
        )
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    out = gs.export_onnx(graph, do_type_check=False)
    out.ir_version = model.ir_version
    _copy_model_metadata(model, out)
    contract.ensure_domain_import(out)
    return out


def _copy_model_metadata(src: onnx.ModelProto, dst: onnx.ModelProto) -> None:
    dst.producer_name = src.producer_name
    dst.producer_version = src.producer_version
    dst.graph.name = src.graph.name
    del dst.metadata_props[:]
    dst.metadata_props.extend(src.metadata_props)


def finalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Check the model, infer shapes and give every SimAM output the type of its input."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InputError(f"the rewritten model fails the ONNX checker: {exc}") from exc
    # the registered SimAM schema lets inference type the SimAM outputs; set any it missed
    model = infer_shapes(model)
    for node in model.graph.node:
        if contract.is_simam_node(node):
            contract.set_output_value_info(model, node.input[0], node.output[0])
    return model


def fuse_simam(
    model: onnx.ModelProto,
    *,
    atol: float = DEFAULT_ATOL,
    dry_run: bool = False,
    seed: int = 0,
    function: bool = True,
    epilogue: bool = False,
) -> tuple[onnx.ModelProto, FuseReport]:
    """Fuse every SimAM subgraph; returns (new model, report). The input model is not modified.

    With ``function`` (default) the result carries SimAM as a model-local ONNX function, so runtimes
    without our op still run it (see :mod:`simam_deploy.graph.function`). With ``epilogue`` what
    follows each SimAM node (per-channel affine, residual Add, Relu/SiLU) is folded into it as well,
    the nodes the file already had included (:mod:`simam_deploy.graph.epilogue`). When nothing
    changes the input model itself is returned.
    """
    start = time.perf_counter()
    contract.default_opset(model)
    report = FuseReport(existing_simam_nodes=len(contract.validate_simam_nodes(model)))
    work = copy.deepcopy(model)
    name_nodes(work)
    work = _infer(work)
    index = GraphIndex(work)
    scan = find_simam(work)
    report.rejected.extend(scan.rejects)
    accepted: list[tuple[Match, str]] = []
    taken = {n.name for n in work.graph.node}
    for ordinal, match in enumerate(scan.matches):
        try:
            err = check_match(work, index, match, atol, seed=seed + ordinal)
        except _NumericMismatch as exc:
            report.rejected.append(Reject(match.anchor, str(exc)))
            continue
        name = _fused_name(match, index, taken, ordinal)
        accepted.append((match, name))
        report.fused.append(
            FusedNode(
                name, match.x, match.y, match.attrs.e_lambda, int(match.attrs.unbiased), match.interior, err
            )
        )
    fused = finalize(_replace(work, accepted)) if accepted else model
    folded_any = False
    if epilogue:
        folded, report.epilogue = fold_epilogues(fused)
        folded_any = bool(report.epilogue.folded)
        if folded_any:
            fused = finalize(folded)
    if dry_run or not (accepted or folded_any):
        report.seconds = time.perf_counter() - start
        return model, report
    if function:
        add_function(fused, report)
    report.seconds = time.perf_counter() - start
    return fused, report


def add_function(model: onnx.ModelProto, report: FuseReport) -> None:
    """Attach the local SimAM function (in place), noting in ``report`` when the opset forbids it."""
    reason = attach_simam_function(model)
    report.function = reason is None
    if reason:
        report.notes.append(f"no local SimAM function: {reason}")
