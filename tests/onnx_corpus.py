"""A corpus of SimAM graphs (and near misses) for the fuse/unfuse tests.

Sources: torch's TorchScript and dynamo exporters (static and dynamic H/W, opsets 13-21),
onnxslim-simplified copies, and hand-written onnx.helper variants of the formula families seen in
public code. Every entry says what fusing it must give: a list of (e_lambda, unbiased) per fused
node, or a reason fragment for a rejected candidate. Shapes are tiny so the corpus builds in seconds.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from simam_deploy.nn import SimAM

F32 = TensorProto.FLOAT


@dataclass
class Entry:
    name: str
    model: onnx.ModelProto
    expect: list[tuple[float, bool]]  # (e_lambda, unbiased) of every node fuse must create
    reject: str | None = None  # a fragment of the reject reason, for near misses
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  # shapes to run parity on
    float16: bool = False  # float16 model (looser tolerance)


# -- torch-exported variants --------------------------------------------------------------------


class TwoSimamNet(torch.nn.Module):
    """conv -> SimAM(paper, 1e-4) -> conv -> SimAM(unbiased=False, 0.1) -> conv."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.a1 = SimAM(1e-4, unbiased=True)
        self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.a2 = SimAM(0.1, unbiased=False)
        self.c3 = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3(self.a2(self.c2(self.a1(self.c1(x)))))


TORCH_EXPECT = [(1e-4, True), (0.1, False)]


def torch_export(
    exporter: str, opset: int, dynamic: bool, net: torch.nn.Module | None = None
) -> onnx.ModelProto:
    model = net if net is not None else TwoSimamNet().eval()
    example = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = None
            if dynamic:
                shapes = ({2: torch.export.Dim("h", min=3, max=64), 3: torch.export.Dim("w", min=3, max=64)},)
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset, input_names=["x"],
                dynamic_shapes=shapes, verbose=False,
            )  # fmt: skip
            return program.model_proto
        buffer = io.BytesIO()
        axes = {"x": {2: "h", 3: "w"}} if dynamic else None
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=opset, input_names=["x"], dynamic_axes=axes
        )
        return onnx.load_from_string(buffer.getvalue())


TORCH_SOURCES = [
    ("torchscript", 13, False),
    ("torchscript", 13, True),
    ("torchscript", 17, True),
    ("dynamo", 18, False),
    ("dynamo", 18, True),
    ("dynamo", 21, True),
]


def torch_entries() -> list[Entry]:
    entries = []
    for exporter, opset, dynamic in TORCH_SOURCES:
        model = torch_export(exporter, opset, dynamic)
        shapes = [(1, 3, 8, 8), (1, 3, 5, 7)] if dynamic else [(1, 3, 8, 8)]
        tag = f"{exporter}-op{opset}-{'dyn' if dynamic else 'static'}"
        entries.append(Entry(tag, model, TORCH_EXPECT, input_shapes=shapes))
        if (exporter, opset) in (("torchscript", 13), ("dynamo", 18)):
            entries.append(Entry(f"{tag}-onnxslim", slim(model), TORCH_EXPECT, input_shapes=shapes))
    return entries


def slim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(onnx.ModelProto.FromString(model.SerializeToString()))


# -- users' SimAM classes (as public code writes them; none is ours) ----------------------------


class simam_module(nn.Module):
    """The paper's formula, as in the authors' repository."""

    def __init__(self, channels=None, e_lambda=1e-4):
        super().__init__()
        self.activaton = nn.Sigmoid()
        self.e_lambda = e_lambda

    def forward(self, x):
        b, c, h, w = x.size()  # noqa: RUF059
        n = w * h - 1
        x_minus_mu_square = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = (
            x_minus_mu_square / (4 * (x_minus_mu_square.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda))
            + 0.5
        )
        return x * self.activaton(y)


