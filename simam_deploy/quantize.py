"""INT8 quantization: explicit Q/DQ ONNX with every SimAM kept in higher precision.

TensorRT >= 10, TensorRT for RTX and ONNX Runtime take INT8 explicitly: QuantizeLinear /
DequantizeLinear pairs written into the ONNX file. ``quantize_model`` writes such a file from a float32
model, calibrated on real inputs (the sources of ``validate --inputs``), in the layout TensorRT accepts:

* only the inputs of Conv / ConvTranspose / Gemm / MatMul get Q/DQ pairs: activations per tensor,
  weights per output channel, both symmetric int8 (zero point 0); biases stay float32 (TensorRT for
  RTX rejects a DequantizeLinear of int32, ONNX Runtime's quantized bias);
* every SimAM block stays out: in decomposed graphs the nodes ``graph.patterns`` reports as the block
  (its per-plane mean, variance, energy and sigmoid), in fused graphs the SimAM node. No Q/DQ pair lands
  inside a block or on its input: the statistics read the float32 activation, which is what keeps the
  sigmoid of the energy accurate (a naive quantizer loses about 10 points of top-1 agreement on
  ResNet-20, docs/precision.md). ``high_precision="fp16"`` then converts everything not quantized to
  float16 with the SimAM statistics kept float32 (``simam_deploy.precision``).

``target_agreement`` makes it accuracy-driven: the quantized model's top-1 agreement with the float32
model is measured on the samples held out from calibration; while it is below the target, the layer
whose float32 restoration helps most (measured one by one: its sensitivity) is kept in higher precision,
until the target holds or keeping more would quantize less than ``min_quantized`` of the convolution
weights. Keeping a layer is pure graph surgery on the calibrated model (calibration ranges are measured
on the float32 model, so they do not depend on which layers are quantized): no recalibration.

The quantizer is ONNX Runtime's (``onnxruntime.quantization``, a dependency). NVIDIA ModelOpt
(``quantizer="modelopt"``) is used when it is installed; it is an optional route because it pins
packages that clash with ours.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from simam_deploy import parity
from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.fileio import check_output_path
from simam_deploy.graph import contract
from simam_deploy.graph.patterns import find_simam
from simam_deploy.inputs import DEFAULT_BATCH, InputSet, load_inputs
from simam_deploy.onnx_utils import (
    infer_shapes,
    load_onnx,
    name_nodes,
    protected_files,
    save_onnx,
    uses_external_data,
)

METHODS = ("entropy", "percentile", "minmax")
QUANTIZERS = ("onnxruntime", "modelopt")
HIGH_PRECISIONS = ("fp32", "fp16")
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CONV_OP_TYPES = ("Conv", "ConvTranspose")
DEFAULT_SAMPLES = 256
DEFAULT_MIN_QUANTIZED = 0.8  # share of convolution weights the accuracy-driven mode keeps quantized
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")

SIMAM_REASON = (
    "SimAM block: its per-plane statistics and the sigmoid of the energy are sensitive to int8 "
    "(kept {precision}, statistics float32)"
)


@dataclass
class LayerDecision:
    """One quantizable layer (Conv/Gemm/MatMul with constant weights) or one SimAM block."""

    name: str
    op_type: str
    weights: int  # weight elements (0 for a SimAM block)
    quantized: bool
    reason: str
    sensitivity: float | None = None  # accuracy-driven mode: drop in error when kept float32


@dataclass
class Agreement:
    """The quantized model against the float32 model on held-out samples."""

    samples: int
    top1: float | None
    confident_rows: int
    confident_top1: float | None
    cosine: float  # mean cosine similarity of the first output's rows
    nmse: float  # sum((q - f)^2) / sum(f^2) over the first output

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QuantizeReport:
    source: str
    quantizer: str
    method: str
    high_precision: str
    calibration: dict
    calibration_samples: int
    held_out_samples: int
    simam_blocks: int  # decomposed blocks found by the matcher
    simam_nodes: int  # fused SimAM nodes
    layers: list[LayerDecision] = field(default_factory=list)
    conv_weight_share: float = 0.0  # share of convolution weight elements quantized
    weight_share: float = 0.0  # share of all quantizable weight elements quantized
    agreement: Agreement | None = None
    target_agreement: float | None = None
    reached: bool | None = None
    would_need: list[str] = field(default_factory=list)  # layers the target would need (not reached)
    qdq_pairs: int = 0
    output: str = ""
    files: list[str] = field(default_factory=list)
    file_bytes: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def quantized(self) -> list[LayerDecision]:
        return [d for d in self.layers if d.quantized]

    @property
    def kept(self) -> list[LayerDecision]:
        return [d for d in self.layers if not d.quantized]

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("layers")
        out["quantized"] = [asdict(d) for d in self.quantized]
        out["kept"] = [asdict(d) for d in self.kept]
        out["agreement"] = self.agreement.to_dict() if self.agreement else None
        return {"schema": "simam-deploy/quantize/v1", **out}


# -- the graph: blocks, layers, the Q/DQ layout ----------------------------------------------------


@dataclass
class _Blocks:
    names: list[str]  # one label per block (the final Mul / the SimAM node)
    nodes: set[str]  # every node that must stay out of quantization
    interior_tensors: set[str]  # every tensor read or written inside a block (X and Y included)
    decomposed: int
    fused: int


def find_blocks(model: onnx.ModelProto) -> _Blocks:
    """The SimAM blocks of a shape-inferred, uniquely named model, as the fuse pass finds them."""
    scan = find_simam(model)
    by_name = {n.name: n for n in model.graph.node}
    names, nodes, tensors = [], set(), set()
    for match in scan.matches:
        names.append(match.anchor)
        nodes |= set(match.interior)
        for name in match.interior:
            node = by_name[name]
            tensors |= {t for t in [*node.input, *node.output] if t}
    fused = [n for n in model.graph.node if contract.is_simam_node(n)]
    for node in fused:
        names.append(node.name)
        nodes.add(node.name)
        tensors |= {t for t in [*node.input, *node.output] if t}
    return _Blocks(names, nodes, tensors, len(scan.matches), len(fused))


def _weight_layers(model: onnx.ModelProto) -> dict[str, tuple[str, int]]:
    """Quantizable layers of a float32 model: name -> (op_type, weight elements)."""
    inits = {i.name: i for i in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    layers = {}
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OP_TYPES or len(node.input) < 2:
            continue
        weight = inits.get(node.input[1])
        if weight is not None:
            layers[node.name] = (node.op_type, int(np.prod(weight.dims)))
        elif node.input[1] in consts:
            value = next(a.t for a in consts[node.input[1]].attribute if a.name == "value")
            layers[node.name] = (node.op_type, int(np.prod(value.dims)))
    return layers


def quantized_layers(model: onnx.ModelProto) -> set[str]:
    """Names of the layers of a Q/DQ model whose weight input comes from a DequantizeLinear (through
    a Cast where the float remainder is float16)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = set()
    for node in model.graph.node:
        if node.op_type in QUANTIZED_OP_TYPES and len(node.input) >= 2:
            src = producer.get(node.input[1])
            while src is not None and src.op_type == "Cast":  # --high-precision fp16: DQ -> Cast
                src = producer.get(src.input[0])
            if src is not None and src.op_type == "DequantizeLinear":
                out.add(node.name)
    return out


