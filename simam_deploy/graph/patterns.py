"""Find SimAM subgraphs in ONNX graphs written by any exporter.

Every candidate starts at a ``Sigmoid`` and is read backwards into the SimAM formula
``Y = X * sigmoid(c * D / den + 0.5)`` with ``D = (X - mean_HW(X))^2`` and ``den`` an affine
function ``a * S + b`` of ``S = sum_HW(D)`` (or of ``mean_HW(D)``). That covers the paper's
``D / (4 * (S / (HW-1) + l))``, the mean form ``D / (4 * mean(D) + l)`` (= unbiased 0, e_lambda l/4),
divisors folded into constants or computed from Shape/Gather ops, Div turned into Mul by a
reciprocal, and commuted operands. The attributes follow exactly from ``a``, ``b`` and ``c``:
``n = 4c/a`` must be H*W-1 (unbiased) or H*W, and ``e_lambda = b / (4c)``.

Shape-dependent scalars are evaluated for two different assignments of H and W, so a divisor baked
in for one image size is told apart from one computed from the tensor's shape.
"""

from __future__ import annotations

import ast
import math
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import onnx
from onnx import helper, numpy_helper

from simam_deploy.graph.contract import FLOAT_TYPES, SimamAttributes

# Two assignments of symbolic dimensions; every dimension differs between them.
TRIALS = (0, 1)
LOOKBACK_NODES = 24  # how far back from a Sigmoid to look for a (X - mean(X)) deviation
# Ops a SimAM formula is written with (between the deviation and the sigmoid); the structural
# pre-check walks back through these only, so e.g. a SiLU's sigmoid(Conv(.)) is not a candidate.
FORMULA_OPS = frozenset(
    [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Abs",
        "Neg",
        "Identity",
        "Cast",
        "Reshape",
        "Expand",
        "Squeeze",
        "Unsqueeze",
        "ReduceMean",
        "ReduceSum",
        "ReduceSumSquare",
        "GlobalAveragePool",
        "Shape",
        "Gather",
        "ReduceProd",
        "Concat",
        "Slice",
        "Constant",
        "Max",
        "Min",
    ]
)


# Ops that compute shapes (Shape -> Gather -> Concat -> ...), not tensor data.
SHAPE_OPS = frozenset(
    ["Shape", "Size", "Gather", "Concat", "Slice", "Squeeze", "Unsqueeze", "Cast", "Add", "Sub", "Mul",
     "Div", "ReduceProd", "Identity", "Reshape", "Equal", "Where", "ConstantOfShape", "Max", "Min"]
)  # fmt: skip

_INDEX_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL)


class NearMiss(Exception):
    """The candidate resembles SimAM but is not it (the message says why)."""


@dataclass
class Match:
    x: str
    y: str
    attrs: SimamAttributes
    anchor: str  # name of the final Mul
    interior: list[str]  # names of the nodes the fused node replaces
    shape_sources: list[str]  # tensors besides x whose shapes the divisor reads
    dtype: int = onnx.TensorProto.FLOAT


@dataclass
class Reject:
    node: str  # the Sigmoid where the candidate was found
    reason: str


@dataclass
class Scan:
    matches: list[Match] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def symbol_value(symbol: str, trial: int, batch: bool = False) -> int:
    """Deterministic size for a named dimension: batch-like ones stay tiny (1, 2), spatial ones are
    large enough that deep downsampling (/32) still leaves more than one pixel and two trials differ."""
    if batch:
        return 1 + trial
    # trial 0 keeps H*W <= 37*37 < 2048, exact in float16, so fp16 graphs can tell H*W-1 from H*W
    return (33 if trial == 0 else 65) + zlib.crc32(symbol.encode()) % 5


_DIM_FUNCS = {"floor": math.floor, "ceiling": math.ceil, "ceil": math.ceil, "Max": max, "Min": min,
              "max": max, "min": min, "FloorToInt": math.floor, "CeilToInt": math.ceil}  # fmt: skip


