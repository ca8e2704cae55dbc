"""Build TensorRT engines from ONNX files that contain ``SimAM`` nodes.

One library function, :func:`build_engine`, for every runtime: TensorRT 8.6/10.x/11.x (``tensorrt``)
and TensorRT for RTX 1.x (``tensorrt_rtx_bindings``, which builds without a GPU). The SimAM nodes
become our plugin through TensorRT's ONNX parser (RTX networks have no ``add_plugin_v3``). Anything
that goes wrong is an :class:`InputError` (exit 2) with what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

from simam_deploy.backends import PRECISIONS
from simam_deploy.backends.tensorrt.plan import DUMP_HEADER, parse_layer_dump, simam_blocks, simam_plan
from simam_deploy.backends.tensorrt.plugin import PLUGIN_NAME, register_plugin
from simam_deploy.backends.tensorrt.runtime import Runtime, import_runtime
from simam_deploy.errors import InputError, SimamDeployError
from simam_deploy.fileio import atomic_output, check_input_file, check_output_path
from simam_deploy.graph import contract
from simam_deploy.precision import network_precision, typed_onnx_for_build


@dataclass
class BuildReport:
    engine: str
    onnx: str
    precision: str
    runtime: str  # "tensorrt" | "tensorrt-rtx"
    tensorrt_version: str
    plugin_library: str | None
    simam_nodes: int
    simam_plugin_layers: int
    layers: int
    engine_bytes: int
    build_seconds: float
    profiles: dict[str, list[list[int]]]
    compute_capabilities: list[str] = field(default_factory=list)
    plugin_embedded: bool = False
    builder_flags: list[str] = field(default_factory=list)  # FP16/BF16/INT8 flags set (TensorRT <= 10)
    qdq_layers: int = 0  # Quantize/Dequantize layers: an explicitly quantized (INT8) network
    weights_bytes: int | None = None  # the builder's "Total Weights Memory" (None: not logged)
    notices: list[str] = field(default_factory=list)
    # the kernels TensorRT chose for each SimAM block (plan.Plan.to_dict()), None where the runtime's
    # log has no plan listing; plan_note says why
    plan: dict[str, Any] | None = None
    plan_note: str | None = None
    # build --mode (modes.py): the mode asked for, the form the engine was built from, every form
    # tried (auto) with its plan and latency, and why the engine's form was kept
    mode: str = "as-is"
    form: str = "as-is"
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    schema: str = "simam-deploy/build/v1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LOGGERS: dict[str, Any] = {}
_WEIGHTS_MEMORY = re.compile(r"Total Weights Memory: (\d+) bytes")
# The ONNX parser warns once per plugin field the creator advertises and the node lacks. SimAM's epilogue
# fields are optional by contract (absent = no epilogue, the plugin's default), so for them it is noise.
_OPTIONAL_FIELD_WARNING = re.compile(r"Attribute (affine|residual|activation) not found in plugin node")


def collecting_logger(trt: ModuleType, verbose: bool) -> Any:
    """The process's TensorRT logger for ``trt``, emptied for a new build. It keeps error messages (the
    plugin's field errors arrive here once TensorRT hands it its logger) so a failure can say what the
    parser and the plugin said. One per process: TensorRT routes plugin messages to the logger of the
    first builder it made, whatever logger later builders are given."""
    logger = _LOGGERS.get(trt.__name__)
    if logger is None:
        errors_at = (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR)

        class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.verbose = False
                self.weights_bytes: int | None = None
                self.plan_dump: str | None = None

            def log(self, severity: Any, msg: str) -> None:
                weights = _WEIGHTS_MEMORY.search(str(msg))
                if weights:  # the only place TensorRT states the engine's weight bytes
                    self.weights_bytes = int(weights.group(1))
                if msg.startswith(DUMP_HEADER):
                    self.plan_dump = str(msg)  # the finished plan, one kernel a line (plan.py)
                if _OPTIONAL_FIELD_WARNING.search(str(msg)) and not self.verbose:
                    return
                if severity in errors_at:
                    self.errors.append(str(msg))
                    if not self.verbose:
                        return  # reported in the InputError that follows, once
                threshold = trt.ILogger.Severity.VERBOSE if self.verbose else trt.ILogger.Severity.WARNING
                if int(severity) <= int(threshold):
                    print(f"[TensorRT] {str(severity).split('.')[-1]}: {msg}", file=sys.stderr)

        logger = _LOGGERS[trt.__name__] = _Logger()
    logger.errors = []
    logger.verbose = verbose
    logger.weights_bytes = None
    logger.plan_dump = None
    return logger


def parse_dims(text: str) -> tuple[int, ...]:
    """'1x3x32x32' -> (1, 3, 32, 32)."""
    parts = text.lower().split("x")
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise InputError(
            f"bad shape {text!r}", "write dimensions as positive integers joined by x, e.g. 1x3x32x32"
        )
    return tuple(int(part) for part in parts)


def parse_shapes(specs: Sequence[str]) -> dict[str | None, tuple[tuple[int, ...], ...]]:
    """``["input=1x3x32x32:8x3x32x32:32x3x32x32"]`` -> {name: (min, opt, max)}. The ``name=`` part may be
    left out when the model has a single input (key None)."""
    shapes: dict[str | None, tuple[tuple[int, ...], ...]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        parts = dims.split(":")
        if len(parts) == 1:
            parts = parts * 3  # one shape: a static profile
        if len(parts) != 3:
            raise InputError(
                f"bad --shapes {spec!r}", "use [NAME=]MIN:OPT:MAX, e.g. input=1x3x32x32:8x3x32x32:32x3x32x32"
            )
        profile = tuple(parse_dims(part) for part in parts)
        low, opt, high = profile
        if not (len(low) == len(opt) == len(high)):
            raise InputError(
                f"--shapes {spec!r}: min, opt and max have different ranks", "give all three the same rank"
            )
        if any(not (a <= b <= c) for a, b, c in zip(low, opt, high, strict=True)):
            raise InputError(
                f"--shapes {spec!r}: need min <= opt <= max in every dimension", "reorder the shapes"
            )
        key = name or None
        if key in shapes:
            raise InputError(f"--shapes given twice for {name or 'the input'}", "give each input once")
        shapes[key] = profile
    return shapes


def shapes_from_trtexec(min_shapes: str | None, opt_shapes: str | None, max_shapes: str | None) -> list[str]:
    """trtexec's ``--minShapes=in:1x3x32x32,b:1x80 --optShapes=... --maxShapes=...`` (what model
    repositories document) as our ``--shapes NAME=MIN:OPT:MAX`` specs. All three must be given and
    name the same inputs (a tensor name may itself hold ':'; the last ':' separates the dims)."""
    given = {"--minShapes": min_shapes, "--optShapes": opt_shapes, "--maxShapes": max_shapes}
    if not any(given.values()):
        return []
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise InputError(
            f"{', '.join(missing)} missing: trtexec-style shapes need all of --minShapes, --optShapes, "
            "--maxShapes",
            "give all three (the same inputs in each), or use --shapes NAME=MIN:OPT:MAX",
        )
    tables = {}
    for option, text in given.items():
        table = {}
        for item in str(text).split(","):
            name, sep, dims = item.strip().rpartition(":")
            if not sep or not name or not dims:
                raise InputError(f"bad {option} entry {item!r}", f"write it as {option}=input:1x3x32x32")
            if name in table:
                raise InputError(f"{option} names {name!r} twice", "give each input once")
            table[name.strip("'\"")] = dims
        tables[option] = table
    names = list(tables["--minShapes"])
    for option, table in tables.items():
        if set(table) != set(names):
            raise InputError(
                f"{option} names inputs {sorted(table)}, --minShapes names {sorted(names)}",
                "name the same inputs in --minShapes, --optShapes and --maxShapes",
            )
    return [
        f"{n}={tables['--minShapes'][n]}:{tables['--optShapes'][n]}:{tables['--maxShapes'][n]}" for n in names
    ]


def check_simam_planes(onnx_path: Path, shapes: dict) -> None:
    """Refuse an optimization profile under which a SimAM node would see a 1x1 plane: the paper's
    variance divides by H*W-1 = 0 (NaN for every input), so such an engine is useless. The plane
    sizes come from onnx shape inference with the inputs fixed to each profile shape."""
    from simam_deploy.graph import contract
    from simam_deploy.onnx_utils import infer_shapes, load_onnx

    if not shapes:
        return
    model = load_onnx(onnx_path, check=False, load_external=False)
    simam = [
        n for n in model.graph.node if contract.is_simam_node(n) and contract.read_attributes(n).unbiased
    ]
    if not simam:
        return
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if None in shapes and len(inputs) == 1:
        shapes = {inputs[0].name: shapes[None]}
    for index, which in enumerate(("min", "opt", "max")):
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for value in probe.graph.input:
            if value.name in shapes and len(shapes[value.name][index]) == len(
                value.type.tensor_type.shape.dim
            ):
                for dim, size in zip(
                    value.type.tensor_type.shape.dim, shapes[value.name][index], strict=True
                ):
                    dim.Clear()
                    dim.dim_value = size
        try:
            inferred = infer_shapes(probe)
        except Exception:  # shape inference is a help here, not a gate: the builder still checks
            return
        known = {
            v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
        }
        for node in simam:
            value = known.get(node.input[0])
            dims = (
                [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
                if value
                else []
            )
            if len(dims) == 4 and dims[2] * dims[3] == 1:
                raise InputError(
                    f"--shapes: under the {which} profile shape SimAM node {node.name!r} sees a 1x1 plane "
                    f"(input {'x'.join(map(str, dims))}); the paper's variance divides by H*W-1 = 0, so "
                    "every output would be NaN",
                    "give a profile whose smallest H and W keep every SimAM plane larger than 1x1",
                )


def _read_graph(onnx_path: Path) -> onnx.ModelProto:
    """The graph without its weights (SimAM nodes are counted and blocks found on it), after checking
    that every external-data file the parser will open lies inside the model's folder and exists."""
    from simam_deploy.onnx_utils import load_onnx

    return load_onnx(onnx_path, check=False, load_external=False)