def layout_problems(model: onnx.ModelProto, blocks: _Blocks) -> list[str]:
    """What in a Q/DQ model TensorRT would refuse or what breaks our SimAM promise (empty = fine)."""
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    problems = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            src = inits.get(node.input[0])
            if src is not None and src.data_type == TensorProto.INT32:
                problems.append(f"{node.name}: int32 DequantizeLinear (a quantized bias)")
        if node.op_type in QDQ_OPS:
            zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if zero is not None and np.any(numpy_helper.to_array(zero) != 0):
                problems.append(f"{node.name}: non-zero zero point (asymmetric)")
            if zero is not None and zero.data_type != TensorProto.INT8:
                problems.append(f"{node.name}: zero point of type {zero.data_type}, not int8")
            if any(t in blocks.interior_tensors for t in node.input):
                problems.append(f"{node.name}: reads {node.input[0]}, a SimAM block's tensor")
        if node.name in blocks.nodes:
            for tensor in node.input:
                src = producer.get(tensor)
                if src is not None and src.op_type in QDQ_OPS:
                    problems.append(f"{node.name} (SimAM block) reads the Q/DQ output {tensor}")
    return problems


def _prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing reads any more (left behind by un-quantizing a layer)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {t for n in graph.node for t in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {t for n in graph.node for t in n.input} | outputs
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _restore_float(
    quantized: onnx.ModelProto, original: onnx.ModelProto, names: Sequence[str]
) -> onnx.ModelProto:
    """A copy of ``quantized`` with the layers ``names`` (and any SimAM block reading a Q/DQ output)
    computing from float inputs again: Q->DQ pairs bypassed, int8 weights swapped for the float32 ones
    of ``original``."""
    out = copy.deepcopy(quantized)
    producer = {o: n for n in out.graph.node for o in n.output}
    originals = {n.name: n for n in original.graph.node}
    float_inits = {i.name: i for i in original.graph.initializer}
    present = {i.name for i in out.graph.initializer}
    for node in out.graph.node:
        if node.name not in names:
            continue
        for slot, tensor in enumerate(node.input):
            src = producer.get(tensor)
            if src is None or src.op_type != "DequantizeLinear":
                continue
            before = originals[node.name].input[slot]
            node.input[slot] = before
            if before in float_inits and before not in present:
                out.graph.initializer.append(float_inits[before])
                present.add(before)
    _prune(out)
    return out


def _keep_blocks_float(model: onnx.ModelProto, blocks: _Blocks) -> int:
    """Rewire any SimAM block input that reads a Q/DQ output back to the float tensor (a quantizer
    may share one Q/DQ pair among all readers of a tensor); returns how many were rewired."""
    producer = {o: n for n in model.graph.node for o in n.output}
    rewired = 0
    for node in model.graph.node:
        if node.name not in blocks.nodes:
            continue
        for slot, tensor in enumerate(node.input):
            dq = producer.get(tensor)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[slot] = q.input[0]
                rewired += 1
    _prune(model)
    return rewired


# -- calibration data -------------------------------------------------------------------------------


def _input_spec(model: onnx.ModelProto) -> list[tuple[str, tuple, np.dtype]]:
    from onnx.helper import tensor_dtype_to_np_dtype

    inits = {i.name for i in model.graph.initializer}
    spec = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
        )
        spec.append((value.name, dims, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type))))
    return spec


