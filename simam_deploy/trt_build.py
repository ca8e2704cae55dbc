"""Build TensorRT engines from ONNX files that contain ``SimAM`` nodes.

The SimAM nodes become our plugin (``libsimam_trt_plugin.so``, see plugins/tensorrt/), which this
module finds and registers with TensorRT before parsing. TensorRT itself is imported lazily, so
:func:`find_plugin_library` and :func:`load_plugin_library` work (and are tested) without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.fileio import atomic_output, check_output_path

PLUGIN_LIBRARY_NAME = "libsimam_trt_plugin.so"
PLUGIN_ENV = "SIMAM_TRT_PLUGIN"
PLUGIN_NAME = "SimAM"
PLUGIN_VERSION = "1"
PRECISIONS = ("fp32", "fp16", "bf16")
TRT_INSTALL_HINT = (
    'pip install "simam-deploy[trt]" (x86_64 with an NVIDIA driver), or on a Jetson use the TensorRT '
    "Python package that JetPack installs (python3-libnvinfer)"
)
PLUGIN_BUILD_HINT = (
    f"build it with `make plugin TENSORRT_ROOT=/path/to/TensorRT` (or `make install TENSORRT_ROOT=...`), "
    f"then pass --plugin-lib PATH or set {PLUGIN_ENV}=PATH"
)
_REPO_ROOT = Path(__file__).resolve().parent.parent


# ---- the plugin library (no TensorRT needed) -------------------------------------------------------


def _plugin_candidates() -> Iterator[Path]:
    """Where a built plugin may be, most specific first."""
    env = os.environ.get(PLUGIN_ENV)
    if env:
        yield Path(env)
    yield Path(__file__).resolve().parent / "lib" / PLUGIN_LIBRARY_NAME  # installed wheel
    build = _REPO_ROOT / "build"
    if build.is_dir():
        # editable builds (build/<wheel tag>/...) and `make plugin` (build/plugin/...), newest first
        found = sorted(build.glob(f"*/plugins/tensorrt/{PLUGIN_LIBRARY_NAME}"), key=_mtime, reverse=True)
        yield from found


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def find_plugin_library(explicit: str | os.PathLike | None = None) -> Path:
    """Locate ``libsimam_trt_plugin.so``: ``explicit``, then ``$SIMAM_TRT_PLUGIN``, then the installed
    package (simam_deploy/lib/), then the repository's build/ trees."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"plugin library {path} does not exist", PLUGIN_BUILD_HINT)
        return path
    env = os.environ.get(PLUGIN_ENV)
    if env and not Path(env).is_file():
        raise InputError(f"{PLUGIN_ENV}={env} does not point to a file", PLUGIN_BUILD_HINT)
    for candidate in _plugin_candidates():
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"the SimAM TensorRT plugin ({PLUGIN_LIBRARY_NAME}) was not found", PLUGIN_BUILD_HINT
    )


@dataclass
class PluginLibrary:
    """A loaded plugin library and what it reports about itself."""

    path: Path
    handle: ctypes.CDLL
    entry_points: list[str]
    info: dict[str, str] = field(default_factory=dict)


# The entry points TensorRT's IPluginRegistry::loadLibrary looks up: getCreators (TensorRT >= 10)
# or getPluginCreators (8.x), plus setLoggerFinder.
_CREATOR_LISTS = ("getCreators", "getPluginCreators")