def _plugin_layer_name(trt: ModuleType, layer: Any) -> str | None:
    """The plugin name behind a plugin layer, or None for other layers."""
    layer_type = layer.type
    if layer_type == getattr(trt.LayerType, "PLUGIN_V3", object()):
        layer.__class__ = trt.IPluginV3Layer
        core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        return str(core.plugin_name)
    if layer_type == getattr(trt.LayerType, "PLUGIN_V2", object()):
        layer.__class__ = trt.IPluginV2Layer
        return str(layer.plugin.plugin_type)
    return None


def count_simam_layers(trt: ModuleType, network: Any) -> tuple[int, int]:
    """(SimAM plugin layers, all layers) of a parsed network."""
    simam = 0
    for index in range(network.num_layers):
        if _plugin_layer_name(trt, network.get_layer(index)) == PLUGIN_NAME:
            simam += 1
    return simam, network.num_layers


@dataclass
class ParsedNetwork:
    """The network and the parser that filled it: the parser owns weights the network points to,
    so both live together (TensorRT's INetworkDefinition takes no extra Python attributes)."""

    network: Any
    parser: Any


def _create_network(runtime: Runtime, builder: Any) -> Any:
    trt = runtime.module
    flags = 0
    if runtime.explicit_batch_flag:  # TensorRT 8.x only: later versions are always explicit-batch
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def _parse_onnx(runtime: Runtime, builder: Any, logger: Any, onnx_path: Path) -> ParsedNetwork:
    trt = runtime.module
    network = _create_network(runtime, builder)
    parser = trt.OnnxParser(network, logger)
    if not _parse(runtime, parser, onnx_path):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        # The plugin's own messages name the malformed attribute; the parser's errors say where.
        said = [message for message in logger.errors if message.startswith("SimAM")]
        text = "\n  ".join(said + [" ".join(error.split()) for error in errors])
        raise InputError(
            f"{runtime.label}'s ONNX parser rejected {onnx_path}:\n  {text}",
            "a 'Plugin not found' error means the SimAM plugin is not registered (see --plugin-lib); "
            "'SimAM: field ...' errors name a malformed SimAM attribute: re-export the model "
            "(simam-deploy export ... --mode plugin) or fix the attribute",
        )
    return ParsedNetwork(network=network, parser=parser)