def split_samples(
    batches: Sequence[dict[str, np.ndarray]], count: int, batch_fixed: bool
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The first ``count`` samples (calibration) and the rest (held out). A batch is cut in two only
    when the model's batch axis is dynamic."""
    first: list[dict[str, np.ndarray]] = []
    rest: list[dict[str, np.ndarray]] = []
    taken = 0
    for batch in batches:
        size = int(next(iter(batch.values())).shape[0])
        if taken >= count:
            rest.append(batch)
        elif taken + size <= count or batch_fixed:
            first.append(batch)
            taken += size
        else:
            cut = count - taken
            first.append({k: v[:cut] for k, v in batch.items()})
            rest.append({k: v[cut:] for k, v in batch.items()})
            taken = count
    return first, rest


def _samples(batches: Sequence[dict[str, np.ndarray]]) -> int:
    return sum(int(next(iter(b.values())).shape[0]) for b in batches if b)


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over our batches, reporting progress."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]], on_progress: Callable[[str], None] | None):
        self.batches = list(batches)
        self.index = 0
        self.on_progress = on_progress

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.batches):
            return None
        batch = self.batches[self.index]
        self.index += 1
        if self.on_progress and (self.index == 1 or self.index % 8 == 0 or self.index == len(self.batches)):
            self.on_progress(f"calibrating: batch {self.index}/{len(self.batches)}")
        return batch

    def rewind(self) -> None:
        self.index = 0


# -- agreement -------------------------------------------------------------------------------------


def agreement(quantized: np.ndarray, reference: np.ndarray) -> Agreement:
    """Top-1 agreement (all rows, and rows where the reference's softmax top is > 0.5), mean row
    cosine similarity and normalised squared error of ``quantized`` against ``reference``."""
    q = quantized.reshape(quantized.shape[0], -1).astype(np.float64)
    r = reference.reshape(reference.shape[0], -1).astype(np.float64)
    rows = np.isfinite(q).all(axis=1) & np.isfinite(r).all(axis=1)
    top1, _ = parity._top1(q, r)
    sure, sure_rows = parity.confident_top1(q, r)
    q, r = q[rows], r[rows]
    denom = float(np.sum(r * r))
    nmse = float(np.sum((q - r) ** 2) / denom) if denom > 0 else float(np.sum((q - r) ** 2))
    return Agreement(int(q.shape[0]), top1, sure_rows, sure, parity.mean_cosine(q, r) or 0.0, nmse)