def load_plugin_library(path: str | os.PathLike) -> PluginLibrary:
    """Load the plugin with ctypes (no TensorRT needed) and check it is the SimAM plugin.

    Loading it into a process that already has TensorRT also registers the SimAM creator
    (the library's load-time registration)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"plugin library {path} does not exist", PLUGIN_BUILD_HINT)
    try:
        # RTLD_GLOBAL: TensorRT (and trtexec-style loaders) may look symbols up process-wide.
        handle = ctypes.CDLL(str(path.resolve()), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise InputError(
            f"cannot load plugin library {path}: {exc}",
            "check it was built for this machine (architecture, glibc); " + PLUGIN_BUILD_HINT,
        ) from exc
    present = [name for name in (*_CREATOR_LISTS, "setLoggerFinder") if hasattr(handle, name)]
    if not any(name in present for name in _CREATOR_LISTS):
        raise InputError(
            f"{path} is not a TensorRT plugin library: it exports neither getCreators nor getPluginCreators",
            PLUGIN_BUILD_HINT,
        )
    info: dict[str, str] = {}
    if hasattr(handle, "simamTrtPluginInfo"):
        describe = handle.simamTrtPluginInfo
        describe.restype = ctypes.c_char_p
        describe.argtypes = []
        info = parse_plugin_info(describe().decode())
    if info.get("plugin") != PLUGIN_NAME:
        raise InputError(f"{path} is a TensorRT plugin library, but not the SimAM one", PLUGIN_BUILD_HINT)
    # TensorRT >= 8.6 hands its logger to plugin libraries through setLoggerFinder (8.5 has none).
    if _headers_version(info) >= (8, 6) and "setLoggerFinder" not in present:
        raise InputError(f"{path} lacks setLoggerFinder, which TensorRT >= 8.6 requires", PLUGIN_BUILD_HINT)
    return PluginLibrary(path=path, handle=handle, entry_points=present, info=info)


def _headers_version(info: dict[str, str]) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in info.get("tensorrt_headers", "").split("."))
    except ValueError:
        return ()


def parse_plugin_info(text: str) -> dict[str, str]:
    """``key=value`` pairs of simamTrtPluginInfo(); the ``api`` value may contain spaces."""
    pairs = re.findall(r"(\w+)=(.*?)(?=\s+\w+=|$)", text.strip())
    return dict(pairs)


# ---- TensorRT -----------------------------------------------------------------------------------


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(
            f"the TensorRT Python package is not installed ({exc})", TRT_INSTALL_HINT
        ) from exc
    return tensorrt


def trt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


def _get_creator(registry: Any, namespace: str) -> Any:
    getter = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    return getter(PLUGIN_NAME, PLUGIN_VERSION, namespace)


def register_plugin(
    trt: ModuleType, plugin_lib: str | os.PathLike | None = None, namespace: str = ""
) -> Path:
    """Make the SimAM creator visible to TensorRT's ONNX parser and runtime; returns the library path."""
    path = find_plugin_library(plugin_lib)
    library = load_plugin_library(path)  # with TensorRT loaded this registers the creator
    registry = trt.get_plugin_registry()
    if _get_creator(registry, namespace) is None and hasattr(registry, "load_library"):
        registry.load_library(str(path.resolve()))
    if _get_creator(registry, namespace) is None:
        headers = library.info.get("tensorrt_headers", "?")
        raise InputError(
            f"TensorRT {trt.__version__} did not accept the SimAM plugin from {path} "
            f"(built against TensorRT {headers} headers)",
            "rebuild the plugin against the TensorRT version installed here: make plugin TENSORRT_ROOT=...",
        )
    return path


