"""What TensorRT's builder chose: the kernels of an engine's plan, read per SimAM block.

With ``ProfilingVerbosity.DETAILED`` the builder of TensorRT for RTX (and TensorRT's Myelin backend)
logs the finished plan as one verbose message that starts with ``Layers:``: one line per kernel with
its type, tactic, input/output tensors (dimensions, data type, memory format) and the ONNX nodes it
came from (``Metadata: [ONNX Layer: ...]``). This needs no GPU: the plan is decided at build time.

:func:`parse_layer_dump` reads that message into :class:`PlanKernel` objects; :func:`simam_plan`
assigns kernels to SimAM blocks (a fused ``SimAM`` node or a decomposed subgraph, found as ``fuse``
finds them) and estimates the bytes each block moves, so the decomposed and the plugin form of a
network can be compared kernel by kernel (``simam-deploy build`` reports it; docs/tensorrt.md).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

DUMP_HEADER = "Layers:"

_KERNEL = re.compile(
    r"^Name: (?P<name>.*?), LayerType: (?P<type>\w+), Inputs: \[(?P<inputs>.*?)\], "
    r"Constants: \[(?P<constants>.*?)\], Outputs: \[(?P<outputs>.*?)\], TacticName: (?P<tactic>.*?), "
    r"StreamId: \d+, Metadata: ?(?P<metadata>.*)$"
)
_TENSOR = re.compile(
    r"\{ Name: (?P<name>[^,]*), Dimensions: \[(?P<dims>[^\]]*)\].*?Datatype: (?P<dtype>\w+), "
    r"Format: (?P<format>[^}]*?)\s*\}"
)
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]*)\]")

# bytes per element of the data types the dump names
DTYPE_BYTES = {"Float": 4, "Half": 2, "BFloat16": 2, "Int8": 1, "UInt8": 1, "FP8": 1, "Int4": 0.5,
               "Int32": 4, "Int64": 8, "Bool": 1}  # fmt: skip
# kernels that only move data: a transpose, a reformat, a copy
_LAYOUT_NAME = re.compile(r"^__myl_(Tran|Move|Copy|Reformat|Reshape)+_myl")
_LAYOUT_TYPES = {"reformat", "shuffle", "copy"}
_COMPUTE_TYPES = {"correlation", "convolution", "gemm", "matrix_multiply", "runtime_fusion"}


@dataclass
class PlanTensor:
    name: str
    dims: tuple[int, ...]
    dtype: str
    format: str

    def nbytes(self, batch: int) -> int | None:
        """Size at batch ``batch`` (the dump writes a dynamic batch as -1); None when another axis is
        dynamic or the data type is unknown."""
        dims = [batch if (i == 0 and d < 0) else d for i, d in enumerate(self.dims)]
        size = DTYPE_BYTES.get(self.dtype)
        if size is None or any(d < 0 for d in dims):
            return None
        count = 1
        for d in dims:
            count *= d
        return int(count * size)


@dataclass
class PlanKernel:
    name: str
    layer_type: str
    tactic: str
    inputs: list[PlanTensor]
    outputs: list[PlanTensor]
    onnx_layers: list[str]

    @property
    def moves_only(self) -> bool:
        """A transpose/reformat/copy: a kernel that exists only to change a tensor's layout."""
        return self.layer_type in _LAYOUT_TYPES or bool(_LAYOUT_NAME.match(self.name))

    def nbytes(self, batch: int) -> int | None:
        sizes = [t.nbytes(batch) for t in (*self.inputs, *self.outputs)]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def _tensors(text: str) -> list[PlanTensor]:
    found = []
    for m in _TENSOR.finditer(text):
        dims = tuple(int(d) for d in m["dims"].split(",") if d.strip().lstrip("-").isdigit())
        found.append(PlanTensor(m["name"].strip(), dims, m["dtype"], m["format"].strip()))
    return found


def find_layer_dump(messages: Iterable[str]) -> str | None:
    """The builder's plan message among log messages (the last one, if a process built several)."""
    dump = None
    for message in messages:
        if message.lstrip().startswith(DUMP_HEADER):
            dump = message
    return dump


def parse_layer_dump(dump: str) -> list[PlanKernel]:
    """Every kernel line of a ``Layers:`` message, in execution order. Lines that are not kernel lines
    (the I/O tensor table, engine metadata) are skipped; an empty list means the format was not read."""
    kernels = []
    for line in dump.splitlines():
        m = _KERNEL.match(line.strip())
        if m is None:
            continue
        kernels.append(
            PlanKernel(
                name=m["name"].strip(),
                layer_type=m["type"],
                tactic=m["tactic"].strip(),
                inputs=_tensors(m["inputs"]),
                outputs=_tensors(m["outputs"]),
                onnx_layers=_ONNX_LAYER.findall(m["metadata"]),
            )
        )
    return kernels