def _run(model: onnx.ModelProto, batches: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(model)
    first = runner.output_names[0]
    return np.concatenate([runner.infer(b)[first] for b in batches], axis=0)


# -- quantizers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizers print progress to stdout (where `--json -` writes) and warn on the root logger
    about things we decide on purpose (no pre-processing pass): stdout goes to stderr, warnings are
    kept to errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        root.setLevel(level)


def _ort_quantize(
    model_path: Path,
    out_path: Path,
    reader: _Reader,
    method: str,
    exclude: Sequence[str],
    external: bool,
    naive: bool = False,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }[method]
    # naive: every op ONNX Runtime can quantize (SimAM's Mul/Sigmoid/... included), outputs too, as
    # quantize_static does by default; only there to measure what keeping SimAM is worth
    op_types = _all_op_types() if naive else list(QUANTIZED_OP_TYPES)
    extra = {} if naive else {"OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES)}
    cache: dict = {}
    if method == "entropy" and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cache["calibration_cache_path"] = _entropy_ranges(
            model_path, out_path.parent, reader, op_types, external
        )
    with _quiet_quantizer():
        quantize_static(
            str(model_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            use_external_data_format=external,
            calibrate_method=calibrate,
            **cache,
            extra_options={
                "ActivationSymmetric": True,  # TensorRT: zero point 0
                "WeightSymmetric": True,
                "QuantizeBias": False,  # RTX refuses int32 DequantizeLinear; TensorRT fuses float bias
                # Q/DQ on layer inputs only: a Q/DQ on a Conv's output would sit on a SimAM block's input
                **extra,
            },
        )


def _all_op_types() -> list[str]:
    """Every op type ONNX Runtime's quantizer knows (what quantize_static quantizes by default)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


# TensorRT's entropy calibration: a 2048-bin histogram folded into 128 int8 levels. ONNX Runtime's
# quantize_static uses 128 bins for both, which leaves one candidate threshold: the min/max range.
ENTROPY_BINS = 2048
ENTROPY_LEVELS = 128


def _entropy_ranges(
    model_path: Path, work: Path, reader: _Reader, op_types: list[str], external: bool
) -> str:
    """Entropy (KL) calibration with TensorRT's bin counts; returns a calibration cache file."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    with _quiet_quantizer():
        calibrator = create_calibrator(
            model_path,
            op_types,
            augmented_model_path=str(work / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            use_external_data_format=external,
            extra_options={"symmetric": True, "num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_LEVELS},
        )
        calibrator.collect_data(reader)
        cache = work / "entropy-ranges.json"
        save_tensors_data(calibrator.compute_data(), cache)
    reader.rewind()
    return str(cache)


def _modelopt_quantize(
    model_path: Path,
    out_path: Path,
    batches: Sequence[dict[str, np.ndarray]],
    method: str,
    exclude: Sequence[str],
    external: bool,
) -> None:
    try:
        from modelopt.onnx.quantization import quantize as mo_quantize
    except ImportError as exc:
        raise MissingDependencyError(
            f"--quantizer modelopt needs NVIDIA ModelOpt's ONNX quantization, not importable here ({exc})",
            "pip install 'nvidia-modelopt[onnx]' in a separate environment (its pins clash with ours), "
            "or use --quantizer onnxruntime",
        ) from exc
    names = list(batches[0])
    data = {name: np.concatenate([b[name] for b in batches], axis=0) for name in names}
    with _quiet_quantizer():
        mo_quantize(
            onnx_path=str(model_path),
            quantize_mode="int8",
            calibration_data=data,
            calibration_method={"entropy": "entropy", "minmax": "max"}[method],
            calibration_eps=["cpu"],
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            nodes_to_exclude=[f"^{re.escape(name)}$" for name in exclude],  # it reads patterns
            use_external_data_format=external,
            output_path=str(out_path),
            high_precision_dtype="fp32",  # fp16 is our own pass, with SimAM statistics kept float32
        )


# -- the whole pass ----------------------------------------------------------------------------------


def _check_options(method: str, quantizer: str, high_precision: str, samples: int, target, min_q) -> None:
    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}", f"use one of {', '.join(METHODS)}")
    if quantizer not in QUANTIZERS:
        raise InputError(f"unknown --quantizer {quantizer!r}", f"use one of {', '.join(QUANTIZERS)}")
    if quantizer == "modelopt" and method == "percentile":
        raise InputError("ModelOpt calibrates with entropy or max only", "use --method entropy or minmax")
    if high_precision not in HIGH_PRECISIONS:
        raise InputError(
            f"unknown --high-precision {high_precision!r}", f"use one of {', '.join(HIGH_PRECISIONS)}"
        )
    if samples < 1:
        raise InputError(f"--samples must be >= 1, got {samples}", "e.g. --samples 256")
    if target is not None and not 0.0 < target <= 1.0:
        raise InputError(
            f"--target-agreement must be in (0, 1], got {target}", "e.g. --target-agreement 0.99"
        )
    if not 0.0 <= min_q <= 1.0:
        raise InputError(f"--min-quantized must be in [0, 1], got {min_q}", "e.g. --min-quantized 0.8")


def _refuse_quantized(model: onnx.ModelProto, source: str) -> None:
    if any(n.op_type in (*QDQ_OPS, "QLinearConv", "ConvInteger", "MatMulInteger") for n in model.graph.node):
        raise InputError(
            f"{source} is already quantized (it has QuantizeLinear/DequantizeLinear or integer ops)",
            "quantize the float32 file it was made from",
        )
    floats = {i.data_type for i in model.graph.initializer} & {TensorProto.FLOAT16, TensorProto.BFLOAT16}
    if floats:
        raise InputError(
            f"{source} has float16/bfloat16 weights; quantization starts from float32",
            "quantize the float32 file (use --high-precision fp16 for a float16 remainder)",
        )


def _shares(layers: dict[str, tuple[str, int]], quantized: set[str]) -> tuple[float, float]:
    conv_total = sum(w for op, w in layers.values() if op in CONV_OP_TYPES)
    conv_q = sum(w for name, (op, w) in layers.items() if op in CONV_OP_TYPES and name in quantized)
    total = sum(w for _, w in layers.values())
    done = sum(w for name, (_, w) in layers.items() if name in quantized)
    return (conv_q / conv_total if conv_total else 0.0, done / total if total else 0.0)


def quantize_model(
    model: onnx.ModelProto,
    calibration: Sequence[dict[str, np.ndarray]],
    *,
    held_out: Sequence[dict[str, np.ndarray]] = (),
    method: str = "minmax",
    quantizer: str = "onnxruntime",
    high_precision: str = "fp32",
    target_agreement: float | None = None,
    min_quantized: float = DEFAULT_MIN_QUANTIZED,
    keep_simam: bool = True,
    exclude: Sequence[str] = (),
    on_progress: Callable[[str], None] | None = None,
    source: str = "model",
) -> tuple[onnx.ModelProto, QuantizeReport]:
    """A Q/DQ copy of the float32 ``model`` (not modified) calibrated on ``calibration`` batches.

    ``held_out`` batches (not used for calibration) measure the agreement with the float32 model;
    ``target_agreement`` needs them. ``keep_simam=False`` is the naive baseline of docs/precision.md:
    every op ONNX Runtime can quantize, SimAM blocks included, not a layout we ship. ``exclude``
    names further layers to keep float32.
    When the target cannot be reached within ``min_quantized``, ``report.reached`` is False and
    ``report.would_need`` lists the layers it would have to keep float32."""
    _check_options(method, quantizer, high_precision, 1, target_agreement, min_quantized)
    if not calibration:
        raise InputError("no calibration samples", "give --calibrate a folder, .npz or module:callable")
    if target_agreement is not None and not held_out:
        raise InputError(
            "--target-agreement needs samples held out from calibration, and every sample was used",
            "give more inputs than --samples (e.g. 256 to calibrate plus 256 or more to measure)",
        )
    _refuse_quantized(model, source)
    model = copy.deepcopy(model)
    name_nodes(model)
    inferred = infer_shapes(model)
    blocks = find_blocks(inferred)
    layers = _weight_layers(model)
    report = QuantizeReport(
        source=source,
        quantizer=quantizer,
        method=method,
        high_precision=high_precision,
        calibration={},
        calibration_samples=_samples(calibration),
        held_out_samples=_samples(held_out),
        simam_blocks=blocks.decomposed,
        simam_nodes=blocks.fused,
        target_agreement=target_agreement,
    )
    unknown = sorted(set(exclude) - set(layers))
    if unknown:
        raise InputError(
            f"--exclude names no quantizable layer: {', '.join(unknown)}",
            f"layers of this model: {', '.join(sorted(layers)[:8])}{' ...' if len(layers) > 8 else ''}",
        )
    kept_blocks = blocks.nodes if keep_simam else set()
    with tempfile.TemporaryDirectory(prefix="simam-quantize-") as work:
        src = Path(work) / "float.onnx"
        dst = Path(work) / "int8.onnx"
        external = model.ByteSize() > 1 << 30 or uses_external_data(model)
        save_onnx(model, src, external_data="always" if external else "never")
        reader_batches = list(calibration)
        if on_progress:
            on_progress(f"calibrating on {_samples(reader_batches)} samples ({method}, {quantizer})")
        if quantizer == "onnxruntime":
            reader = _Reader(reader_batches, on_progress)
            excluded = [*kept_blocks, *exclude]
            _ort_quantize(src, dst, reader, method, excluded, external, naive=not keep_simam)
        else:
            _modelopt_quantize(src, dst, reader_batches, method, [*kept_blocks, *exclude], external)
        quantized = load_onnx(dst)
    if keep_simam:
        _keep_blocks_float(quantized, blocks)
        problems = layout_problems(quantized, blocks)
    else:
        problems = layout_problems(quantized, _Blocks([], set(), set(), 0, 0))
    if problems:
        raise RuntimeError("the quantizer wrote a layout we do not ship:\n  " + "\n  ".join(problems))

    reasons = {name: "--exclude" for name in exclude}
    sensitivity: dict[str, float] = {}
    if target_agreement is not None:
        quantized = _accuracy_driven(
            model, quantized, layers, held_out, report, reasons, sensitivity, min_quantized, on_progress
        )
    elif held_out:
        report.agreement = agreement(_run(quantized, held_out), _run(model, held_out))

    done = quantized_layers(quantized)
    report.conv_weight_share, report.weight_share = _shares(layers, done)
    hp = "float16" if high_precision == "fp16" else "float32"
    for name, (op, weights) in layers.items():
        reason = (
            "int8 weights (per channel) and input"
            if name in done
            else reasons.get(name, "quantizer skipped it")
        )
        report.layers.append(LayerDecision(name, op, weights, name in done, reason, sensitivity.get(name)))
    for name in blocks.names if keep_simam else []:
        report.layers.append(LayerDecision(name, "SimAM", 0, False, SIMAM_REASON.format(precision=hp)))
    if high_precision == "fp16":
        quantized = _to_fp16(quantized, report)
        if held_out:  # what the user gets: measured again on the float16 remainder
            report.agreement = agreement(_run(quantized, held_out), _run(model, held_out))
            if target_agreement is not None:
                report.reached = (report.agreement.top1 or 0.0) >= target_agreement
                report.would_need = [] if report.reached else report.would_need
    report.qdq_pairs = sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    return quantized, report


def _accuracy_driven(
    model: onnx.ModelProto,
    quantized: onnx.ModelProto,
    layers: dict[str, tuple[str, int]],
    held_out: Sequence[dict[str, np.ndarray]],
    report: QuantizeReport,
    reasons: dict[str, str],
    sensitivity: dict[str, float],
    min_quantized: float,
    on_progress: Callable[[str], None] | None,
) -> onnx.ModelProto:
    """Keep the most sensitive layers float32 until the held-out agreement reaches the target, as
    long as at least ``min_quantized`` of the convolution weights stay int8. Fills ``sensitivity``,
    ``reasons`` and the report's agreement / reached / would_need."""
    target = report.target_agreement or 1.0
    reference = _run(model, held_out)
    current = agreement(_run(quantized, held_out), reference)
    report.agreement, report.reached = current, (current.top1 or 0.0) >= target
    if report.reached:
        return quantized
    candidates = sorted(quantized_layers(quantized))
    if on_progress:
        on_progress(
            f"held-out agreement {current.top1 or 0.0:.4f} < {target}: measuring the sensitivity of "
            f"{len(candidates)} layers on {current.samples} samples"
        )
    for i, name in enumerate(candidates):
        trial = agreement(_run(_restore_float(quantized, model, [name]), held_out), reference)
        # the output error this layer's int8 adds (top-1 alone is too coarse to rank layers)
        sensitivity[name] = current.nmse - trial.nmse
        if on_progress and ((i + 1) % 8 == 0 or i + 1 == len(candidates)):
            on_progress(f"sensitivity: {i + 1}/{len(candidates)} layers")
    order = sorted(candidates, key=lambda n: sensitivity[n], reverse=True)
    kept: list[str] = []
    best, best_kept = quantized, []
    for name in order:
        kept.append(name)
        trial_model = _restore_float(quantized, model, kept)
        trial = agreement(_run(trial_model, held_out), reference)
        share, _ = _shares(layers, quantized_layers(trial_model))
        reached = (trial.top1 or 0.0) >= target
        if on_progress:
            on_progress(
                f"kept {len(kept)} float32: agreement {trial.top1 or 0.0:.4f}, conv weights int8 {share:.1%}"
            )
        if share >= min_quantized:
            best, best_kept, report.agreement = trial_model, list(kept), trial
            if reached:
                break
        elif reached:
            break
    report.reached = (report.agreement.top1 or 0.0) >= target
    if not report.reached:
        report.would_need = list(kept)
    for layer in best_kept:
        reasons[layer] = f"sensitive: kept float32 for --target-agreement {target}"
    return best


def _to_fp16(model: onnx.ModelProto, report: QuantizeReport) -> onnx.ModelProto:
    from simam_deploy.precision import convert_precision

    converted, conversion = convert_precision(model, "fp16")
    report.notices += conversion.notices
    return converted


def _batch_fixed(spec: Sequence[tuple[str, tuple, np.dtype]]) -> bool:
    dims = spec[0][1] if spec else ()
    return bool(dims) and isinstance(dims[0], int) and dims[0] > 0


def quantize_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    calibrate: str | os.PathLike,
    *,
    samples: int = DEFAULT_SAMPLES,
    method: str = "minmax",
    quantizer: str = "onnxruntime",
    high_precision: str = "fp32",
    target_agreement: float | None = None,
    min_quantized: float = DEFAULT_MIN_QUANTIZED,
    keep_simam: bool = True,
    exclude: Sequence[str] = (),
    reference: str | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    size: str | Sequence[int] | None = None,
    batch_size: int = DEFAULT_BATCH,
    external_data: str = "auto",
    on_progress: Callable[[str], None] | None = None,
) -> QuantizeReport:
    """Quantize the float32 ONNX file ``source`` into ``output`` (Q/DQ, SimAM kept; see the module).

    ``calibrate``: the sources of ``validate --inputs`` (image folder with ``reference``'s zoo
    preprocessing or ``mean``/``std``/``size``, .npz, saved folder, module:callable). The first
    ``samples`` samples calibrate; the rest are held out to measure agreement. When
    ``target_agreement`` is not reached within ``min_quantized``, the best file within it is still
    written (as ``fuse --expect`` writes before failing): ``report.reached`` is False and
    ``report.would_need`` says what the target would take."""
    _check_options(method, quantizer, high_precision, samples, target_agreement, min_quantized)
    src = Path(source)
    out = check_output_path(output, protected_files(src))
    model = load_onnx(src)
    spec = _input_spec(model)
    inputs: InputSet = load_inputs(
        calibrate, spec, reference=reference, mean=mean, std=std, size=size, batch_size=batch_size
    )
    if not inputs.batches or inputs.count == 0:
        raise InputError(
            f"--calibrate {calibrate}: no samples found", "give a folder of images, .npz or callable"
        )
    from simam_deploy.parity import check_feed

    for batch in inputs.batches:
        check_feed(spec, batch, f"--calibrate {calibrate}")
    calibration, held_out = split_samples(inputs.batches, samples, _batch_fixed(spec))
    if _samples(calibration) < samples:
        raise InputError(
            f"--calibrate {calibrate} holds {inputs.count} samples; --samples {samples} asked for more",
            f"lower --samples to at most {inputs.count}, or add inputs",
        )
    quantized, report = quantize_model(
        model,
        calibration,
        held_out=held_out,
        method=method,
        quantizer=quantizer,
        high_precision=high_precision,
        target_agreement=target_agreement,
        min_quantized=min_quantized,
        keep_simam=keep_simam,
        exclude=exclude,
        on_progress=on_progress,
        source=str(src),
    )
    report.calibration = inputs.to_dict()
    written = save_onnx(
        quantized,
        out,
        external_data=external_data,
        source_external=uses_external_data(onnx.load(str(src), load_external_data=False)),
        protect=protected_files(src),
    )
    report.output = str(out)
    report.files = [str(p) for p in written]
    report.file_bytes = sum(Path(p).stat().st_size for p in written)
    return report
