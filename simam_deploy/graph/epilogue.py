"""Fold what follows a SimAM node into the node's fused epilogue: ``act(SimAM(X) * scale + bias + R)``.

After each plain SimAM node, while the current value has exactly one consumer and is not a graph
output, in this order and stopping at the first thing that does not match:

1. a per-channel affine: an inference-form ``BatchNormalization`` (scale = gamma/sqrt(var+eps),
   bias = beta - mean*scale, computed in float64 and stored in X's element type), or ``Mul`` by a
   per-channel constant optionally followed by ``Add`` of one, or ``Add`` of one alone. Per-channel
   constants have shape [1,C,1,1] or [C,1,1] (or one element); a 1-D [C] operand broadcasts along W,
   not C, and is left alone;
2. the residual: ``Add`` with a tensor of X's shape and type (either operand order);
3. the activation: ``Relu``, or SiLU written ``t * Sigmoid(t)``.

The folded node keeps the name of the SimAM node and writes the last folded tensor, so every name a
later node or a graph output reads is unchanged. The contract is in :mod:`simam_deploy.graph.contract`.
"""

from __future__ import annotations

import copy
import heapq
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from simam_deploy.graph import contract
from simam_deploy.graph.patterns import GraphIndex
from simam_deploy.onnx_utils import infer_shapes, name_nodes

# names of the parts in reports, in the order they fold
PARTS = ("BatchNormalization", "Mul", "Add", "residual Add", "Relu", "SiLU")


@dataclass
class FoldedEpilogue:
    name: str  # the SimAM node
    output: str  # the tensor it now writes
    parts: list[str]
    replaced_nodes: list[str]
    affine: bool
    residual: bool
    activation: str


@dataclass
class EpilogueReport:
    folded: list[FoldedEpilogue] = field(default_factory=list)
    simam_nodes: int = 0  # SimAM nodes looked at

    def parts(self) -> dict[str, int]:
        counts = Counter(part for f in self.folded for part in f.parts)
        return {part: counts[part] for part in PARTS if counts[part]}

    def summary(self) -> str:
        return summary_line(self.to_dict())

    def to_dict(self) -> dict:
        return {
            "blocks_folded": len(self.folded),
            "simam_nodes": self.simam_nodes,
            "parts": self.parts(),
            "folded": [asdict(f) for f in self.folded],
        }