@dataclass
class SimamBlock:
    """One SimAM of the ONNX file: its name and the ONNX nodes TensorRT may cite for it."""

    name: str
    nodes: set[str]
    kind: str  # "plugin" (one SimAM node) or "decomposed"


def simam_blocks(model: onnx.ModelProto) -> list[SimamBlock]:
    """The SimAM blocks of ``model``, as ``fuse`` finds them: SimAM nodes and decomposed subgraphs."""
    from simam_deploy.graph import contract
    from simam_deploy.graph.patterns import find_simam

    blocks = [
        SimamBlock(node.name or node.output[0], {node.name}, "plugin")
        for node in model.graph.node
        if contract.is_simam_node(node)
    ]
    if any(n.op_type == "Sigmoid" for n in model.graph.node):
        from simam_deploy.graph.fuse import _infer

        for match in find_simam(_infer(copy.deepcopy(model))).matches:
            folder = {n.rsplit("/", 1)[0] for n in match.interior if "/" in n}
            name = folder.pop() if len(folder) == 1 else match.anchor
            blocks.append(SimamBlock(name, set(match.interior) | {match.anchor}, "decomposed"))
    return blocks


@dataclass
class BlockKernel:
    name: str
    role: str  # "simam" | "layout" | "epilogue"
    layer_type: str
    bytes: int | None


@dataclass
class BlockPlan:
    name: str
    kind: str
    kernels: list[BlockKernel] = field(default_factory=list)

    @property
    def layout_kernels(self) -> int:
        return sum(k.role == "layout" for k in self.kernels)

    @property
    def bytes(self) -> int | None:
        sizes = [k.bytes for k in self.kernels]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "kernels": [asdict(k) for k in self.kernels],
            "kernel_count": len(self.kernels),
            "layout_kernels": self.layout_kernels,
            "bytes": self.bytes,
        }


@dataclass
class Plan:
    """The engine's plan as far as it concerns SimAM (``build``'s report carries ``to_dict()``)."""

    kernels: int
    batch: int
    blocks: list[BlockPlan]
    source: str = "builder log, ProfilingVerbosity.DETAILED"

    def to_dict(self) -> dict[str, Any]:
        known = [b.bytes for b in self.blocks if b.bytes is not None]
        return {
            "source": self.source,
            "kernels": self.kernels,
            "batch": self.batch,
            "simam_blocks": len(self.blocks),
            "simam_kernels": sum(len(b.kernels) for b in self.blocks),
            "layout_kernels_next_to_simam": sum(b.layout_kernels for b in self.blocks),
            "simam_bytes": sum(known) if len(known) == len(self.blocks) else None,
            "blocks": [b.to_dict() for b in self.blocks],
        }


def _block_plan(
    block: SimamBlock, kernels: Sequence[PlanKernel], owner: dict[int, str], batch: int
) -> BlockPlan:
    plan = BlockPlan(block.name, block.kind)
    core = [i for i, k in enumerate(kernels) if owner.get(i) == block.name]
    if not core:
        return plan
    consumed = {t.name for i in core for t in kernels[i].inputs}
    produced = {t.name for i in core for t in kernels[i].outputs}
    chosen: dict[int, str] = {i: "simam" for i in core}
    for i, k in enumerate(kernels):
        if i in chosen or i in owner:
            continue
        ins, outs = {t.name for t in k.inputs}, {t.name for t in k.outputs}
        if k.moves_only and (outs & consumed or ins & produced):
            chosen[i] = "layout"  # a transpose/reformat feeding the block or reading its output
        elif ins & produced and k.layer_type not in _COMPUTE_TYPES:
            chosen[i] = "epilogue"  # what TensorRT runs on the block's output: BatchNorm, add, ReLU
    for i in sorted(chosen):
        k = kernels[i]
        plan.kernels.append(BlockKernel(k.name, chosen[i], k.layer_type, k.nbytes(batch)))
    return plan


def simam_plan(kernels: Sequence[PlanKernel], blocks: Sequence[SimamBlock], batch: int) -> Plan:
    """Assign the plan's kernels to SimAM blocks: a kernel that cites a block's ONNX node is the block's
    own; a transpose/reformat next to it and the pointwise kernel that reads its output (the epilogue)
    count with it. Bytes are the activations each kernel reads and writes at batch ``batch``."""
    owner: dict[int, str] = {}
    for i, k in enumerate(kernels):
        cited = set(k.onnx_layers)
        for block in blocks:
            if cited & block.nodes:
                owner[i] = block.name
                break
    return Plan(len(kernels), batch, [_block_plan(b, kernels, owner, batch) for b in blocks])