@dataclass
class BuildReport:
    engine: str
    onnx: str
    precision: str
    tensorrt_version: str
    plugin_library: str
    simam_nodes: int
    simam_plugin_layers: int
    layers: int
    engine_bytes: int
    build_seconds: float
    profiles: dict[str, list[list[int]]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _count_simam_nodes(onnx_path: Path) -> int:
    from simam_deploy.onnx_utils import count_simam_nodes, load_onnx

    return count_simam_nodes(load_onnx(onnx_path, check=False))


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


def _parse_onnx(trt: ModuleType, builder: Any, logger: Any, onnx_path: Path) -> Any:
    flags = 0 if trt_major(trt) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(
            f"TensorRT's ONNX parser rejected {onnx_path}:\n  {errors}",
            "a 'Plugin not found' error means the SimAM plugin is not registered (see --plugin-lib); "
            "other errors: check the model with `simam-deploy validate` first",
        )
    # keep the parser alive as long as the network: it owns weights the network points to
    network._simam_parser = parser
    return network


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
    missing = [t.name for t in dynamic if t.name not in shapes]
    if missing:
        example = "x".join(str(d if d > 0 else 1) for d in dynamic[0].shape)
        raise InputError(
            f"input(s) {missing} have dynamic dimensions; TensorRT needs a min:opt:max range",
            f"add --shapes {missing[0]}={example}:{example}:{example} (with your batch range)",
        )
    if not shapes:
        return {}
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        if tensor.name not in shapes:
            continue
        low, opt, high = shapes[tensor.name]
        declared = tuple(tensor.shape)
        if len(declared) != len(low) or any(d > 0 and d != v for d, v in zip(declared, opt, strict=True)):
            raise InputError(
                f"--shapes for {tensor.name} does not fit its declared shape {declared}",
                "keep the static dimensions as declared and only vary the dynamic ones",
            )
        profile.set_shape(tensor.name, low, opt, high)
    config.add_optimization_profile(profile)
    return {name: [list(s) for s in spec] for name, spec in shapes.items()}


def _set_precision(trt: ModuleType, config: Any, precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    flag = getattr(trt.BuilderFlag, precision.upper(), None)
    if flag is None:
        raise InputError(
            f"TensorRT {trt.__version__} has no {precision} builder flag",
            "use --fp16 (bf16 needs TensorRT >= 9), or export the ONNX model in that precision",
        )
    config.set_flag(flag)


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


def build_engine(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    precision: str = "fp32",
    shapes: Sequence[str] | dict | None = None,
    plugin_lib: str | os.PathLike | None = None,
    workspace_mb: int | None = None,
    timing_cache: str | os.PathLike | None = None,
    verbose: bool = False,
) -> BuildReport:
    """Parse ``onnx_path`` with TensorRT's ONNX parser (SimAM nodes -> our plugin), build a serialized
    engine and write it atomically to ``output``."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"{onnx_path} does not exist", "check the path of the ONNX file")
    out = check_output_path(output, [onnx_path])
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if workspace_mb is not None and workspace_mb <= 0:
        raise InputError(f"--workspace must be > 0 MiB, got {workspace_mb}", "e.g. --workspace 1024")
    shape_specs = parse_shapes(shapes) if isinstance(shapes, Sequence) else dict(shapes or {})
    simam_nodes = _count_simam_nodes(onnx_path)

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    plugin_path = register_plugin(trt, plugin_lib)
    builder = trt.Builder(logger)
    network = _parse_onnx(trt, builder, logger, onnx_path)
    simam_layers, layers = count_simam_layers(trt, network)
    if simam_layers != simam_nodes:
        raise InputError(
            f"{simam_nodes} SimAM node(s) in {onnx_path.name} but {simam_layers} SimAM plugin layer(s) "
            "in the parsed network",
            "the parser mapped some SimAM nodes elsewhere; check the nodes' domain/plugin_version attributes",
        )
    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    _set_precision(trt, config, precision)
    profiles = _add_profile(trt, builder, config, network, shape_specs)
    cache = _load_timing_cache(config, timing_cache)
    monitor = _make_progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor

    started = time.perf_counter()
    with _status(f"building TensorRT engine ({precision})", enabled=monitor is None and sys.stderr.isatty()):
        serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise InputError(
            "TensorRT could not build an engine (see the messages above)",
            "rerun with --verbose; common causes: too little --workspace, shapes outside the profile",
        )
    data = memoryview(serialized)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    if cache is not None and timing_cache is not None:
        with atomic_output(timing_cache) as tmp:
            tmp.write_bytes(memoryview(cache.serialize()))
    return BuildReport(
        engine=str(out),
        onnx=str(onnx_path),
        precision=precision,
        tensorrt_version=str(trt.__version__),
        plugin_library=str(plugin_path),
        simam_nodes=simam_nodes,
        simam_plugin_layers=simam_layers,
        layers=layers,
        engine_bytes=len(data),
        build_seconds=round(seconds, 2),
        profiles=profiles,
    )


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