def _parse(runtime: Runtime, parser: Any, onnx_path: Path) -> bool:
    """Parse the file; weights in external data files (model.onnx.data) are found relative to the
    model's folder. Parsers before TensorRT 10.7 import a model-local function before looking for a
    plugin of the same name, so there the local SimAM function (added by fuse for portability) is
    dropped from an in-memory copy: every SimAM node then becomes our plugin."""
    if not runtime.plugin_over_local_function:
        from simam_deploy.graph.function import has_simam_function, remove_simam_function

        model = onnx.load(str(onnx_path), load_external_data=False)
        if has_simam_function(model):
            remove_simam_function(model)
            return parser.parse(model.SerializeToString(), str(onnx_path))
    return parser.parse_from_file(str(onnx_path))


def _set_precision(runtime: Runtime, config: Any, precision: str) -> list[str]:
    """Set the FP16/BF16 builder flag where TensorRT has one (<= 10); returns the flags set.
    Strongly typed runtimes have none: build_engine handed them a file already in ``precision``."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if precision == "fp32" or runtime.strongly_typed_only:
        return []
    flag = getattr(runtime.module.BuilderFlag, precision.upper(), None)
    if flag is None:
        raise InputError(
            f"{runtime.label} has no {precision} builder flag",
            "use --fp16 (bf16 needs TensorRT >= 9), or export the ONNX model in that precision",
        )
    config.set_flag(flag)
    return [precision.upper()]


def count_qdq_layers(trt: ModuleType, network: Any) -> int:
    """Quantize/Dequantize layers of a parsed network (Q/DQ ONNX files, `simam-deploy quantize`)."""
    kinds = {getattr(trt.LayerType, name, None) for name in ("QUANTIZE", "DEQUANTIZE")} - {None}
    return sum(network.get_layer(i).type in kinds for i in range(network.num_layers))


def _set_int8(runtime: Runtime, config: Any, qdq_layers: int) -> list[str]:
    """Weakly typed TensorRT (8.x-10.x) runs a network's Q/DQ layers in INT8 only with the INT8 flag
    (explicit quantization: scales come from the file, no calibrator); strongly typed TensorRT (11,
    RTX) has no such flag and takes the types the Q/DQ layers state."""
    if not qdq_layers or runtime.strongly_typed_only:
        return []
    flag = getattr(runtime.module.BuilderFlag, "INT8", None)
    if flag is None:
        return []
    config.set_flag(flag)
    return ["INT8"]


def _normalise_capability(text: str) -> str:
    """'sm86', 'SM_86', '86' -> 'SM86' (the ComputeCapability member name)."""
    return "SM" + text.strip().upper().replace("_", "").removeprefix("SM")


def _set_compute_capabilities(runtime: Runtime, config: Any, targets: Sequence[str]) -> list[str]:
    """RTX's ahead-of-time targets, e.g. ["sm86", "sm120"]; an empty list keeps the builder's default."""
    if not targets:
        return []
    if not runtime.compute_capabilities:
        raise InputError(
            f"{runtime.label} builds for the GPU it runs on: --compute-capability is for TensorRT for RTX",
            "drop --compute-capability, or build with --runtime tensorrt-rtx",
        )
    names = [_normalise_capability(target) for target in targets]
    unknown = [name for name in names if name not in runtime.compute_capabilities]
    if unknown:
        raise InputError(
            f"{runtime.label} cannot target {', '.join(unknown)}",
            f"choose from {', '.join(runtime.compute_capabilities)} (SM75 needs FP16 GEMMs; no SM90)",
        )
    trt = runtime.module
    config.num_compute_capabilities = len(names)
    for index, name in enumerate(names):
        config.set_compute_capability(getattr(trt.ComputeCapability, name), index)
    return names


# Without --shapes, an input whose only dynamic dimension is the batch gets batch 1..32, tuned for 1
# (latency), like trtexec's default of tuning for the smallest shape.
DEFAULT_BATCH_PROFILE = (1, 1, 32)


def _default_batch_profiles(tensors: list[Any]) -> dict[str, tuple[tuple[int, ...], ...]]:
    profiles = {}
    for tensor in tensors:
        dims = tuple(tensor.shape)
        if dims and dims[0] < 0 and all(d > 0 for d in dims[1:]):
            profiles[tensor.name] = tuple((batch, *dims[1:]) for batch in DEFAULT_BATCH_PROFILE)
    return profiles


def _profile_example(tensor: Any) -> str:
    """'input=1x3xHxW:8x3xHxW:32x3xHxW' for an input declared (-1, 3, -1, -1)."""
    letters = "NCHW" if len(tensor.shape) == 4 else "D" * len(tensor.shape)

    def shape(batch: int) -> str:
        dims = [
            str(d) if d > 0 else (str(batch) if i == 0 else letters[i]) for i, d in enumerate(tensor.shape)
        ]
        return "x".join(dims)

    return f"{tensor.name}={shape(1)}:{shape(8)}:{shape(32)}"


def _add_profile(trt: ModuleType, builder: Any, config: Any, network: Any, shapes: dict) -> dict:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [tensor for tensor in inputs if any(d < 0 for d in tensor.shape)]
    if None in shapes:
        if len(inputs) != 1:
            names = ", ".join(t.name for t in inputs)
            raise InputError("--shapes without NAME= needs a model with one input", f"name them: {names}")
        shapes = {inputs[0].name: shapes[None]}
    unknown = set(shapes) - {t.name for t in inputs}
    if unknown:
        names = ", ".join(t.name for t in inputs)
        raise InputError(f"--shapes names unknown input(s) {sorted(unknown)}", f"the model's inputs: {names}")
    shapes = {**_default_batch_profiles([t for t in dynamic if t.name not in shapes]), **shapes}
    missing = [t.name for t in dynamic if t.name not in shapes]
    if missing:
        first = next(tensor for tensor in dynamic if tensor.name == missing[0])
        raise InputError(
            f"input(s) {missing} have dynamic dimensions {tuple(first.shape)}; TensorRT needs a "
            "min:opt:max range",
            f"add --shapes {_profile_example(first)} (replace the letters with your sizes)",
        )
    if not shapes:
        return {}
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        if tensor.name not in shapes:
            continue
        low, opt, high = shapes[tensor.name]
        declared = tuple(tensor.shape)
        fits = len(declared) == len(low) and all(
            d < 0 or d == v for shape in (low, opt, high) for d, v in zip(declared, shape, strict=True)
        )
        if not fits:
            raise InputError(
                f"--shapes for {tensor.name} does not fit its declared shape {declared}",
                "keep the static dimensions as declared and only vary the dynamic ones",
            )
        profile.set_shape(tensor.name, low, opt, high)
    config.add_optimization_profile(profile)
    return {name: [list(s) for s in spec] for name, spec in shapes.items()}


def _make_progress_monitor(trt: ModuleType) -> Any | None:
    """A rich progress display fed by TensorRT's IProgressMonitor (TensorRT >= 10), or None."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None or not sys.stderr.isatty():
        return None
    from rich.progress import Progress

    class RichProgressMonitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.progress = Progress(transient=True)
            self.tasks: dict[str, Any] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if not self.tasks:
                self.progress.start()
            self.tasks[phase_name] = self.progress.add_task(phase_name, total=num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name in self.tasks:
                self.progress.update(self.tasks[phase_name], completed=step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            task = self.tasks.pop(phase_name, None)
            if task is not None:
                self.progress.remove_task(task)
            if not self.tasks:
                self.progress.stop()

    return RichProgressMonitor()


@contextlib.contextmanager
def _status(message: str, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


@dataclass
class BuildOptions:
    """Everything :func:`build_engine` takes besides the two paths (for callers that pass options along)."""

    precision: str = "fp32"
    shapes: Sequence[str] | dict | None = None
    plugin_lib: str | os.PathLike | None = None
    workspace_mb: int | None = None
    timing_cache: str | os.PathLike | None = None
    runtime: str = "auto"
    compute_capabilities: Sequence[str] = ()
    embed_plugin: bool = False
    verbose: bool = False


def build_engine(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    precision: str = "fp32",
    shapes: Sequence[str] | dict | None = None,
    plugin_lib: str | os.PathLike | None = None,
    workspace_mb: int | None = None,
    timing_cache: str | os.PathLike | None = None,
    verbose: bool = False,
    *,
    runtime: str = "auto",
    compute_capabilities: Sequence[str] = (),
    embed_plugin: bool = False,
) -> BuildReport:
    """Parse ``onnx_path`` with TensorRT's ONNX parser (SimAM nodes -> our plugin), build a serialized
    engine and write it atomically to ``output``.

    ``runtime``: "auto" (plain TensorRT first, then TensorRT for RTX), "tensorrt" or "tensorrt-rtx".
    ``compute_capabilities``: RTX targets such as ("sm86", "sm89", "sm120"). ``embed_plugin`` stores
    the plugin library in the engine (``plugins_to_serialize``), so running it needs no separate copy."""
    onnx_path = options_source = Path(onnx_path)
    check_input_file(onnx_path, "model", "check the path of the ONNX file")
    out = check_output_path(output, [onnx_path])
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if workspace_mb is not None and workspace_mb <= 0:
        raise InputError(f"--workspace must be > 0 MiB, got {workspace_mb}", "e.g. --workspace 1024")
    shape_specs = parse_shapes(shapes) if isinstance(shapes, Sequence) else dict(shapes or {})
    check_simam_planes(onnx_path, shape_specs)
    rt = import_runtime(runtime)
    options = BuildOptions(
        precision=precision,
        shapes=shapes,
        plugin_lib=plugin_lib,
        workspace_mb=workspace_mb,
        timing_cache=timing_cache,
        runtime=runtime,
        compute_capabilities=compute_capabilities,
        embed_plugin=embed_plugin,
        verbose=verbose,
    )
    with tempfile.TemporaryDirectory(prefix="simam-build-") as workdir:
        notices: list[str] = []
        if precision != "fp32" and rt.strongly_typed_only:
            # strongly typed TensorRT has no FP16/BF16 flag: the ONNX file's tensor types decide
            onnx_path, notice = typed_onnx_for_build(onnx_path, precision, workdir)
            notices += [notice] if notice else []
        graph = _read_graph(onnx_path)
        try:
            report = _build(rt, onnx_path, out, graph, shape_specs, options)
        except SimamDeployError:
            raise
        except Exception as exc:  # a TensorRT binding raising: still a message, never a traceback
            raise InputError(
                f"{rt.label} failed while building {onnx_path.name}: {type(exc).__name__}: {exc}",
                "rerun with --verbose for TensorRT's log; report it if the model is valid",
            ) from exc
    # SimAM blocks are found in the file as given: a conversion keeps the node names the plan cites
    # but wraps the statistics in casts that the block finder does not read through
    source = graph if onnx_path == options_source else _read_graph(options_source)
    report.plan, report.plan_note = _read_plan(logger_plan_dump(rt), source, report.profiles)
    report.onnx, report.notices = str(options_source), notices
    return report


def _build(
    rt: Runtime, onnx_path: Path, out: Path, graph: onnx.ModelProto, shape_specs: dict, options: BuildOptions
) -> BuildReport:
    trt = rt.module
    simam_nodes = contract.count_simam_nodes(graph)
    logger = collecting_logger(trt, options.verbose)
    plugin_path = register_plugin(rt, options.plugin_lib) if simam_nodes or options.embed_plugin else None
    builder = trt.Builder(logger)
    parsed = _parse_onnx(rt, builder, logger, onnx_path)
    simam_layers, layers = count_simam_layers(trt, parsed.network)
    if simam_layers != simam_nodes:
        raise InputError(
            f"{simam_nodes} SimAM node(s) in {onnx_path.name} but {simam_layers} SimAM plugin layer(s) "
            "in the parsed network",
            "the parser mapped some SimAM nodes elsewhere; check the nodes' domain/plugin_version attributes",
        )
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    flags = _set_precision(rt, config, options.precision)
    qdq_layers = count_qdq_layers(trt, parsed.network)
    flags += _set_int8(rt, config, qdq_layers)
    targets = _set_compute_capabilities(rt, config, options.compute_capabilities)
    if options.embed_plugin and plugin_path is not None:
        config.plugins_to_serialize = [str(plugin_path.resolve())]
    profiles = _add_profile(trt, builder, config, parsed.network, shape_specs)
    cache = _load_timing_cache(config, options.timing_cache)
    monitor = _make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    if hasattr(trt, "ProfilingVerbosity"):  # the builder then logs the kernels of its plan
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED

    started = time.perf_counter()
    status = f"building TensorRT engine ({options.precision}, {rt.label})"
    with _status(status, enabled=monitor is None and sys.stderr.isatty()):
        serialized = builder.build_serialized_network(parsed.network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        said = "\n  ".join(logger.errors[-5:])
        raise InputError(
            f"{rt.label} could not build an engine"
            + (f":\n  {said}" if said else " (see the messages above)"),
            "rerun with --verbose; common causes: too little --workspace, shapes outside the profile",
        )
    data = memoryview(serialized)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    if cache is not None and options.timing_cache is not None:
        with atomic_output(options.timing_cache) as tmp:
            tmp.write_bytes(memoryview(cache.serialize()))
    return BuildReport(
        engine=str(out),
        onnx=str(onnx_path),
        precision=network_precision(parsed.network),  # from the network's tensor types, not a flag
        runtime=rt.name,
        tensorrt_version=rt.version,
        plugin_library=str(plugin_path) if plugin_path is not None else None,
        simam_nodes=simam_nodes,
        simam_plugin_layers=simam_layers,
        layers=layers,
        engine_bytes=len(data),
        build_seconds=round(seconds, 3),
        profiles=profiles,
        compute_capabilities=targets,
        plugin_embedded=bool(options.embed_plugin and plugin_path is not None),
        builder_flags=flags,
        qdq_layers=qdq_layers,
        weights_bytes=logger.weights_bytes,
    )


def logger_plan_dump(rt: Runtime) -> str | None:
    """The plan listing of the last build in this process (the logger is one per process)."""
    logger = _LOGGERS.get(rt.module.__name__)
    return None if logger is None else logger.plan_dump


def _read_plan(
    dump: str | None, graph: onnx.ModelProto, profiles: dict[str, list[list[int]]]
) -> tuple[dict[str, Any] | None, str | None]:
    """The plan per SimAM block, from the builder's kernel listing, at the profile's opt batch."""
    if dump is None:
        return None, "this TensorRT's builder log lists no kernels (TensorRT for RTX and Myelin plans do)"
    kernels = parse_layer_dump(dump)
    if not kernels:
        return None, "the builder's kernel listing is in a format this version does not read"
    opt = [shapes[1][0] for shapes in profiles.values() if len(shapes) > 1 and shapes[1]]
    batch = opt[0] if opt else 1
    return simam_plan(kernels, simam_blocks(graph), batch).to_dict(), None


def _load_timing_cache(config: Any, path: str | os.PathLike | None) -> Any | None:
    """Reuse tactic timings across builds: load ``path`` if it exists; it is rewritten after the build."""
    if path is None:
        return None
    cache_file = Path(path)
    blob = cache_file.read_bytes() if cache_file.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise InputError(
            f"timing cache {cache_file} was not accepted by this TensorRT version or GPU",
            "delete it (it is rebuilt automatically) or pass another --timing-cache path",
        )
    return cache
