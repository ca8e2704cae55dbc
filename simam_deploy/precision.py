"""Reduced-precision ONNX: float32 models to float16 / bfloat16 for strongly typed runtimes.

TensorRT >= 11 (and TensorRT for RTX) has no FP16/BF16 builder flags: a network is strongly typed and
runs in the element types written in the ONNX file. ``convert_precision`` rewrites a float32 model so
that weights and activations are float16 or bfloat16, with three exceptions that keep it accurate:

* SimAM statistics in decomposed graphs (the per-plane mean, the squared deviations, their sum and
  the variance) stay float32, with a Cast in front of the mean and Casts after the squared deviation
  and the variance. That is exactly what the fused kernel does inside: it reads the reduced type and
  accumulates in float32. The subgraphs are found with the repository's matcher
  (``simam_deploy.graph.patterns``), so files written by either torch exporter (or simplified ones)
  are handled.
* Shape arithmetic turned into floats (TorchScript writes H*W-1 as ``Cast(to=FLOAT)`` of an integer
  product) stays float32 when it feeds float32 statistics: 112*112-1 = 12543 is not a float16 value.
* Inputs the op schema pins to float32 (e.g. Resize's scales) and ops with no reduced-precision
  version at the file's opset stay float32 with casts around them. bfloat16 Conv/Pool only exist from
  opset 22 on, so a bfloat16 conversion upgrades older files to opset 22 (with a notice).

SimAM nodes (plugin mode, fused files) take and return the reduced type. Graph inputs and outputs
stay float32 with casts at the edges unless ``io_types="model"``.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from simam_deploy.backends import PRECISIONS  # the one list of precisions
from simam_deploy.errors import InputError
from simam_deploy.fileio import check_output_path
from simam_deploy.graph import contract
from simam_deploy.graph.function import attach_simam_function, has_simam_function
from simam_deploy.graph.patterns import GraphIndex, Match, find_reduction, find_simam
from simam_deploy.onnx_utils import cap_ir_version, name_nodes, opset_version

REDUCED_PRECISIONS = ("fp16", "bf16")
IO_TYPES = ("float32", "model")
ELEM_TYPE = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
TYPE_STR = {TensorProto.FLOAT: "tensor(float)", TensorProto.FLOAT16: "tensor(float16)",
            TensorProto.BFLOAT16: "tensor(bfloat16)"}  # fmt: skip
BF16_MIN_OPSET = 22  # first opset whose Conv, MaxPool, GlobalAveragePool accept bfloat16
FP16_MAX = 65504.0

# Default parity tolerances per precision (|target - ref| <= atol + rtol*|ref|), used by validate.
# fp16/bf16 values: about 2-3x the worst logit errors measured on cifar-resnet20 with the authors'
# weights on 1024 real-photo crops (fp16 0.022 in ONNX Runtime, bf16 0.42 strict; docs/precision.md).
INT8_ATOL, INT8_RTOL = 4.0, 0.1
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-3),
    "fp16": (5e-2, 5e-2),
    "bf16": (2.5e-1, 1e-1),
    # int8 (Q/DQ files): 1.2x the worst logit error (3.23) of the authors' ResNet-20 quantized by
    # default (SimAM kept, minmax) against PyTorch on 944 real-photo crops (docs/precision.md). It
    # catches broken files (a wrong scale, NaN), not accuracy loss: judge that by the top-1 and
    # confident-row agreement validate prints beside it
    "int8": (INT8_ATOL, INT8_RTOL),
}


def default_tolerances(precision: str) -> tuple[float, float]:
    """(atol, rtol) that fit a model computing in ``precision``."""
    if precision not in DEFAULT_TOLERANCES:
        raise InputError(f"unknown precision '{precision}'", f"use one of: {', '.join(PRECISIONS)}")
    return DEFAULT_TOLERANCES[precision]


@dataclass
class ConversionReport:
    precision: str
    io_types: str
    opset_before: int
    opset_after: int
    simam_subgraphs: int = 0  # decomposed SimAM found; their statistics stay float32
    simam_nodes: int = 0  # SimAM nodes now computing in the reduced type
    float32_nodes: list[str] = field(default_factory=list)  # nodes kept float32 (statistics etc.)
    casts_added: int = 0
    weights_converted: int = 0
    weights_clamped: int = 0  # float16 only: weights beyond +-65504 clamped
    notices: list[str] = field(default_factory=list)
    output: str = ""
    file_bytes: int = 0

    def to_dict(self) -> dict:
        return {"schema": "simam-deploy/convert/v1", **asdict(self)}


# -- precision of an existing model ------------------------------------------------------------


def model_precision(model: onnx.ModelProto) -> str:
    """The precision the network computes in, read from its tensor types (never from a flag):
    the most common float type among its float initializers and node outputs."""
    counts: Counter[int] = Counter()
    for init in model.graph.initializer:
        if init.data_type in TYPE_STR:
            counts[init.data_type] += 1
    for vi in model.graph.value_info:
        elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        if elem in TYPE_STR:
            counts[elem] += 1
    if not counts:
        return "fp32"
    top = counts.most_common(1)[0][0]
    return {v: k for k, v in ELEM_TYPE.items()}[top]


def file_precision(path: str | os.PathLike) -> str:
    """``model_precision`` of an ONNX file (value types inferred, weights not loaded); "int8" for an
    explicitly quantized file (QuantizeLinear/DequantizeLinear nodes, `simam-deploy quantize`)."""
    model = onnx.load(str(path), load_external_data=False)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    with contextlib.suppress(Exception):  # onnx raises C++ errors; initializers alone still tell
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    return model_precision(model)


# -- SimAM statistics ---------------------------------------------------------------------------


def _statistics_nodes(index: GraphIndex, match: Match) -> set[str]:
    """Names of the nodes computing a SimAM's mean, squared deviations, their sum and the variance.

    They are the match's nodes upstream of the variance reduction, plus the scalings right after it
    (S / (H*W-1), or 4*mean(D)); the lambda Add and everything after it are not statistics."""
    interior = set(match.interior)
    by_name = {n.name: n for n in index.nodes if n.name in interior}
    # the variance's reduction, whole: the last node of a chain (sum over H, then W) or of an
    # einsum and the Unsqueeze restoring its axes, not a reduction of X (the mean)
    reductions = []
    for node in by_name.values():
        found = find_reduction(index, node.output[0])
        if found is not None and found.src != match.x and all(n.name in interior for n in found.nodes):
            reductions.append((len(found.nodes), node))
    if not reductions:
        return set()
    reduction = max(reductions, key=lambda r: r[0])[1]
    stats: set[str] = set()
    stack = [reduction]
    while stack:  # upstream closure inside the match, stopping at X
        node = stack.pop()
        if node.name in stats:
            continue
        stats.add(node.name)
        for tensor in node.input:
            producer = index.producer.get(tensor)
            if producer is not None and producer.name in interior and tensor != match.x:
                stack.append(producer)
    tensor = reduction.output[0]
    while True:  # downstream scalings of the sum/mean by shape-derived or constant scalars
        users = [u for u in index.consumers.get(tensor, []) if u.name in interior]
        if len(users) != 1 or users[0].op_type not in ("Div", "Mul", "Cast", "Identity"):
            break
        user = users[0]
        if user.op_type in ("Div", "Mul"):
            other = user.input[1] if user.input[0] == tensor else user.input[0]
            if user.op_type == "Div" and other == tensor:
                break
            other_node = index.producer.get(other)
            if other_node is not None and other_node.name in interior:
                break
        stats.add(user.name)
        tensor = user.output[0]
    return stats


def find_statistics(model: onnx.ModelProto) -> tuple[set[str], int]:
    """Names of every decomposed SimAM's statistics nodes, and the number of SimAM found.
    ``model`` must be shape-inferred with unique node names."""
    scan = find_simam(model)
    index = GraphIndex(model)
    names: set[str] = set()
    for match in scan.matches:
        names |= _statistics_nodes(index, match)
    return names, len(scan.matches)


# -- the conversion -----------------------------------------------------------------------------


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several C++ error types
        raise InputError(
            f"ONNX shape inference failed on this model: {str(exc).splitlines()[0]}",
            "check the file with onnx.checker.check_model and re-export it",
        ) from exc


def _schema(node: onnx.NodeProto, opsets: dict[str, int]) -> onnx.defs.OpSchema | None:
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    try:
        return onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return None


def _allowed(schema: onnx.defs.OpSchema, formal: onnx.defs.OpSchema.FormalParameter) -> set[str]:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == formal.type_str:
            return set(constraint.allowed_type_strs)
    return {formal.type_str}


def _slot_types(schema: onnx.defs.OpSchema, params, count: int) -> list[set[str]]:
    """The type strings each of ``count`` actual inputs/outputs may take (variadic last one repeats)."""
    out = []
    for i in range(count):
        if not params:
            out.append(set())
            continue
        formal = params[min(i, len(params) - 1)]
        out.append(_allowed(schema, formal))
    return out


class _Converter:
    def __init__(self, model: onnx.ModelProto, reduced: int, io_types: str, stats: set[str]) -> None:
        self.model = model
        self.graph = model.graph
        self.reduced = reduced
        self.io_types = io_types
        self.stats = stats
        self.opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
        self.types = {
            vi.name: vi.type.tensor_type.elem_type
            for vi in [*self.graph.input, *self.graph.value_info, *self.graph.output]
            if vi.type.HasField("tensor_type")
        }
        for init in self.graph.initializer:
            self.types[init.name] = init.data_type
        self.initializers = {i.name: i for i in self.graph.initializer}
        self.constants = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant"}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        for node in self.graph.node:
            for slot, name in enumerate(node.input):
                if name:
                    self.consumers[name].append((node, slot))
        self.float32_nodes: list[str] = []
        self.casts = 0
        self.converted = 0
        self.clamped = 0

    # which type each node computes in, slot by slot
    def node_reduced(self, node: onnx.NodeProto) -> bool:
        if node.name in self.stats or node.op_type == "Constant":
            return False
        if node.attribute and any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
        ):
            return False  # control flow: left float32 as a whole rather than half converted
        schema = _schema(node, self.opsets)
        if schema is None:
            return False
        wanted = TYPE_STR[self.reduced]
        outs = _slot_types(schema, schema.outputs, len(node.output))
        float_outs = [i for i, o in enumerate(node.output) if self.types.get(o) == TensorProto.FLOAT]
        if node.op_type == "Cast":
            return wanted in outs[0]
        return all(wanted in outs[i] for i in float_outs)

    def wanted_input(self, node: onnx.NodeProto, slot: int, reduced: bool) -> int:
        if not reduced:
            return TensorProto.FLOAT
        schema = _schema(node, self.opsets)
        allowed = _slot_types(schema, schema.inputs, len(node.input))[slot] if schema else set()
        return self.reduced if TYPE_STR[self.reduced] in allowed else TensorProto.FLOAT

    def run(self) -> None:
        reduced_nodes = {n.name: self.node_reduced(n) for n in self.graph.node}
        wants: dict[str, set[int]] = defaultdict(set)  # tensor -> types its consumers want
        slot_want: dict[tuple[str, int], int] = {}
        for node in self.graph.node:
            for slot, name in enumerate(node.input):
                if name and self.types.get(name) == TensorProto.FLOAT:
                    want = self.wanted_input(node, slot, reduced_nodes[node.name])
                    slot_want[(node.name, slot)] = want
                    wants[name].add(want)
        output_names = {o.name for o in self.graph.output}
        io_type = self.reduced if self.io_types == "model" else TensorProto.FLOAT
        for name in output_names:
            if self.types.get(name) == TensorProto.FLOAT:
                wants[name].add(io_type)

        home: dict[str, int] = {}  # the type each float tensor is produced in after conversion
        for inp in self.graph.input:
            if self.types.get(inp.name) == TensorProto.FLOAT and inp.name not in self.initializers:
                home[inp.name] = io_type
                inp.type.tensor_type.elem_type = io_type
        self._convert_weights(wants, home)
        for node in self.graph.node:
            self._retype_node(node, reduced_nodes[node.name], wants, home)
        self._rewire(slot_want, home, output_names, io_type)

    def _convert_weights(self, wants: dict[str, set[int]], home: dict[str, int]) -> None:
        """Float32 initializers/Constants become the reduced type when every user wants it; a
        reduced copy is added when only some do (the float32 users keep full precision)."""
        self.reduced_copies: dict[str, str] = {}
        for name, init in list(self.initializers.items()):
            if init.data_type != TensorProto.FLOAT:
                continue
            want = wants.get(name, set())
            if self.reduced not in want:
                home[name] = TensorProto.FLOAT
                continue
            converted = self._to_reduced(numpy_helper.to_array(init))
            if want == {self.reduced}:
                init.CopyFrom(numpy_helper.from_array(converted, name))
                home[name] = self.reduced
            else:
                copy_name = f"{name}__{'fp16' if self.reduced == TensorProto.FLOAT16 else 'bf16'}"
                self.graph.initializer.append(numpy_helper.from_array(converted, copy_name))
                self.reduced_copies[name] = copy_name
                home[name] = TensorProto.FLOAT
            self.converted += 1
        for name, node in self.constants.items():
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is None or value.t.data_type != TensorProto.FLOAT:
                continue
            if wants.get(name, set()) == {self.reduced}:
                converted = self._to_reduced(numpy_helper.to_array(value.t))
                value.t.CopyFrom(numpy_helper.from_array(converted, value.t.name))
                home[name] = self.reduced
                self.converted += 1
            else:
                home[name] = TensorProto.FLOAT

    def _to_reduced(self, array: np.ndarray) -> np.ndarray:
        if self.reduced == TensorProto.FLOAT16:
            over = np.abs(array) > FP16_MAX
            if over.any():
                self.clamped += 1
                array = np.clip(array, -FP16_MAX, FP16_MAX)
            return array.astype(np.float16)
        import ml_dtypes  # installed with onnx; numpy has no bfloat16 of its own

        return array.astype(ml_dtypes.bfloat16)

    def _retype_node(self, node: onnx.NodeProto, reduced: bool, wants, home: dict[str, int]) -> None:
        if node.op_type == "Constant":
            return
        float_outs = [o for o in node.output if self.types.get(o) == TensorProto.FLOAT]
        if not reduced:
            if float_outs:
                self.float32_nodes.append(node.name)
            for out in float_outs:
                home[out] = TensorProto.FLOAT
            return
        if node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            src = self.types.get(node.input[0], 0)
            exact_users = TensorProto.FLOAT in wants.get(node.output[0], set())
            if to.i == TensorProto.FLOAT and src not in TYPE_STR and exact_users:
                # int -> float (shape arithmetic, e.g. H*W-1) feeding float32 statistics stays exact
                home[node.output[0]] = TensorProto.FLOAT
                return
            if to.i == TensorProto.FLOAT:
                to.i = self.reduced
        if node.op_type == "ConstantOfShape":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(self._to_reduced(numpy_helper.to_array(attr.t))))
        for out in float_outs:
            home[out] = self.reduced

    def _rewire(self, slot_want, home: dict[str, int], output_names: set[str], io_type: int) -> None:
        """Insert a Cast wherever a tensor is produced in one type and consumed in another."""
        new_nodes: list[onnx.NodeProto] = []
        cast_of: dict[tuple[str, int], str] = {}

        def cast(name: str, to: int) -> str:
            key = (name, to)
            if key not in cast_of:
                suffix = {
                    TensorProto.FLOAT: "fp32",
                    TensorProto.FLOAT16: "fp16",
                    TensorProto.BFLOAT16: "bf16",
                }[to]
                out = f"{name}__{suffix}"
                new_nodes.append(helper.make_node("Cast", [name], [out], name=f"{out}/Cast", to=to))
                cast_of[key] = out
                self.casts += 1
            return cast_of[key]

        for node in list(self.graph.node):
            for slot, name in enumerate(node.input):
                want = slot_want.get((node.name, slot))
                if want is None or home.get(name, want) == want:
                    continue
                if name in self.reduced_copies and want == self.reduced:
                    node.input[slot] = self.reduced_copies[name]
                    continue
                node.input[slot] = cast(name, want)
            new_nodes.append(node)
        for out in self.graph.output:
            if self.types.get(out.name) != TensorProto.FLOAT:
                continue
            if home.get(out.name, TensorProto.FLOAT) != io_type:
                # the producer writes a renamed tensor; the Cast writes the output's own name
                inner = f"{out.name}__{'reduced' if io_type == TensorProto.FLOAT else 'fp32'}"
                for node in new_nodes:
                    for i, o in enumerate(node.output):
                        if o == out.name:
                            node.output[i] = inner
                    for i, o in enumerate(node.input):
                        if o == out.name:
                            node.input[i] = inner
                new_nodes.append(
                    helper.make_node("Cast", [inner], [out.name], name=f"{out.name}/Cast", to=io_type)
                )
                self.casts += 1
            out.type.tensor_type.elem_type = io_type
        del self.graph.node[:]
        self.graph.node.extend(new_nodes)


def _upgrade_for_bf16(model: onnx.ModelProto, notices: list[str]) -> onnx.ModelProto:
    opset = opset_version(model)
    if opset >= BF16_MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, BF16_MIN_OPSET)
    except Exception as exc:  # the converter raises C++ errors of several types
        raise InputError(
            f"cannot upgrade the model from opset {opset} to {BF16_MIN_OPSET}, the first opset with "
            f"bfloat16 Conv/Pool: {str(exc).splitlines()[0]}",
            "re-export the model at opset 22 (or convert to fp16)",
        ) from exc
    notices.append(f"bfloat16 Conv/Pool need opset {BF16_MIN_OPSET}: upgraded the model from opset {opset}")
    return upgraded


def convert_precision(
    model: onnx.ModelProto,
    precision: str,
    *,
    io_types: str = "float32",
    keep_statistics_fp32: bool = True,
) -> tuple[onnx.ModelProto, ConversionReport]:
    """A reduced-precision copy of a float32 ``model`` (not modified) and what was done.

    ``keep_statistics_fp32=False`` converts SimAM statistics too (what a generic converter does);
    it exists to measure what that costs (benchmarks/precision_study.py), not for deployment."""
    if precision not in REDUCED_PRECISIONS:
        raise InputError(f"cannot convert to precision '{precision}'", "use --precision fp16 or bf16")
    if io_types not in IO_TYPES:
        raise InputError(f"unknown --io-types '{io_types}'", f"use one of: {', '.join(IO_TYPES)}")
    model = copy.deepcopy(model)
    report = ConversionReport(precision, io_types, opset_version(model), opset_version(model))
    current = model_precision(_infer(model))
    if current != "fp32":
        raise InputError(
            f"the model already computes in {current}",
            "convert the float32 original (precision conversion starts from float32)",
        )
    had_function = has_simam_function(model)  # onnx's version converter drops local functions
    if precision == "bf16":
        model = _upgrade_for_bf16(model, report.notices)
    report.opset_after = opset_version(model)
    name_nodes(model)
    inferred = _infer(model)
    stats, found = find_statistics(inferred)
    report.simam_subgraphs = found
    if not keep_statistics_fp32:
        stats = set()
    converter = _Converter(inferred, ELEM_TYPE[precision], io_types, stats)
    converter.run()
    out = converter.model
    del out.graph.value_info[:]
    out = _infer(out)
    if had_function:
        # the local SimAM function's body is written for the SimAM nodes' type: write it again
        reason = attach_simam_function(out)
        if reason:
            report.notices.append(f"the local SimAM function was dropped: {reason}")
    report.float32_nodes = converter.float32_nodes
    report.casts_added = converter.casts
    report.weights_converted = converter.converted
    report.weights_clamped = converter.clamped
    report.simam_nodes = sum(contract.is_simam_node(n) for n in out.graph.node)
    if converter.clamped:
        report.notices.append(f"{converter.clamped} weight tensors had values beyond +-65504, clamped")
    cap_ir_version(out)
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InputError(
            f"the {precision} model fails onnx's checker: {str(exc).splitlines()[0]}",
            "please report this model; convert with --precision fp16 or keep float32",
        ) from exc
    return out, report


# -- files --------------------------------------------------------------------------------------


def convert_file(
    src: str | os.PathLike,
    output: str | os.PathLike,
    precision: str,
    *,
    io_types: str = "float32",
    inputs_to_protect: tuple[str | os.PathLike, ...] = (),
) -> ConversionReport:
    """Convert the ONNX file ``src`` and write ``output`` atomically with :func:`onnx_utils.save_onnx`:
    weights in ``<output>.data`` when ``src`` kept them outside or the result is over ~2 GB, else inside."""
    from simam_deploy.onnx_utils import external_data_files, load_onnx, save_onnx

    out_path = check_output_path(output, (src, *inputs_to_protect))
    model = load_onnx(src)  # the one loader: external data read after its locations are checked
    converted, report = convert_precision(model, precision, io_types=io_types)
    written = save_onnx(
        converted,
        out_path,
        source_external=bool(external_data_files(src)),
        protect=(src, *inputs_to_protect),
    )
    report.output = str(out_path)
    report.file_bytes = sum(f.stat().st_size for f in written)
    return report


# -- tolerances for validate ----------------------------------------------------------------------


@dataclass
class ToleranceChoice:
    precision: str
    atol: float
    rtol: float
    source: str  # why these values, for the report


def resolve_tolerances(
    target: str | os.PathLike, precision: str = "auto", atol: float | None = None, rtol: float | None = None
) -> ToleranceChoice:
    """The tolerances validate uses: the ones given, else the defaults of the target's precision
    (read from an ONNX file's tensor types when ``precision`` is 'auto')."""
    if precision not in ("auto", *DEFAULT_TOLERANCES):
        raise InputError(
            f"unknown precision '{precision}'", f"use auto or one of: {', '.join(DEFAULT_TOLERANCES)}"
        )
    how = "given"
    if precision == "auto":
        if str(target).endswith(".onnx") and Path(target).is_file():
            precision, how = file_precision(target), "read from the file's tensor types"
        else:
            precision, how = "fp32", "assumed; an engine's precision is not read here, pass --precision"
    d_atol, d_rtol = default_tolerances(precision)
    if atol is not None and rtol is not None:
        return ToleranceChoice(precision, atol, rtol, f"given (precision {precision}, {how})")
    source = f"{precision} defaults (precision {how})"
    return ToleranceChoice(
        precision, d_atol if atol is None else atol, d_rtol if rtol is None else rtol, source
    )


# -- strongly typed TensorRT ----------------------------------------------------------------------

_TRT_TYPE_NAMES = {"FLOAT": "fp32", "HALF": "fp16", "BF16": "bf16"}


def network_precision(network: Any) -> str:
    """The precision a parsed TensorRT network computes in, from its layers' output tensor types
    (the most common of FLOAT/HALF/BF16); never from a builder flag."""
    counts: Counter[str] = Counter()
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        for out in range(layer.num_outputs):
            name = str(layer.get_output(out).dtype).rsplit(".", 1)[-1]
            if name in _TRT_TYPE_NAMES:
                counts[_TRT_TYPE_NAMES[name]] += 1
    return counts.most_common(1)[0][0] if counts else "fp32"


def typed_onnx_for_build(
    onnx_path: str | os.PathLike, precision: str, workdir: str | os.PathLike
) -> tuple[Path, str | None]:
    """For a strongly typed builder asked for ``precision``: the ONNX file to parse and a notice.
    A float32 file is converted into ``workdir``; a file already in ``precision`` is used as it is."""
    onnx_path = Path(onnx_path)
    current = file_precision(onnx_path)
    if current == precision:
        return onnx_path, None
    if current != "fp32":
        raise InputError(
            f"{onnx_path} computes in {current}, but {precision} was asked for",
            f"build it without --fp16/--bf16 (it stays {current}), or convert the float32 original",
        )
    target = Path(workdir) / f"{onnx_path.stem}-{precision}.onnx"
    report = convert_file(onnx_path, target, precision)
    notice = (
        f"strongly typed TensorRT has no {precision} builder flag: converted {onnx_path.name} to {precision} "
        f"on the way, as `simam-deploy convert {onnx_path.name} --precision {precision}` does"
    )
    notice += "".join(f"; {n}" for n in report.notices)
    return target, notice