class VarSimAM(nn.Module):
    """The energy with torch.var (unbiased or not)."""

    def __init__(self, e_lambda=1e-4, unbiased=True):
        super().__init__()
        self.e_lambda, self.unbiased = e_lambda, unbiased

    def forward(self, x):
        d = (x - x.mean(dim=(2, 3), keepdim=True)) ** 2
        v = torch.var(x, dim=(2, 3), keepdim=True, unbiased=self.unbiased)
        return x * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


class StdSimAM(nn.Module):
    """The variance as std ** 2."""

    def __init__(self, e_lambda=0.1):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * (x.std(dim=(2, 3), keepdim=True) ** 2 + self.e_lambda)) + 0.5)


class MeanSimAM(nn.Module):
    """The 4 * mean(d) + lambda family (variance over H*W; lambda outside the factor 4)."""

    def __init__(self, e_lambda=1e-4):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * d.mean(dim=[2, 3], keepdim=True) + self.e_lambda) + 0.5)


class UserPair(torch.nn.Module):
    """conv -> the user's attention (two instances) -> conv."""

    def __init__(self, first: torch.nn.Module, second: torch.nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.a1 = first
        self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.a2 = second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a2(self.c2(self.a1(self.c1(x))))


# name -> (module pair, expected (e_lambda, unbiased) per block)
USER_MODELS = {
    "paper": (
        lambda: UserPair(simam_module(e_lambda=1e-4), simam_module(e_lambda=0.1)),
        [(1e-4, True), (0.1, True)],
    ),
    "var": (lambda: UserPair(VarSimAM(1e-4, True), VarSimAM(0.1, False)), [(1e-4, True), (0.1, False)]),
    "std": (lambda: UserPair(StdSimAM(0.1), StdSimAM(1e-4)), [(0.1, True), (1e-4, True)]),
    "mean": (lambda: UserPair(MeanSimAM(1e-4), MeanSimAM(0.1)), [(2.5e-5, False), (0.025, False)]),
}
# (exporter, opset, dynamic H/W): dynamo with dynamic H/W writes torch.var's Reshape+Expand form
USER_SOURCES = [
    ("dynamo", 18, True),
    ("dynamo", 20, False),
    ("torchscript", 12, True),
    ("torchscript", 11, False),
]


def user_entry_names() -> list[str]:
    return [f"user-{m}-{e}-op{o}-{'dyn' if d else 'static'}" for m in USER_MODELS for e, o, d in USER_SOURCES]


def user_entries() -> list[Entry]:
    entries = []
    for model_name, (make, expect) in USER_MODELS.items():
        for exporter, opset, dynamic in USER_SOURCES:
            model = torch_export(exporter, opset, dynamic, net=make().eval())
            shapes = [(1, 3, 8, 8), (1, 3, 5, 7)] if dynamic else [(1, 3, 8, 8)]
            name = f"user-{model_name}-{exporter}-op{opset}-{'dyn' if dynamic else 'static'}"
            entries.append(Entry(name, model, expect, input_shapes=shapes))
    return entries


# -- hand-written variants ----------------------------------------------------------------------


class Builder:
    """Minimal graph builder: X[1,4,H,W] -> body -> Y; constants become initializers."""

    def __init__(
        self, opset: int, dynamic: bool = False, hw: tuple[int, int] = (6, 5), half: bool = False
    ) -> None:
        self.opset = opset
        self.elem = TensorProto.FLOAT16 if half else F32
        self.float_dtype = np.float16 if half else np.float32
        self.dynamic = dynamic
        self.hw = hw
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, tag: str) -> str:
        self.count += 1
        return f"{tag}_{self.count}"

    def const(self, value, dtype=None) -> str:
        name = self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype or self.float_dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.fresh(op_type), **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes=(2, 3), keepdims: int = 1) -> str:
        axes_input_from = 18 if op_type == "ReduceMean" else 13
        if self.opset < axes_input_from:
            return self.op(op_type, x, axes=list(axes), keepdims=keepdims)
        return self.op(op_type, x, self.const(list(axes), np.int64), keepdims=keepdims)

    def hw_count(self, x: str, minus: int) -> str:
        """H*W - minus from the tensor's shape (Shape/Gather/Mul/Sub/Cast, as TorchScript writes it)."""
        shape = self.op("Shape", x)
        h = self.op("Gather", shape, self.const(2, np.int64), axis=0)
        w = self.op("Gather", shape, self.const(3, np.int64), axis=0)
        n = self.op("Mul", h, w)
        if minus:
            n = self.op("Sub", n, self.const(minus, np.int64))
        return self.op("Cast", n, to=self.elem)

    def model(self, output: str, outputs_extra: tuple[str, ...] = ()) -> onnx.ModelProto:
        h, w = ("h", "w") if self.dynamic else self.hw
        x = helper.make_tensor_value_info("X", self.elem, [1, 4, h, w])
        outs = [helper.make_tensor_value_info(output, self.elem, [None] * 4)]
        outs += [helper.make_tensor_value_info(o, self.elem, [None] * 4) for o in outputs_extra]
        # a Relu in front so X is an inner tensor, as in real networks
        relu = helper.make_node("Relu", ["X"], ["x"], name="pre_relu")
        graph = helper.make_graph([relu, *self.nodes], "g", [x], outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def paper(b: Builder, lam: float = 1e-4, *, commuted: bool = False, div_as_mul: bool = False,
          square: str = "pow", mean: str = "reducemean", offset: float = 0.5, four: float = 4.0,
          minus: int = 1, mean_axes=(2, 3), var_axes=(2, 3), sigmoid: bool = True,
          dynamic_n: bool = False) -> str:  # fmt: skip
    """The paper's formula on tensor ``x`` with switchable variations."""
    x = "x"
    if mean == "reducemean":
        mu = b.reduce("ReduceMean", x, mean_axes)
    elif mean == "gap":
        mu = b.op("GlobalAveragePool", x)
    else:  # sum / HW
        mu = b.op("Div", b.reduce("ReduceSum", x, mean_axes), b.const(float(b.hw[0] * b.hw[1])))
    dev = b.op("Sub", x, mu)
    if square == "pow":
        d = b.op("Pow", dev, b.const(2.0))
    elif square == "mul":
        d = b.op("Mul", dev, dev)
    else:
        d = b.op("Abs", dev)
    s = b.reduce("ReduceSum", d, var_axes)
    n = b.hw_count(x, minus) if dynamic_n else b.const(float(b.hw[0] * b.hw[1] - minus))
    if div_as_mul:
        v = b.op("Mul", s, b.op("Reciprocal", n) if dynamic_n else b.const(1.0 / (b.hw[0] * b.hw[1] - minus)))
    else:
        v = b.op("Div", s, n)
    shifted = b.op("Add", b.const(lam), v) if commuted else b.op("Add", v, b.const(lam))
    den = b.op("Mul", b.const(four), shifted) if commuted else b.op("Mul", shifted, b.const(four))
    ratio = b.op("Mul", b.op("Reciprocal", den), d) if div_as_mul else b.op("Div", d, den)
    energy = b.op("Add", b.const(offset), ratio) if commuted else b.op("Add", ratio, b.const(offset))
    gate = b.op("Sigmoid", energy) if sigmoid else b.op("HardSigmoid", energy)
    return b.op("Mul", gate, x) if commuted else b.op("Mul", x, gate)


def mean_form(b: Builder, lam: float) -> str:
    """d / (4 * mean(d) + lam) + 0.5: the variance over H*W with lambda lam/4."""
    x = "x"
    d = b.op("Pow", b.op("Sub", x, b.reduce("ReduceMean", x)), b.const(2.0))
    den = b.op("Add", b.op("Mul", b.const(4.0), b.reduce("ReduceMean", d)), b.const(lam))
    return b.op("Mul", x, b.op("Sigmoid", b.op("Add", b.op("Div", d, den), b.const(0.5))))


def folded(b: Builder, lam: float) -> str:
    """What constant folding leaves: d * Reciprocal(S * (4/n) + 4*lam) + 0.5, shape-derived n."""
    x = "x"
    d = b.op("Mul", *(2 * [b.op("Sub", x, b.reduce("ReduceMean", x))]))
    n = b.hw_count(x, 1)
    scale = b.op("Div", b.const(4.0), n)
    den = b.op("Add", b.op("Mul", b.reduce("ReduceSum", d), scale), b.const(4 * lam))
    energy = b.op("Add", b.op("Mul", d, b.op("Reciprocal", den)), b.const(0.5))
    return b.op("Mul", b.op("Sigmoid", energy), x)


def returned_map(b: Builder) -> tuple[str, ...]:
    """The attention map itself is the output (no multiply with X)."""
    x = "x"
    d = b.op("Pow", b.op("Sub", x, b.reduce("ReduceMean", x)), b.const(2.0))
    den = b.op("Mul", b.op("Add", b.op("Div", b.reduce("ReduceSum", d), b.const(29.0)), b.const(1e-4)),
               b.const(4.0))  # fmt: skip
    return (b.op("Sigmoid", b.op("Add", b.op("Div", d, den), b.const(0.5))),)


def se_block(b: Builder) -> str:
    """A squeeze-excitation gate: GlobalAveragePool mean feeding a 1x1 conv, then sigmoid * x."""
    pooled = b.op("GlobalAveragePool", "x")
    w = b.const(np.random.default_rng(0).standard_normal((4, 4, 1, 1)))
    return b.op("Mul", "x", b.op("Sigmoid", b.op("Conv", pooled, w)))


def torch_var(b: Builder, lam: float = 1e-4, *, restore: str = "reshape", keepdims: int = 0,
              root: str = "", unbiased: bool = True) -> str:  # fmt: skip
    """torch.var / torch.std**2 as the dynamo exporter writes them: a second Mul(dev, dev), a
    keepdims=0 mean times H*W/(H*W-1), then Reshape (static) or Reshape+Expand back to (N, C, 1, 1)."""
    x = "x"
    dev = b.op("Sub", x, b.reduce("ReduceMean", x))
    d = b.op("Pow", dev, b.const(2.0))
    hw = b.hw[0] * b.hw[1]
    var = b.op("Mul", b.reduce("ReduceMean", b.op("Mul", dev, dev), keepdims=keepdims), b.const(float(hw)))
    var = b.op("Div", var, b.const(float(hw - int(unbiased))))
    if restore == "reshape":
        var = b.op("Reshape", var, b.const([1, 4, 1, 1], np.int64))
    elif restore == "reshape-expand":
        var = b.op(
            "Expand", b.op("Reshape", var, b.const([1, 4, 1, 1], np.int64)), b.const([1, 4, 1, 1], np.int64)
        )
    elif restore == "unsqueeze":
        if b.opset >= 13:
            var = b.op("Unsqueeze", var, b.const([2, 3], np.int64))
        else:
            var = b.op("Unsqueeze", var, axes=[2, 3])
    elif restore == "wrong-reshape":
        var = b.op("Reshape", var, b.const([4, 1, 1, 1], np.int64))  # valid, but N and C swapped
    if root == "sqrt-pow":
        var = b.op("Pow", b.op("Sqrt", var), b.const(2.0))
    elif root == "sqrt-mul":
        var = b.op("Mul", *(2 * [b.op("Sqrt", var)]))
    elif root == "sqrt":  # the standard deviation itself: not SimAM
        var = b.op("Sqrt", var)
    den = b.op("Mul", b.op("Add", var, b.const(lam)), b.const(4.0))
    return b.op("Mul", x, b.op("Sigmoid", b.op("Add", b.op("Div", d, den), b.const(0.5))))


def mean_form_scaled(b: Builder, lam: float, factor: float = 4.0, inner: bool = False) -> str:
    """d / (factor * mean(d) + lam) or d / (factor * (mean(d) + lam)) + 0.5."""
    x = "x"
    d = b.op("Pow", b.op("Sub", x, b.reduce("ReduceMean", x)), b.const(2.0))
    m = b.reduce("ReduceMean", d)
    if inner:
        den = b.op("Mul", b.op("Add", m, b.const(lam)), b.const(factor))
    else:
        den = b.op("Add", b.op("Mul", b.const(factor), m), b.const(lam))
    return b.op("Mul", x, b.op("Sigmoid", b.op("Add", b.op("Div", d, den), b.const(0.5))))


def simam_then_silu(b: Builder) -> str:
    """A SimAM, then conv + SiLU (x * sigmoid(x)), as in YOLO necks: the SiLU is no candidate."""
    y = paper(b)
    w = b.const(np.random.default_rng(0).standard_normal((4, 4, 1, 1)))
    c = b.op("Conv", y, w)
    return b.op("Mul", c, b.op("Sigmoid", c))


HandVariant = tuple[str, Callable[[Builder], str], list[tuple[float, bool]], str | None, bool]

HAND_VARIANTS: list[HandVariant] = [
    # name, body, expected fused attrs, reject fragment, dynamic H/W
    ("paper", lambda b: paper(b), [(1e-4, True)], None, False),
    ("commuted", lambda b: paper(b, 0.1, commuted=True), [(0.1, True)], None, False),
    ("div-as-mul-reciprocal", lambda b: paper(b, 1e-3, div_as_mul=True), [(1e-3, True)], None, False),
    ("square-as-mul", lambda b: paper(b, square="mul"), [(1e-4, True)], None, False),
    ("mean-as-gap", lambda b: paper(b, mean="gap"), [(1e-4, True)], None, False),
    ("mean-as-sum-div-hw", lambda b: paper(b, mean="sum"), [(1e-4, True)], None, False),
    ("yolo-n-hw", lambda b: paper(b, 0.1, minus=0), [(0.1, False)], None, False),
    ("mean-form", lambda b: mean_form(b, 1e-4), [(2.5e-5, False)], None, False),
    ("dynamic-n-shape-gather", lambda b: paper(b, dynamic_n=True), [(1e-4, True)], None, True),
    (
        "dynamic-n-reciprocal",
        lambda b: paper(b, 0.1, dynamic_n=True, div_as_mul=True, commuted=True),
        [(0.1, True)],
        None,
        True,
    ),
    ("folded-constants", lambda b: folded(b, 1e-4), [(1e-4, True)], None, True),
    ("torch-var-reshape", lambda b: torch_var(b), [(1e-4, True)], None, False),
    (
        "torch-var-reshape-expand",
        lambda b: torch_var(b, 0.1, restore="reshape-expand"),
        [(0.1, True)],
        None,
        False,
    ),
    (
        "torch-var-unsqueeze-biased",
        lambda b: torch_var(b, restore="unsqueeze", unbiased=False),
        [(1e-4, False)],
        None,
        False,
    ),
    ("torch-var-keepdims", lambda b: torch_var(b, restore="", keepdims=1), [(1e-4, True)], None, False),
    ("torch-std-pow2", lambda b: torch_var(b, root="sqrt-pow"), [(1e-4, True)], None, False),
    ("torch-std-mul", lambda b: torch_var(b, 0.1, root="sqrt-mul"), [(0.1, True)], None, False),
    ("mean-form-outer", lambda b: mean_form_scaled(b, 0.1), [(0.025, False)], None, False),
    ("mean-form-inner", lambda b: mean_form_scaled(b, 0.1, inner=True), [(0.1, False)], None, False),
    ("simam-then-silu", simam_then_silu, [(1e-4, True)], None, False),
    # near misses: must stay unfused
    ("offset-0.4", lambda b: paper(b, offset=0.4), [], "offset is 0.4", False),
    ("factor-3", lambda b: paper(b, four=3.0), [], "variance divisor", False),
    ("mean-axes-123", lambda b: paper(b, mean_axes=(1, 2, 3)), [], "axes [1, 2, 3]", False),
    ("variance-axes-3", lambda b: paper(b, var_axes=(3,)), [], "axes [3]", False),
    ("abs-not-square", lambda b: paper(b, square="abs"), [], "Abs", False),
    ("hardsigmoid", lambda b: paper(b, sigmoid=False), [], None, False),
    ("negative-lambda", lambda b: paper(b, -1e-4), [], "lambda", False),
    ("baked-n-dynamic-hw", lambda b: paper(b), [], "variance divisor", True),
    ("se-gap-gate", se_block, [], None, False),
    (
        "var-wrong-reshape",
        lambda b: torch_var(b, restore="wrong-reshape"),
        [],
        "one value per channel",
        False,
    ),
    ("std-not-squared", lambda b: torch_var(b, root="sqrt"), [], "Sqrt", False),
    ("mean-form-factor-2", lambda b: mean_form_scaled(b, 0.1, factor=2.0), [], "variance divisor", False),
]


def hand_entries(opsets=(11, 12, 13, 17, 18, 21)) -> list[Entry]:
    entries = []
    for opset in opsets:
        for name, body, expect, reject, dynamic in HAND_VARIANTS:
            b = Builder(opset, dynamic=dynamic)
            out = body(b)
            shapes = [(1, 4, 6, 5), (1, 4, 7, 9)] if dynamic else [(1, 4, 6, 5)]
            entries.append(Entry(f"hand-{name}-op{opset}", b.model(out), expect, reject, shapes))
    for name, dynamic in (("hand-paper-float16-op18", False), ("hand-dynamic-n-float16-op21", True)):
        b = Builder(18 if not dynamic else 21, dynamic=dynamic, half=True)
        out = paper(b, 0.1, dynamic_n=dynamic)
        shapes = [(1, 4, 6, 5), (1, 4, 7, 9)] if dynamic else [(1, 4, 6, 5)]
        entries.append(Entry(name, b.model(out), [(0.1, True)], None, shapes, float16=True))
    # [N, C] variance broadcast against [N, C, H, W] (valid only because H = W = C = 4): not per channel
    b = Builder(18, hw=(4, 4))
    entries.append(Entry("hand-var-keepdims0-unrestored-op18", b.model(torch_var(b, restore="")), [],
                         "keepdims=0", [(1, 4, 4, 4)]))  # fmt: skip
    b = Builder(18)
    entries.append(Entry("hand-attention-map-returned-op18", b.model(*returned_map(b)), [],
                         "not multiplied", [(1, 4, 6, 5)]))  # fmt: skip
    b = Builder(18)
    y = paper(b)
    d_name = next(n.output[0] for n in b.nodes if n.op_type == "Pow")
    entries.append(Entry("hand-intermediate-escapes-op18", b.model(y, (d_name,)), [], "intermediate",
                         [(1, 4, 6, 5)]))  # fmt: skip
    return entries


def simam_node_model(
    opset: int, e_lambda: float = 1e-4, unbiased: int = 1, dims=(2, 4, 6, 5), **extra_attrs
) -> onnx.ModelProto:
    """X -> Relu -> SimAM -> Y, with arbitrary (possibly invalid) attributes for contract tests."""
    attrs = {"e_lambda": e_lambda, "unbiased": unbiased, **extra_attrs}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    nodes = [
        helper.make_node("Relu", ["X"], ["x"], name="pre_relu"),
        helper.make_node("SimAM", ["x"], ["Y"], name="simam_0", domain="com.simam_deploy", **attrs),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", F32, list(dims))],
        [helper.make_tensor_value_info("Y", F32, list(dims))],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.simam_deploy", 1)]
    )
    model.ir_version = 8
    return model