def eval_dim_expression(text: str, value_of) -> int | None:
    """Evaluate an exporter's symbolic dim such as '(((s0 - 1)//2)) + 1' (None if not arithmetic)."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return value_of(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.FloorDiv: lambda: a // b, ast.Div: lambda: a / b, ast.Mod: lambda: a % b}  # fmt: skip
            if type(node.op) in ops:
                return ops[type(node.op)]()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DIM_FUNCS:
            return _DIM_FUNCS[node.func.id](*[walk(a) for a in node.args])
        raise ValueError(ast.dump(node))

    try:
        return int(walk(tree))
    except (ValueError, ZeroDivisionError, TypeError):
        return None


class GraphIndex:
    """Producers, consumers, constants and types of one (shape-inferred) graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.nodes = list(graph.node)
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}
        self.types = {vi.name: vi.type for vi in [*graph.input, *graph.value_info, *graph.output]}
        self._const_cache: dict[str, np.ndarray | None] = {}
        self.batch_symbols = {
            t.tensor_type.shape.dim[0].dim_param
            for t in self.types.values()
            if t.HasField("tensor_type") and t.tensor_type.shape.dim and t.tensor_type.shape.dim[0].dim_param
        }

    def symbol(self, name: str, trial: int) -> int:
        if name.isidentifier():
            return symbol_value(name, trial, batch=name in self.batch_symbols)
        value = eval_dim_expression(name, lambda sym: self.symbol(sym, trial))
        return value if value is not None else symbol_value(name, trial)

    def trial_dims(self, tensor: str, trial: int, x: str | None) -> list[int]:
        """Concrete dims of ``tensor`` for one trial; unknown dims only allowed on ``x`` (fresh symbols)."""
        dims = self.dims(tensor)
        if dims is None:
            raise NearMiss(f"the shape of {tensor} is read but its rank is unknown")
        x_params = self.dim_params(x) if x is not None else []
        out = []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                out.append(d)
            elif isinstance(d, str):
                out.append(self.symbol(d, trial))
            elif tensor == x:
                out.append(self._fresh(axis, trial))
            elif (param := self.dim_params(tensor)[axis]) and param in x_params:
                # inference names an unknown dim unk__N and keeps the name where it knows two dims
                # are equal (x[0, 0] has X's H and W): the same size as X's
                out.append(self._fresh(x_params.index(param), trial))
            else:
                raise NearMiss(f"the divisor reads dim {axis} of {tensor}, whose size is unknown")
        return out

    @staticmethod
    def _fresh(axis: int, trial: int) -> int:
        """A size for X's own unknown dims: nothing else reads them, so small sizes suffice."""
        return 1 + trial if axis == 0 else 5 + 3 * trial + axis

    def dim_params(self, tensor: str) -> list[str]:
        """The raw dim_param of each axis ('' where none)."""
        t = self.types.get(tensor)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return []
        return [d.dim_param for d in t.tensor_type.shape.dim]

    def op(self, tensor: str) -> str | None:
        node = self.producer.get(tensor)
        return node.op_type if node is not None else None

    def elem_type(self, tensor: str) -> int:
        t = self.types.get(tensor)
        return t.tensor_type.elem_type if t is not None and t.HasField("tensor_type") else 0

    def dims(self, tensor: str) -> list[int | str | None] | None:
        """Known dims (int), symbols (str) or None per axis; None if the rank is unknown."""
        t = self.types.get(tensor)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        out: list[int | str | None] = []
        for d in t.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                out.append(d.dim_value)
            elif d.dim_param and not d.dim_param.startswith("unk__"):
                # onnx's shape inference names unknown dims unk__N: no relation to anything, so unknown
                out.append(d.dim_param)
            else:
                out.append(None)
        return out

    def const(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer, Constant node, or constant-only arithmetic)."""
        if tensor not in self._const_cache:
            try:
                self._const_cache[tensor] = ShapeEval(self, x=None, trial=0).value(tensor)
            except NearMiss:
                self._const_cache[tensor] = None
        return self._const_cache[tensor]

    def scalar_const(self, tensor: str) -> float | None:
        value = self.const(tensor)
        if value is None or value.size != 1:
            return None
        return float(value.reshape(()))


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.array(helper.get_attribute_value(a))
        if a.name in ("value_floats", "value_ints"):
            return np.array(helper.get_attribute_value(a))
    raise NearMiss(f"Constant node {node.name} has an unsupported value kind")


class ShapeEval:
    """Evaluates scalars built from constants and tensor shapes for one trial assignment of dims.

    ``x`` is the SimAM input: its unknown dims get fresh symbols (the fused op reads them at run
    time). Any other tensor whose shape is read must have known or symbolic dims.
    """

    _BINARY: ClassVar[dict] = {
        "Add": np.add,
        "Sub": np.subtract,
        "Mul": np.multiply,
        "Pow": np.power,
        "Max": np.maximum,
        "Min": np.minimum,
    }

    def __init__(self, index: GraphIndex, x: str | None, trial: int) -> None:
        self.index = index
        self.x = x
        self.trial = trial
        self.shape_sources: set[str] = set()
        self._memo: dict[str, np.ndarray] = {}

    def shape_of(self, tensor: str) -> list[int]:
        return self.index.trial_dims(tensor, self.trial, self.x)

    def value(self, tensor: str) -> np.ndarray:
        if tensor not in self._memo:
            self._memo[tensor] = self._compute(tensor)
        return self._memo[tensor]

    def _compute(self, tensor: str) -> np.ndarray:
        if tensor in self.index.initializers:
            return numpy_helper.to_array(self.index.initializers[tensor])
        node = self.index.producer.get(tensor)
        if node is None:
            raise NearMiss(f"{tensor} is a graph input, not a constant")
        op = node.op_type
        ins = [i for i in node.input]
        if op == "Constant":
            return _constant_node_value(node)
        if op == "Shape":
            if self.x is None:
                raise NearMiss("shape-dependent")
            self.shape_sources.add(ins[0])
            shape = np.array(self.shape_of(ins[0]), dtype=np.int64)
            start, end = _attr(node, "start", 0), _attr(node, "end", None)
            return shape[start:end]
        if op == "Size":
            if self.x is None:
                raise NearMiss("shape-dependent")
            self.shape_sources.add(ins[0])
            return np.array(int(np.prod(self.shape_of(ins[0]))), dtype=np.int64)
        if op in ("Identity", "Cast", "Squeeze", "Unsqueeze", "Reshape", "Neg", "Reciprocal", "Sqrt"):
            return self._unary(node, self.value(ins[0]))
        if op in self._BINARY:
            return self._BINARY[op](self.value(ins[0]), self.value(ins[1]))
        if op == "Div":
            a, b = self.value(ins[0]), self.value(ins[1])
            if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
                return np.trunc(a / b).astype(a.dtype)
            return a / b
        if op == "Gather":
            return np.take(self.value(ins[0]), self.value(ins[1]), axis=_attr(node, "axis", 0))
        if op == "Concat":
            return np.concatenate([np.atleast_1d(self.value(i)) for i in ins], axis=_attr(node, "axis", 0))
        if op in ("ReduceProd", "ReduceSum"):
            data = self.value(ins[0])
            axes = _attr(node, "axes", None)
            if axes is None and len(ins) > 1 and ins[1]:
                axes = self.value(ins[1]).tolist()
            keep = bool(_attr(node, "keepdims", 1))
            fn = np.prod if op == "ReduceProd" else np.sum
            return np.asarray(fn(data, axis=tuple(axes) if axes else None, keepdims=keep))
        if op == "Slice":
            return self._slice(node, ins)
        raise NearMiss(f"{op} node {node.name} is not a constant or shape computation")

    def _unary(self, node: onnx.NodeProto, v: np.ndarray) -> np.ndarray:
        op = node.op_type
        if op == "Identity":
            return v
        if op == "Cast":
            return v.astype(helper.tensor_dtype_to_np_dtype(_attr(node, "to")))
        if op == "Neg":
            return -v
        if op == "Reciprocal":
            return 1.0 / v
        if op == "Sqrt":
            return np.sqrt(v)
        if op == "Reshape":
            return v.reshape(self.value(node.input[1]).astype(np.int64).tolist() or [])
        axes = _attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.value(node.input[1]).tolist()
        if op == "Squeeze":
            return np.squeeze(v, axis=tuple(axes)) if axes else np.squeeze(v)
        out = v
        for axis in sorted(axes):
            out = np.expand_dims(out, axis)
        return out

    def _slice(self, node: onnx.NodeProto, ins: list[str]) -> np.ndarray:
        data = self.value(ins[0])
        starts, ends = self.value(ins[1]).tolist(), self.value(ins[2]).tolist()
        axes = self.value(ins[3]).tolist() if len(ins) > 3 and ins[3] else list(range(len(starts)))
        steps = self.value(ins[4]).tolist() if len(ins) > 4 and ins[4] else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
            index[a] = slice(s, e, st)
        return data[tuple(index)]


def reduce_axes(index: GraphIndex, node: onnx.NodeProto) -> list[int] | None:
    """The reduce axes of a Reduce* node (attribute before opset 13/18, input after); None = all."""
    axes = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = index.const(node.input[1])
        if value is None:
            raise NearMiss(f"{node.op_type} {node.name} has non-constant axes")
        axes = value.astype(np.int64).reshape(-1).tolist()
    if axes is None and _attr(node, "noop_with_empty_axes", 0):
        return []
    return axes


def _is_hw_axes(axes: list[int] | None) -> bool:
    return axes is not None and sorted(a % 4 for a in axes) == [2, 3]


REDUCTION_OPS = frozenset(
    ["ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "Einsum", "GlobalAveragePool"]
)
# ops that put the reduced axes back after a keepdims=0 reduction ([:, :, None, None], view(n, c, 1, 1))
RESTORE_OPS = ("Unsqueeze", "Reshape")


@dataclass
class Reduction:
    """A reduction of ``src`` over ``axes``, as users write it: one Reduce op, a chain of them
    (``x.mean(2).mean(3)``), an ``einsum('nchw->nc')``, or a GlobalAveragePool; ``keep``: the result
    has the reduced axes as size 1 (keepdims, or restored by Unsqueeze/Reshape)."""

    src: str
    kind: str  # ReduceMean | ReduceSum | ReduceSumSquare
    axes: list[int] | None  # None: every axis
    keep: bool
    nodes: list[onnx.NodeProto]


def _einsum_hw_sum(node: onnx.NodeProto) -> bool:
    """True for a one-operand Einsum that sums the last two of four axes ('nchw->nc', 'ijkl->ij')."""
    equation = _attr(node, "equation", b"")
    equation = (equation.decode() if isinstance(equation, bytes) else str(equation)).replace(" ", "")
    if len(node.input) != 1 or "->" not in equation:
        return False
    lhs, rhs = equation.split("->")
    return len(lhs) == 4 and len(set(lhs)) == 4 and rhs == lhs[:2]


def find_reduction(index: GraphIndex, tensor: str, max_restores: int = 3) -> Reduction | None:
    """The reduction that computes ``tensor`` (see :class:`Reduction`), else None."""
    restores: list[onnx.NodeProto] = []
    node = index.producer.get(tensor)
    while node is not None and node.op_type in RESTORE_OPS and len(restores) < max_restores:
        restores.append(node)
        node = index.producer.get(node.input[0])
    if node is None:
        return None
    if node.op_type == "GlobalAveragePool":
        red = Reduction(node.input[0], "ReduceMean", [2, 3], True, [node])
    elif node.op_type == "Einsum" and _einsum_hw_sum(node):
        red = Reduction(node.input[0], "ReduceSum", [2, 3], False, [node])
    elif node.op_type in ("ReduceMean", "ReduceSum", "ReduceSumSquare"):
        axes = reduce_axes(index, node)
        red = Reduction(node.input[0], node.op_type, axes, bool(_attr(node, "keepdims", 1)), [node])
        # a mean of a mean (a sum of a sum) over other axes is the mean (sum) over all of them
        inner = index.producer.get(red.src)
        while (
            red.axes is not None
            and inner is not None
            and inner.op_type == node.op_type
            and node.op_type != "ReduceSumSquare"
            and _attr(inner, "keepdims", 1)
            and len(index.consumers.get(inner.output[0], [])) == 1
        ):
            inner_axes = reduce_axes(index, inner)
            if inner_axes is None:
                break
            red.axes = sorted({a % 4 for a in red.axes} | {a % 4 for a in inner_axes})
            red.nodes.append(inner)
            red.src = inner.input[0]
            inner = index.producer.get(red.src)
    else:
        return None
    if restores:
        dims = index.dims(tensor)
        if red.keep or dims is None or len(dims) != 4 or dims[2:] != [1, 1]:
            return None
        red.keep = True
        red.nodes += restores
    return red


@dataclass
class _Affine:
    """a * S + b for one trial, where S = sum over H,W of D."""

    a: float
    b: float


class SimamMatcher:
    """Reads one Sigmoid candidate backwards; raises NearMiss with the reason on any mismatch."""

    def __init__(self, index: GraphIndex) -> None:
        self.index = index

    # -- entry point ----------------------------------------------------------------------------
    def scan(self) -> Scan:
        result = Scan()
        for node in self.index.nodes:
            if node.op_type != "Sigmoid":
                continue
            if not self.looks_like_simam(node):
                continue
            try:
                result.matches.append(self.match_sigmoid(node))
            except NearMiss as miss:
                result.rejects.append(Reject(node.name, str(miss)))
        return result

    def looks_like_simam(self, sigmoid: onnx.NodeProto) -> bool:
        """True if a (T - mean(T)) deviation appears a few nodes above the Sigmoid, or the Sigmoid
        reads ``something + 0.5`` computed from a reduction. Every candidate that does not fuse is
        reported with its reason; anything else (a SiLU's sigmoid(Conv(.))) is not SimAM-like."""
        frontier, seen = deque([sigmoid.input[0]]), set()
        reduced = False
        while frontier and len(seen) < LOOKBACK_NODES:
            tensor = frontier.popleft()  # breadth first: the deviation is a few nodes up
            node = self.index.producer.get(tensor)
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type == "Sub" and self._is_deviation(node):
                return True
            # any reduction, right or wrong (an einsum over the wrong axes is still explained)
            reduced |= node.op_type in REDUCTION_OPS
            if node.op_type in FORMULA_OPS:  # a Conv, Relu, ... ends the SimAM formula
                frontier.extend(i for i in node.input if i)
        return reduced and self._adds_half(sigmoid.input[0])

    def _adds_half(self, tensor: str) -> bool:
        node = self.index.producer.get(tensor)
        if node is None or node.op_type != "Add":
            return False
        values = [self.index.scalar_const(i) for i in node.input]
        return any(v is not None and abs(v - 0.5) < 1e-6 for v in values)

    def _is_deviation(self, sub: onnx.NodeProto) -> bool:
        """Sub(T, mean(T)) with the mean in any written form (near misses included: the matcher
        then says what is wrong with it)."""
        for a, b in (sub.input, reversed(sub.input)):
            red = find_reduction(self.index, b)
            if red is not None and red.src == a and red.kind == "ReduceMean":
                return True
            mean_node = self.index.producer.get(b)
            if mean_node is not None and mean_node.op_type in ("Div", "Mul"):
                for inp in mean_node.input:
                    red = find_reduction(self.index, inp)
                    if red is not None and red.src == a and red.kind == "ReduceSum":
                        return True
        return False

    # -- the formula, outside in ------------------------------------------------------------------
    def match_sigmoid(self, sigmoid: onnx.NodeProto) -> Match:
        interior = [sigmoid]
        energy_t, offset_node = self._split_offset(sigmoid.input[0])
        interior.append(offset_node)
        d_tensor, scale, den, ratio_nodes = self._split_ratio(energy_t)
        interior += ratio_nodes
        x, dev_nodes = self._square_deviation(d_tensor)
        interior += dev_nodes
        anchor = self._final_mul(sigmoid, x)
        interior.append(anchor)
        attrs, den_nodes, shape_sources = self._attributes(den, d_tensor, x, scale)
        interior += den_nodes
        self._check_rank(x)
        interior += self._shape_readers(interior)
        self._check_private(interior, anchor)
        shape_sources |= self._outside_shape_reads(interior, x)
        names = list(dict.fromkeys(n.name for n in interior))
        return Match(
            x=x,
            y=anchor.output[0],
            attrs=attrs,
            anchor=anchor.name,
            interior=names,
            # a shape read off the block's own intermediates is computed inside the block
            shape_sources=sorted(shape_sources - {x} - {o for n in interior for o in n.output}),
            dtype=self.index.elem_type(x) or onnx.TensorProto.FLOAT,
        )

    def _split_offset(self, tensor: str) -> tuple[str, onnx.NodeProto]:
        node = self.index.producer.get(tensor)
        if node is None or node.op_type != "Add":
            raise NearMiss(
                f"the sigmoid's input comes from {node.op_type if node else 'a graph input'}, "
                "SimAM adds 0.5 right before the sigmoid"
            )
        for const_in, other in ((node.input[1], node.input[0]), (node.input[0], node.input[1])):
            value = self.index.scalar_const(const_in)
            if value is None:
                continue
            if abs(value - 0.5) > 1e-6:
                raise NearMiss(f"the sigmoid's offset is {value:g}, SimAM adds 0.5")
            return other, node
        raise NearMiss("the sigmoid's input is an Add without a constant 0.5")

    def _split_ratio(self, tensor: str) -> tuple[str, float, str, list[onnx.NodeProto]]:
        """energy = scale * D / den; returns (D, scale, den, nodes)."""
        node = self.index.producer.get(tensor)
        if node is None or node.op_type not in ("Div", "Mul"):
            raise NearMiss(
                f"the energy is computed by {node.op_type if node else 'nothing'}, not D / denominator"
            )
        if node.op_type == "Div":
            numer, den = node.input[0], node.input[1]
            numer_node = self.index.producer.get(numer)
            scale = 1.0
            if numer_node is not None and numer_node.op_type == "Mul":
                for c_in, other in ((numer_node.input[1], numer_node.input[0]), numer_node.input):
                    c = self.index.scalar_const(c_in)
                    if c is not None:
                        return other, c, den, [node, numer_node]
            return numer, scale, den, [node]
        # Mul(D, 1/den) in either order
        for d_in, r_in in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            r_node = self.index.producer.get(r_in)
            if r_node is None or not self._is_square_like(d_in):
                continue
            if r_node.op_type == "Reciprocal":
                return d_in, 1.0, r_node.input[0], [node, r_node]
            if r_node.op_type == "Div":
                c = self.index.scalar_const(r_node.input[0])
                if c is not None:
                    return d_in, c, r_node.input[1], [node, r_node]
        raise NearMiss("the energy is a Mul that is not D times the reciprocal of a denominator")

    def _is_square_like(self, tensor: str) -> bool:
        return self.index.op(tensor) in ("Pow", "Mul", "Abs")

    def _square_deviation(self, tensor: str) -> tuple[str, list[onnx.NodeProto]]:
        """D = (X - mean_HW(X))^2; returns (X, nodes)."""
        node = self.index.producer.get(tensor)
        if node is None:
            raise NearMiss("the energy's numerator is a graph input")
        if node.op_type == "Abs":
            raise NearMiss("the deviation goes through Abs; SimAM squares it")
        if node.op_type == "Pow":
            exponent = self.index.scalar_const(node.input[1])
            if exponent != 2.0:
                raise NearMiss(f"the deviation is raised to the power {exponent}, SimAM squares it")
            dev = node.input[0]
        elif node.op_type == "Mul" and node.input[0] == node.input[1]:
            dev = node.input[0]
        else:
            raise NearMiss(f"the energy's numerator comes from {node.op_type}, not the squared deviation")
        sub = self.index.producer.get(dev)
        if sub is None or sub.op_type != "Sub":
            raise NearMiss("the squared term is not a difference X - mean(X)")
        for x, mean in (sub.input, reversed(sub.input)):
            mean_nodes = self._mean_hw(mean, x)
            if mean_nodes is not None:
                return x, [node, sub, *mean_nodes]
        raise NearMiss("the deviation does not subtract the mean of X over H,W from X")

    def _mean_hw(self, tensor: str, x: str) -> list[onnx.NodeProto] | None:
        red = find_reduction(self.index, tensor)
        if red is not None and red.src == x and red.kind == "ReduceMean":
            if not _is_hw_axes(red.axes):
                raise NearMiss(f"the mean is taken over axes {red.axes}, SimAM averages over H,W (2, 3)")
            if not red.keep:
                raise NearMiss("the mean drops the reduced axes (keepdims=0)")
            return red.nodes
        node = self.index.producer.get(tensor)
        if node is not None and node.op_type in ("Div", "Mul"):
            return self._mean_as_sum(node, x)
        return None

    def _mean_as_sum(self, node: onnx.NodeProto, x: str) -> list[onnx.NodeProto] | None:
        """mean = sum_HW(X) / (H*W) or sum_HW(X) * (1/(H*W)), the sum in any written form."""
        for s_in, c_in in (node.input, reversed(node.input)):
            red = find_reduction(self.index, s_in)
            if red is None or red.kind != "ReduceSum" or red.src != x:
                continue
            if not _is_hw_axes(red.axes) or not red.keep:
                raise NearMiss("the mean's sum is not over H,W with the reduced axes kept")
            for trial in TRIALS:
                ev = ShapeEval(self.index, x, trial)
                hw = float(np.prod(ev.shape_of(x)[2:]))
                c = float(np.asarray(ev.value(c_in)).reshape(()))
                got = c if node.op_type == "Div" else 1.0 / c
                if abs(got - hw) > 1e-3 * hw:
                    raise NearMiss(f"the mean divides the sum by {got:g}, not H*W={hw:g}")
            return [node, *red.nodes]
        return None

    def _final_mul(self, sigmoid: onnx.NodeProto, x: str) -> onnx.NodeProto:
        users = self.index.consumers.get(sigmoid.output[0], [])
        for user in users:
            if user.op_type == "Mul" and sorted(user.input) == sorted([x, sigmoid.output[0]]):
                if len(users) > 1 or sigmoid.output[0] in self.index.graph_outputs:
                    raise NearMiss("the attention map is also used outside the X * sigmoid(.) product")
                return user
        raise NearMiss(
            "the attention map sigmoid(.) is not multiplied with X (it is returned or used otherwise)"
        )

    # -- the denominator ------------------------------------------------------------------------
    def _attributes(
        self, den: str, d_tensor: str, x: str, scale: float
    ) -> tuple[SimamAttributes, list[onnx.NodeProto], set[str]]:
        lambdas, unbiased_votes, nodes, sources = [], set(), [], set()
        for trial in TRIALS:
            ev = ShapeEval(self.index, x, trial)
            trial_nodes: list[onnx.NodeProto] = []
            aff = self._affine(den, d_tensor, x, ev, trial_nodes)
            nodes += trial_nodes
            sources |= ev.shape_sources
            hw = float(np.prod(ev.shape_of(x)[2:]))
            if aff.a <= 0 or scale <= 0:
                raise NearMiss("the denominator does not grow with the variance")
            n = 4.0 * scale / aff.a
            vote = self._divisor_vote(n, hw, half=self.index.elem_type(x) != onnx.TensorProto.FLOAT)
            if vote is not None:
                unbiased_votes.add(vote)
            lambdas.append(aff.b / (4.0 * scale))
        if not unbiased_votes:
            raise NearMiss("float16 rounding hides whether the variance divides by H*W-1 or H*W")
        if len(unbiased_votes) != 1:
            raise NearMiss("the variance divisor is H*W-1 for one image size and H*W for another")
        e_lambda = lambdas[0]
        if not math.isfinite(e_lambda) or e_lambda <= 0:
            raise NearMiss(f"lambda comes out as {e_lambda:g}; SimAM needs lambda > 0")
        if abs(lambdas[1] - e_lambda) > 1e-3 * abs(e_lambda):
            raise NearMiss("lambda changes with the image size")
        lam32 = float(str(np.float32(e_lambda)))  # the float32 the attribute stores, shortest spelling
        return SimamAttributes(e_lambda=lam32, unbiased=unbiased_votes.pop()), nodes, sources

    @staticmethod
    def _divisor_vote(n: float, hw: float, half: bool) -> bool | None:
        """True: n is H*W-1, False: H*W, None: float16 rounding cannot tell. NearMiss if neither."""
        tol = max(0.01, 2e-3 * hw) if half else 1e-2 * max(1.0, hw * 1e-3)
        near_unbiased = hw > 1 and abs(n - (hw - 1)) < tol
        near_biased = abs(n - hw) < tol
        if near_unbiased and near_biased:
            if abs(n - (hw - 1)) < 0.01 or abs(n - hw) < 0.01:  # exact enough to decide
                return abs(n - (hw - 1)) < abs(n - hw)
            return None
        if near_unbiased or near_biased:
            return near_unbiased
        raise NearMiss(
            f"the energy's scale implies a variance divisor {n:.6g} for H*W={hw:g}; SimAM divides by "
            "H*W-1 or H*W with a factor 4 (a constant other than 4, or a divisor baked in for another size)"
        )

    def _affine(
        self,
        tensor: str,
        d_tensor: str,
        x: str,
        ev: ShapeEval,
        nodes: list[onnx.NodeProto],
        restored: bool = False,
    ) -> _Affine:
        """The denominator as a * S + b; ``restored``: a Reshape/Expand/Unsqueeze below restores the
        (N, C, 1, 1) shape, so the variance may drop the reduced axes."""
        node = self.index.producer.get(tensor)
        stat = self._variance_stat(tensor, d_tensor, x, ev, restored, nodes)
        if stat is not None:
            return stat
        try:
            value = np.asarray(ev.value(tensor))
        except NearMiss:
            value = None
        if value is not None:
            if value.size != 1:
                raise NearMiss(f"{tensor} in the denominator is not a scalar")
            return _Affine(0.0, float(value.reshape(())))
        if node is None:
            raise NearMiss("the denominator reads a graph input")
        op = node.op_type
        if op in ("Identity", "Cast"):
            nodes.append(node)
            return self._affine(node.input[0], d_tensor, x, ev, nodes, restored)
        if op in ("Reshape", "Expand", "Unsqueeze"):
            # torch.var under dynamo: a keepdims=0 variance brought back to (N, C, 1, 1)
            self._check_restores_hw(node, x, ev)
            nodes.append(node)
            return self._affine(node.input[0], d_tensor, x, ev, nodes, restored=True)
        root = self._sqrt_squared(node)
        if root is not None:  # torch.std(...) ** 2
            nodes += [node, root]
            return self._affine(root.input[0], d_tensor, x, ev, nodes, restored)
        if op in ("Add", "Sub", "Mul", "Div"):
            nodes.append(node)
            p = self._affine(node.input[0], d_tensor, x, ev, nodes, restored)
            q = self._affine(node.input[1], d_tensor, x, ev, nodes, restored)
            return self._combine(op, p, q)
        raise NearMiss(f"the denominator uses {op}, not an affine function of the variance")

    def _sqrt_squared(self, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """The Sqrt node of Pow(Sqrt(v), 2) or Mul(Sqrt(v), Sqrt(v)), else None."""
        if node.op_type == "Pow" and self.index.scalar_const(node.input[1]) != 2.0:
            return None
        if node.op_type == "Mul" and node.input[0] != node.input[1]:
            return None
        if node.op_type not in ("Pow", "Mul"):
            return None
        root = self.index.producer.get(node.input[0])
        return root if root is not None and root.op_type == "Sqrt" else None

    def _check_restores_hw(self, node: onnx.NodeProto, x: str, ev: ShapeEval) -> None:
        """A Reshape/Expand/Unsqueeze in the denominator must give (N, C, 1, 1): the per-channel shape."""
        dims = self.index.dims(node.output[0])
        channels = (self.index.dims(x) or [None, None])[1]
        if dims is not None and len(dims) == 4 and dims[2] == 1 and dims[3] == 1:
            if dims[1] == channels or not isinstance(dims[1], int) or not isinstance(channels, int):
                return
            raise NearMiss(f"the denominator's {node.op_type} gives shape {dims}, not one value per channel")
        if node.op_type == "Unsqueeze":
            axes = _attr(node, "axes", None)
            if axes is None and len(node.input) > 1:
                axes = self.index.const(node.input[1])
                axes = None if axes is None else axes.reshape(-1).tolist()
            if axes is not None and sorted(a % 4 for a in axes) == [2, 3]:
                return
        elif len(node.input) > 1:
            try:
                shape = np.asarray(ev.value(node.input[1])).reshape(-1).tolist()
            except NearMiss:
                shape = []
            if (
                len(shape) == 4
                and shape[2:] == [1, 1]
                and (not isinstance(channels, int) or shape[1] == channels)
            ):
                return
        raise NearMiss(f"the denominator's {node.op_type} does not give one value per channel (N, C, 1, 1)")

    @staticmethod
    def _combine(op: str, p: _Affine, q: _Affine) -> _Affine:
        if op == "Add":
            return _Affine(p.a + q.a, p.b + q.b)
        if op == "Sub":
            return _Affine(p.a - q.a, p.b - q.b)
        if op == "Mul":
            if p.a and q.a:
                raise NearMiss("the denominator multiplies the variance by itself")
            return _Affine(p.a * q.b + q.a * p.b, p.b * q.b)
        if q.a or q.b == 0:
            raise NearMiss("the denominator divides by the variance")
        return _Affine(p.a / q.b, p.b / q.b)

    def _variance_stat(
        self,
        tensor: str,
        d_tensor: str,
        x: str,
        ev: ShapeEval,
        restored: bool = False,
        nodes: list[onnx.NodeProto] | None = None,
    ) -> _Affine | None:
        """S = sum_HW(D) -> (1, 0); mean_HW(D) -> (1/HW, 0); None if ``tensor`` is not a reduction.

        The reduction may be written in any form :func:`find_reduction` knows; its nodes are added
        to ``nodes``."""
        red = find_reduction(self.index, tensor)
        if red is None:
            return None
        src = red.src
        if red.kind == "ReduceSumSquare":
            sub = self.index.producer.get(src)
            if sub is None or sub.op_type != "Sub" or sub.output[0] != self.index.producer[d_tensor].input[0]:
                raise NearMiss("ReduceSumSquare in the denominator is not over X - mean(X)")
        elif src != d_tensor:
            try:
                # torch.var squares the deviation a second time (Mul(dev, dev)); those nodes belong too
                x_other, own_nodes = self._square_deviation(src)
            except NearMiss as miss:
                raise NearMiss(
                    f"the denominator reduces something other than the squared deviation ({miss})"
                ) from miss
            if x_other != x:
                raise NearMiss("the denominator's variance is of a different tensor")
            if nodes is not None:
                nodes.extend(own_nodes)
        if not _is_hw_axes(red.axes):
            raise NearMiss(f"the variance is reduced over axes {red.axes}, not H,W (2, 3)")
        if not red.keep and not restored:
            raise NearMiss("the variance drops the reduced axes (keepdims=0) and nothing restores them")
        if nodes is not None:
            nodes.extend(red.nodes)
        if red.kind == "ReduceMean":
            return _Affine(1.0 / float(np.prod(ev.shape_of(x)[2:])), 0.0)
        return _Affine(1.0, 0.0)

    # -- safety ----------------------------------------------------------------------------------
    def _check_rank(self, x: str) -> None:
        dims = self.index.dims(x)
        if dims is None or len(dims) != 4:
            raise NearMiss(
                f"X ({x}) has {'unknown rank' if dims is None else f'rank {len(dims)}'}; SimAM needs NCHW"
            )
        elem = self.index.elem_type(x)
        if elem and elem not in FLOAT_TYPES:
            raise NearMiss(f"X ({x}) is {onnx.TensorProto.DataType.Name(elem)}, not a float type")

    def _shape_readers(self, interior: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """Shape computations that read the block's intermediates and feed only the block.

        The dynamo exporter rebuilds a keepdims=0 variance's broadcast from ``Shape(var)`` under
        dynamic shapes; that Shape (and the Gather/Concat/... after it) is part of the block and goes
        with it. A shape read that reaches anything outside the block is left alone (and
        ``_check_private`` then refuses the candidate)."""
        inside = {n.name for n in interior}
        found: list[onnx.NodeProto] = []
        for node in interior:
            for out in node.output:
                for user in self.index.consumers.get(out, []):
                    if user.name in inside or user.op_type not in ("Shape", "Size"):
                        continue
                    closure = self._shape_closure(user, inside)
                    if closure is not None:
                        found += closure
                        inside |= {n.name for n in closure}
        return found

    def _shape_closure(self, start: onnx.NodeProto, inside: set[str]) -> list[onnx.NodeProto] | None:
        """``start`` and the shape ops after it, if all their results end inside ``inside``."""
        closure: dict[str, onnx.NodeProto] = {}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            if node.name in closure or node.name in inside:
                continue
            if node is not start and node.op_type not in SHAPE_OPS:
                return None
            # integer results only: a Mul or Reshape of tensor data is no shape computation
            if any(self.index.elem_type(o) not in _INDEX_TYPES for o in node.output):
                return None
            closure[node.name] = node
            if len(closure) > LOOKBACK_NODES:
                return None
            for out in node.output:
                if out in self.index.graph_outputs:
                    return None
                frontier.extend(self.index.consumers.get(out, []))
        return list(closure.values())

    def _outside_shape_reads(self, interior: list[onnx.NodeProto], x: str) -> set[str]:
        """Tensors outside the block whose shapes the block reads (dynamo rebuilds a broadcast from
        ``Shape(model input)``); NearMiss when the block reads data computed outside it."""
        made_inside = {o for n in interior for o in n.output}
        sources: set[str] = set()
        for node in interior:
            for tensor in node.input:
                if tensor and tensor != x and tensor not in made_inside and self.index.const(tensor) is None:
                    sources |= self._shape_reads(tensor, node, x)
        return sources

    def _shape_reads(self, tensor: str, reader: onnx.NodeProto, x: str) -> set[str]:
        """The tensors whose shapes ``tensor`` is computed from (it must be a shape computation)."""
        ev = ShapeEval(self.index, x, trial=0)
        try:
            ev.value(tensor)
        except NearMiss as miss:
            raise NearMiss(
                f"{reader.op_type} {reader.name} reads {tensor}, computed outside the block"
            ) from miss
        return ev.shape_sources

    def _check_private(self, interior: list[onnx.NodeProto], anchor: onnx.NodeProto) -> None:
        """Refuse when an intermediate value is also used outside the pattern."""
        inside = {n.name for n in interior}
        for node in interior:
            if node is anchor:
                continue
            for out in node.output:
                if out in self.index.graph_outputs:
                    raise NearMiss(f"intermediate {out} is a graph output")
                for user in self.index.consumers.get(out, []):
                    if user.name not in inside:
                        raise NearMiss(f"intermediate {out} is also used by {user.op_type} {user.name}")


def find_simam(model: onnx.ModelProto) -> Scan:
    """Scan a shape-inferred model whose nodes all have unique names."""
    return SimamMatcher(GraphIndex(model)).scan()