def summary_line(report: dict) -> str:
    """One line from :meth:`EpilogueReport.to_dict`: 'epilogue: folded into 9 of 9 SimAM node(s)
    (BatchNormalization 9, residual Add 9, Relu 9)'."""
    parts = ", ".join(f"{part} {n}" for part, n in report["parts"].items())
    return f"epilogue: folded into {report['blocks_folded']} of {report['simam_nodes']} SimAM node(s)" + (
        f" ({parts})" if parts else ""
    )


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _Folder:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.index = GraphIndex(model)
        self.graph_outputs = {o.name for o in model.graph.output}

    def sole_consumer(self, tensor: str) -> onnx.NodeProto | None:
        consumers = self.index.consumers.get(tensor, [])
        if tensor in self.graph_outputs or len(consumers) != 1:
            return None
        return consumers[0]

    def per_channel(self, tensor: str, channels: int) -> np.ndarray | None:
        """A constant that scales/shifts whole channels, as float64 [C]; None otherwise."""
        if tensor in self.index.producer and self.index.op(tensor) != "Constant":
            return None  # computed at run time (const() would fold constant-only arithmetic too)
        value = self.index.const(tensor)
        if value is None or not np.issubdtype(value.dtype, np.floating):
            return None
        value = value.astype(np.float64)
        if value.size == 1 and value.ndim <= 4:
            return np.full(channels, float(value.reshape(())))
        shape = tuple(value.shape)
        if shape in ((1, channels, 1, 1), (channels, 1, 1)):
            return value.reshape(channels)
        return None

    def other_operand(self, node: onnx.NodeProto, tensor: str) -> str | None:
        if len(node.input) != 2 or node.input[0] == node.input[1]:
            return None
        return node.input[1] if node.input[0] == tensor else node.input[0]

    def batch_norm(self, node: onnx.NodeProto, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
        if len(node.input) != 5 or _attr(node, "training_mode", 0) != 0:
            return None
        if any(out and self.index.consumers.get(out) for out in node.output[1:]):
            return None  # training-form outputs (running mean/var) are read
        params = [self.index.const(name) for name in node.input[1:]]
        if any(p is None or p.shape != (channels,) for p in params):
            return None
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        eps = float(_attr(node, "epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        return scale, beta - mean * scale

    def same_shape(self, a: str, b: str) -> bool:
        da, db = self.index.dims(a), self.index.dims(b)
        if da is None or db is None or len(da) != 4 or len(db) != 4:
            return False
        return all(x is not None and x == y for x, y in zip(da, db, strict=True))

    def fold(self, node: onnx.NodeProto) -> tuple[dict, list[onnx.NodeProto]] | None:
        """The epilogue that follows ``node``: (description, nodes it replaces); None if nothing."""
        x = node.input[0]
        elem = self.index.elem_type(x)
        dims = self.index.dims(x)
        channels = dims[1] if dims is not None and len(dims) == 4 and isinstance(dims[1], int) else None
        cur = node.output[0]
        removed: list[onnx.NodeProto] = []
        parts: list[str] = []
        scale = bias = None
        residual = None
        activation = "none"

        nxt = self.sole_consumer(cur)
        if nxt is not None and channels is not None and self.index.elem_type(nxt.output[0]) == elem:
            if nxt.op_type == "BatchNormalization" and nxt.input[0] == cur:
                folded = self.batch_norm(nxt, channels)
                if folded is not None:
                    scale, bias = folded
                    removed.append(nxt)
                    parts.append("BatchNormalization")
                    cur = nxt.output[0]
            elif nxt.op_type in ("Mul", "Add"):
                other = self.other_operand(nxt, cur)
                value = self.per_channel(other, channels) if other else None
                if value is not None and nxt.op_type == "Mul":
                    scale, bias = value, np.zeros(channels)
                    removed.append(nxt)
                    parts.append("Mul")
                    cur = nxt.output[0]
                    add = self.sole_consumer(cur)
                    if add is not None and add.op_type == "Add":
                        other = self.other_operand(add, cur)
                        shift = self.per_channel(other, channels) if other else None
                        if shift is not None and self.index.elem_type(add.output[0]) == elem:
                            bias = shift
                            removed.append(add)
                            parts.append("Add")
                            cur = add.output[0]
                elif value is not None:
                    scale, bias = np.ones(channels), value
                    removed.append(nxt)
                    parts.append("Add")
                    cur = nxt.output[0]

        nxt = self.sole_consumer(cur)
        if nxt is not None and nxt.op_type == "Add":
            other = self.other_operand(nxt, cur)
            if (
                other
                and self.index.const(other) is None
                and self.index.elem_type(other) == elem
                and self.same_shape(other, x)
                and self.same_shape(nxt.output[0], x)
            ):
                residual = other
                removed.append(nxt)
                parts.append("residual Add")
                cur = nxt.output[0]

        nxt = self.sole_consumer(cur)
        if nxt is not None and nxt.op_type == "Relu":
            activation = "relu"
            removed.append(nxt)
            parts.append("Relu")
            cur = nxt.output[0]
        elif (silu := self.silu(cur)) is not None:
            activation = "silu"
            removed.extend(silu)
            parts.append("SiLU")
            cur = silu[1].output[0]

        if not removed:
            return None
        info = {"scale": scale, "bias": bias, "residual": residual, "activation": activation}
        return {**info, "output": cur, "parts": parts}, removed

    def silu(self, tensor: str) -> list[onnx.NodeProto] | None:
        """[Sigmoid, Mul] when ``tensor`` feeds exactly ``tensor * Sigmoid(tensor)``."""
        consumers = self.index.consumers.get(tensor, [])
        if tensor in self.graph_outputs or len(consumers) != 2:
            return None
        sig = next((n for n in consumers if n.op_type == "Sigmoid"), None)
        mul = next((n for n in consumers if n.op_type == "Mul"), None)
        if sig is None or mul is None or sig.output[0] in self.graph_outputs:
            return None
        if sorted(mul.input) != sorted([tensor, sig.output[0]]):
            return None
        if self.index.consumers.get(sig.output[0], []) != [mul]:
            return None
        return [sig, mul]


def _tensor(name: str, values: np.ndarray, elem_type: int) -> onnx.TensorProto:
    if elem_type == onnx.TensorProto.BFLOAT16:
        return helper.make_tensor(name, elem_type, values.shape, values.astype(np.float32).tolist())
    return numpy_helper.from_array(values.astype(helper.tensor_dtype_to_np_dtype(elem_type)), name)


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Stable topological order (a folded node may read a residual produced later in the list)."""
    producers = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    waiting: dict[int, int] = {}
    readers: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(nodes):
        deps = {producers[t] for t in _reads(n) if t in producers and t not in available}
        deps.discard(i)
        waiting[i] = len(deps)
        for d in deps:
            readers[d].append(i)
    ready = [i for i in range(len(nodes)) if waiting[i] == 0]
    order: list[int] = []
    heapq.heapify(ready)
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers[i]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(nodes):
        raise RuntimeError("folding the SimAM epilogue made the graph cyclic")
    return [nodes[i] for i in order]


def _reads(node: onnx.NodeProto) -> set[str]:
    """Tensors a node reads, including outer-scope names its subgraphs read."""
    names = {t for t in node.input if t}
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            for inner in g.node:
                names |= _reads(inner)
    return names


def fold_epilogues(model: onnx.ModelProto) -> tuple[onnx.ModelProto, EpilogueReport]:
    """A copy of ``model`` with what follows each plain SimAM node folded into it (see module doc).

    Nodes that already carry an epilogue are left as they are. When nothing folds, the copy equals
    the input.
    """
    out = copy.deepcopy(model)
    report = EpilogueReport()
    found = contract.validate_simam_nodes(out)
    report.simam_nodes = len(found)
    if not any(not attrs.has_epilogue for _, attrs in found):
        return out, report
    name_nodes(out)  # removed nodes are found by name in the shape-inferred copy
    folder = _Folder(infer_shapes(out))
    graph = out.graph
    taken = {*(n.name for n in graph.node), *(t.name for t in graph.initializer)}
    drop: set[str] = set()  # names of the nodes the epilogues replace
    candidates: set[str] = set()  # tensors that may have lost their last reader
    for node in graph.node:
        if not contract.is_simam_node(node):
            continue
        attrs = contract.read_attributes(node)
        folded = None if attrs.has_epilogue else folder.fold(node)
        if folded is None:
            continue
        info, removed = folded
        elem = folder.index.elem_type(node.input[0]) or onnx.TensorProto.FLOAT
        epilogue_inputs: list[str] = []
        if info["scale"] is not None:
            for role in ("scale", "bias"):
                name = _unique(f"{node.name}/epilogue_{role}", taken)
                graph.initializer.append(_tensor(name, np.asarray(info[role]), elem))
                epilogue_inputs.append(name)
        if info["residual"] is not None:
            epilogue_inputs.append(info["residual"])
        new_attrs = contract.SimamAttributes(
            attrs.e_lambda,
            attrs.unbiased,
            affine=info["scale"] is not None,
            residual=info["residual"] is not None,
            activation=info["activation"],
        )
        drop.update(n.name for n in removed)
        for n in removed:
            candidates.update(n.input)
        node.input.extend(epilogue_inputs)
        node.output[0] = info["output"]
        # the node keeps its attributes (plugin fields included); the epilogue's follow them
        for key, value in new_attrs.epilogue_dict().items():
            node.attribute.append(helper.make_attribute(key, value))
        report.folded.append(
            FoldedEpilogue(
                node.name,
                info["output"],
                list(info["parts"]),
                [n.name for n in removed],
                new_attrs.affine,
                new_attrs.residual,
                new_attrs.activation,
            )
        )
    if not report.folded:
        return out, report
    kept = [n for n in graph.node if n.name not in drop]
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    ordered = _toposort(kept, available)
    del graph.node[:]
    graph.node.extend(ordered)
    _drop_unused(out, candidates)
    return out, report


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _drop_unused(model: onnx.ModelProto, candidates: set[str]) -> None:
    """Remove the initializers and Constant nodes only the replaced nodes read, and the value_info
    of tensors no longer produced (the SimAM node's old output among them)."""
    graph = model.graph
    read = set().union(*(_reads(n) for n in graph.node)) | {o.name for o in graph.output}
    dead = {t for t in candidates if t not in read}
    keep = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(keep)
    dead_inits = {t.name for t in graph.initializer if t.name in dead}
    inits = [t for t in graph.initializer if t.name not in dead_inits]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name not in dead_inits]  # IR < 4 lists initializers as inputs
    del graph.input[:]
    graph.input.extend(inputs)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    produced |= {t.name for t in graph.initializer}
    infos = [vi for vi in graph.value_info if vi.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)
