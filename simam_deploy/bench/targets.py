"""Benchmark one model TARGET several ways, side by side.

TARGET is either
  * a model (a zoo name such as ``resnet50``, or ``package.module:callable``), run in PyTorch
    eager, with the fused SimAM op swapped in, and under ``torch.compile`` (and, on request,
    exported decomposed to ONNX and run in ONNX Runtime);
  * an ``.onnx`` file, run in ONNX Runtime (or the backends named, e.g. OpenVINO) next to its
    counterpart: a decomposed file beside its fused form (``fuse_simam``), a fused file beside its
    decomposed form (``unfuse_simam``), every backend and form timed interleaved so that all see the
    same machine;
  * a TensorRT engine (``.engine``/``.plan``/``.trt``), run through
    ``simam_deploy.backends.load_runner``: its ``benchmark(inputs, warmup, iters, cuda_graph)``
    when the runner has one (device-side timing), else timed calls of ``infer``.
Reported per backend: mean / p50 / p90 / p99 latency of one batch and throughput (samples/s).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from simam_deploy.backends import (
    ENGINE_SUFFIXES,
    ONNX_SUFFIXES,
    Runner,
    backend_for,
    file_backends,
    get_backend,
)
from simam_deploy.bench.kernel import DTYPES, device_name, resolve_device
from simam_deploy.bench.timing import LatencyStats, check_counts, summarize, time_callable, time_interleaved
from simam_deploy.errors import InputError, SimamDeployError
from simam_deploy.resources import check_input_memory, out_of_memory_is_input

TORCH_MODES: tuple[str, ...] = ("eager", "fused", "compile")
# From the backend registry: backends that open ONNX files run a model's export; engines need a build.
ONNX_BACKENDS: tuple[str, ...] = tuple(b.name for b in file_backends(ONNX_SUFFIXES[0]))
MODEL_BACKENDS: tuple[str, ...] = (*TORCH_MODES, *ONNX_BACKENDS)
FILE_ONLY_BACKENDS: tuple[str, ...] = tuple(b.name for b in file_backends() if b.name not in ONNX_BACKENDS)
ALL_BACKENDS: tuple[str, ...] = (*MODEL_BACKENDS, *FILE_ONLY_BACKENDS)
SCHEMA = "simam-deploy/bench-target/1"


@dataclass
class TargetResult:
    backend: str
    stats: LatencyStats
    batch: int

    @property
    def throughput(self) -> float:
        """Samples per second at the mean latency."""
        return self.batch / (self.stats.mean_ms / 1e3)

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "batch": self.batch,
            "throughput": self.throughput,
            **self.stats.to_dict(),
        }


@dataclass
class TargetBenchmark:
    target: str
    kind: str  # model | onnx | engine
    device: str
    device_name: str
    dtype: str
    input_shape: tuple[int, ...]
    warmup: int
    iters: int
    cuda_graph: bool
    results: list[TargetResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "target": self.target,
            "kind": self.kind,
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "input_shape": list(self.input_shape),
            "warmup": self.warmup,
            "iters": self.iters,
            "cuda_graph": self.cuda_graph,
            "torch_version": torch.__version__,
            "results": [r.to_dict() for r in self.results],
            "notes": list(self.notes),
        }


def target_kind(target: str) -> str:
    suffix = Path(target).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "model"


def resolve_compare(compare: Sequence[str] | None, kind: str) -> list[str]:
    if not compare:
        return {"model": list(TORCH_MODES), "onnx": [], "engine": []}[kind]
    unknown = [c for c in compare if c not in ALL_BACKENDS]
    if unknown:
        raise InputError(
            f"unknown backend(s) in --compare: {', '.join(unknown)}", f"use {', '.join(ALL_BACKENDS)}"
        )
    return list(dict.fromkeys(compare))


def benchmark_target(
    target: str,
    *,
    compare: Sequence[str] | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    batch: int | None = None,
    input_shape: str | tuple[int, ...] | None = None,
    checkpoint: str | None = None,
    reference: str | None = None,
    warmup: int = 5,
    iters: int = 50,
    cuda_graph: bool = False,
    progress: Callable[[str], None] | None = None,
    backends: Sequence[str] | None = None,
    threads: int | None = None,
) -> TargetBenchmark:
    """Benchmark ``target`` with each backend of ``compare`` (see the module docstring).

    For an .onnx/.engine file, ``backends`` name the registry backends that run the file (default:
    the one its file type calls for; ONNX backends named in ``compare`` join them), and
    ``reference`` (a zoo name or module:callable, with ``checkpoint``) adds the PyTorch backends of
    ``compare`` (eager, fused, compile; onnxruntime/openvino for an engine) side by side, on the same
    input shape. ``threads``: CPU threads of the ONNX backends (ONNX Runtime intra-op, OpenVINO
    inference threads); their default otherwise."""
    check_counts(warmup, iters)
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype '{dtype}'", f"use {', '.join(DTYPES)}")
    if batch is not None and batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}", "use --batch 1 or more")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}", "use --threads 1 or more")
    kind = target_kind(target)
    compared = resolve_compare(compare, kind)
    options = {"threads": threads}
    device = resolve_device(device)
    bench = TargetBenchmark(target, kind, device, device_name(device), dtype, (), warmup, iters, cuda_graph)
    if kind == "model":
        if backends:
            raise InputError("--backend chooses what runs a file", "name ONNX backends in --compare instead")
        _bench_model(bench, compared, batch, input_shape, checkpoint, progress, options=options)
    else:
        runs_file = [b for b in compared if b in _file_backend_names(target)]
        chosen = list(dict.fromkeys([*(backends or [backend_for(target).name]), *runs_file]))
        for name in chosen:
            backend_for(target, name)  # refuses a backend that does not open this file type
        model_backends = [b for b in compared if b not in chosen and b not in FILE_ONLY_BACKENDS]
        if model_backends and reference is None:
            bench.notes.append(
                f"{', '.join(model_backends)} need the PyTorch model: add --reference MODEL; ignored"
            )
        _bench_file(bench, chosen, batch, input_shape, progress, options)
        if model_backends and reference is not None:
            _bench_model(
                bench, model_backends, None, bench.input_shape, checkpoint, progress, reference, options
            )
    return bench


def _file_backend_names(target: str) -> list[str]:
    return [b.name for b in file_backends(Path(target).suffix)]


# ---- model targets ----------------------------------------------------------------------------
def _model_input_shape(target: str, batch: int | None, input_shape) -> tuple[int, int, int, int]:
    from simam_deploy.shapes import parse_shape
    from simam_deploy.zoo import default_input_shape

    if input_shape is not None:
        shape = parse_shape(input_shape, rank=None)  # any rank: only the SimAM tensors inside are 4-D
    else:
        default = default_input_shape(target)
        if default is None:
            raise InputError(f"no default input shape for '{target}'", "give --input-shape NxCxHxW")
        shape = tuple(default)
    shape = (batch, *shape[1:]) if batch is not None else shape
    check_input_memory({"input": shape}, "--batch" if batch is not None else "--input-shape", copies=2)
    return shape


def _bench_model(
    bench: TargetBenchmark,
    backends,
    batch,
    input_shape,
    checkpoint,
    progress,
    model_spec: str | None = None,
    options: dict | None = None,
) -> None:
    from simam_deploy.zoo import user_code_errors

    spec = model_spec or bench.target
    shape = _model_input_shape(spec, batch, input_shape)
    bench.input_shape = shape
    with user_code_errors(spec), out_of_memory_is_input("--batch / --input-shape"):
        _time_model(bench, backends, shape, spec, checkpoint, progress, options or {})


def _time_model(
    bench: TargetBenchmark, backends, shape, spec: str, checkpoint, progress, options: dict
) -> None:
    from simam_deploy.backends.torch.runner import tensor_outputs
    from simam_deploy.nn import set_simam_fused
    from simam_deploy.zoo import build_model

    model, _ = build_model(spec, checkpoint)
    with torch.inference_mode():  # one call first: a forward returning no tensors is refused, not timed
        tensor_outputs(model(torch.zeros(shape)))
    # A file target records its numpy dtype name (float32); a model target one of DTYPES (fp32).
    torch_dtype = DTYPES[bench.dtype] if bench.dtype in DTYPES else getattr(torch, bench.dtype)
    x = torch.randn(shape, device=bench.device, dtype=torch_dtype)
    if bench.cuda_graph:
        bench.notes.append("--cuda-graph applies to TensorRT engines; PyTorch backends ran without it")
    onnx_backends = [b for b in backends if b in ONNX_BACKENDS]
    if onnx_backends:
        if progress:
            progress(", ".join(onnx_backends))
        _bench_exported_onnx(bench, model, shape, onnx_backends, options)
    for backend in backends:
        if backend in ONNX_BACKENDS:
            continue
        if progress:
            progress(backend)
        if backend not in TORCH_MODES:
            bench.notes.append(
                f"{backend} needs a file it opens ({', '.join(get_backend(backend).suffixes)}): build or "
                "export one, then bench it"
            )
            continue
        runnable = copy.deepcopy(model).to(device=bench.device, dtype=torch_dtype).eval()
        if backend == "fused" and set_simam_fused(runnable, True) == 0:
            bench.notes.append(_no_fused_modules_note(model, shape))
        if backend == "compile":
            torch._dynamo.reset()
            runnable = torch.compile(runnable)
        with torch.inference_mode():
            times = time_callable(lambda m=runnable: m(x), bench.device, bench.warmup, bench.iters)
        bench.results.append(TargetResult(backend, summarize(times), shape[0]))


def _no_fused_modules_note(model: torch.nn.Module, shape) -> str:
    """Why 'fused' equals 'eager', in the words export uses: SimAM is found by its formula in the
    exported graph (any class), but only simam_deploy.nn.SimAM modules can swap in the fused kernel."""
    from simam_deploy.export import export_model_proto
    from simam_deploy.graph.fuse import fuse_simam

    try:
        proto = export_model_proto(
            copy.deepcopy(model).float().cpu().eval(), torch.zeros(shape), 17, "none", "torchscript"
        )
        found = len(fuse_simam(proto, dry_run=True)[1].fused)
    except Exception:  # the count is an explanation, not a result: never fail the benchmark on it
        found = None
    if not found:
        return (
            "the model has no SimAM (no simam_deploy.nn.SimAM module, none found by formula): "
            "'fused' equals 'eager'"
        )
    return (
        f"the graph has {found} SimAM block(s) by formula (as export counts them), but none is a "
        "simam_deploy.nn.SimAM module, so PyTorch 'fused' equals 'eager'; the onnxruntime/openvino/tensorrt "
        "backends run them fused (export --mode plugin)"
    )


def _bench_exported_onnx(
    bench: TargetBenchmark, model: torch.nn.Module, shape, backends: Sequence[str], options: dict
) -> None:
    from simam_deploy.export import export_onnx
    from simam_deploy.onnx_utils import load_onnx

    if bench.dtype != "fp32":
        bench.notes.append(f"{', '.join(backends)} ran the fp32 export (the model is exported in fp32)")
    with tempfile.TemporaryDirectory(prefix="simam-bench-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(copy.deepcopy(model).float().cpu(), path, input_shape=shape, dynamic="none")
        runners = _onnx_pair(bench, load_onnx(path), backends, options)
    inputs = {
        runners[0][1].input_names[0]: np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    }
    _time_onnx_pair(bench, runners, inputs)


# ---- ONNX files: decomposed and fused side by side ------------------------------------------
def _onnx_pair(
    bench: TargetBenchmark, proto, backends: Sequence[str], options: dict
) -> list[tuple[str, Runner]]:
    """[(row name, runner)] for ``proto`` and, where there is one, its counterpart, on every backend
    of ``backends``: decomposed first, fused second."""
    from simam_deploy.graph.contract import count_simam_nodes
    from simam_deploy.graph.fuse import fuse_simam
    from simam_deploy.graph.unfuse import unfuse_simam

    if count_simam_nodes(proto):
        decomposed, fused = unfuse_simam(proto), proto
        given = "fused"
    else:
        decomposed, given = proto, "decomposed"
        try:
            fused, report = fuse_simam(proto)
        except SimamDeployError as exc:
            bench.notes.append(f"no fused counterpart: {exc.message}")
            fused, report = None, None
        if report is not None and not report.fused:
            bench.notes.append("no SimAM subgraph to fuse: the fused file would be the same")
            fused = None
    bench.notes.append(f"the {given} file is the one given; the other one is derived from it")
    pairs: list[tuple[str, Runner]] = []
    for name in backends:
        backend = get_backend(name)
        pairs.append((f"{name} decomposed", backend.load(decomposed, **options)))
        if fused is not None:
            pairs.append((f"{name} fused", backend.load(fused, **options)))
    return pairs


def _time_onnx_pair(
    bench: TargetBenchmark, runners: Sequence[tuple[str, Runner]], inputs: dict[str, np.ndarray]
) -> None:
    fns: dict[str, Callable[[], object]] = {name: partial(runner.infer, inputs) for name, runner in runners}
    times = time_interleaved(fns, bench.warmup, bench.iters)
    first = next(iter(inputs.values()))
    batch = int(first.shape[0]) if first.ndim else 1
    for name, _ in runners:
        bench.results.append(TargetResult(name, summarize(times[name]), batch))


# ---- file targets -----------------------------------------------------------------------------
def _file_inputs(runner, batch: int | None, input_shape) -> dict[str, np.ndarray]:
    from simam_deploy.parity import check_feed, describe_dims
    from simam_deploy.shapes import parse_input_shapes, shapes_for_inputs

    spec = runner.input_spec()
    forced = (
        shapes_for_inputs(parse_input_shapes(input_shape), [n for n, _, _ in spec])
        if input_shape is not None
        else None
    )
    rng = np.random.default_rng(0)
    shapes = {}
    for name, dims, _ in spec:
        if forced is not None:
            shape = forced[name] if batch is None else (batch, *forced[name][1:])
        else:
            shape = tuple(
                d if isinstance(d, int) and d > 0 else (batch or 1) if i == 0 else None
                for i, d in enumerate(dims)
            )
            if None in shape:
                raise InputError(
                    f"input '{name}' has dynamic dimensions ({describe_dims(dims)})",
                    "give --input-shape SHAPE (or NAME=SHAPE,... for several inputs) to fix them",
                )
            if batch is not None:
                shape = (batch, *shape[1:])
        shapes[name] = shape
    itemsize = max((np.dtype(t).itemsize for _, _, t in spec), default=4)
    check_input_memory(shapes, "--batch" if batch is not None else "--input-shape", itemsize, copies=2)
    inputs = {name: rng.standard_normal(shapes[name]).astype(t) for name, _, t in spec}
    check_feed(spec, inputs, "--input-shape/--batch")  # the file's fixed axes, named, before ORT sees it
    return inputs


def _bench_file(
    bench: TargetBenchmark, backends: Sequence[str], batch, input_shape, progress, options
) -> None:
    from simam_deploy.backends import load_runner

    if bench.kind == "onnx":
        _bench_onnx_file(bench, backends, batch, input_shape, progress, options)
        return
    [backend] = backends  # an engine runs on the backend that built it
    runner = load_runner(bench.target, backend=backend, **options)
    inputs = _file_inputs(runner, batch, input_shape)
    first = next(iter(inputs.values()))
    bench.input_shape = tuple(first.shape)
    bench.dtype = str(first.dtype)
    if progress:
        progress(backend)
    if hasattr(runner, "benchmark"):
        times = list(runner.benchmark(inputs, bench.warmup, bench.iters, bench.cuda_graph))
    else:
        if bench.cuda_graph:
            bench.notes.append(
                f"{type(runner).__name__} has no benchmark(); timed infer() without CUDA graphs"
            )
        times = time_callable(lambda: runner.infer(inputs), "cpu", bench.warmup, bench.iters)
    bench.results.append(TargetResult(backend, summarize(times), int(first.shape[0]) if first.ndim else 1))


def _bench_onnx_file(bench: TargetBenchmark, backends, batch, input_shape, progress, options) -> None:
    from simam_deploy.onnx_utils import load_onnx

    if progress:
        progress(", ".join(backends))
    runners = _onnx_pair(bench, load_onnx(bench.target), backends, options)
    inputs = _file_inputs(runners[0][1], batch, input_shape)
    first = next(iter(inputs.values()))
    bench.input_shape = tuple(first.shape)
    bench.dtype = str(first.dtype)
    _time_onnx_pair(bench, runners, inputs)


# ---- a model served by Triton -------------------------------------------------------------------
def add_triton(
    bench: TargetBenchmark,
    url: str,
    model: str,
    *,
    batch: int | None = None,
    input_shape: str | tuple[int, ...] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Time ``model`` on the Triton server at ``url`` (http://HOST:PORT or grpc://HOST:PORT), one
    request at a time, on inputs of the shape the other rows used (or ``input_shape``/``batch``)."""
    from simam_deploy.shapes import parse_shape
    from simam_deploy.triton.client import TritonEndpoint, random_inputs, split_url

    protocol, _ = split_url(url)
    endpoint = TritonEndpoint(url, model)
    shape = tuple(bench.input_shape) or (
        parse_shape(input_shape, rank=None) if input_shape is not None else None
    )
    if shape and batch is not None:
        shape = (batch, *shape[1:])
    feeds = random_inputs(endpoint, batch or 1, shape)
    if progress:
        progress(f"triton {protocol} {model}")
    try:
        endpoint.infer(feeds)  # one request first: a wrong shape or name fails here, with the reason
    except Exception as exc:
        raise InputError(
            f"Triton model {model!r} at {url} refused the request: {str(exc).strip().splitlines()[0]}",
            "check the model's inputs (curl URL/v2/models/NAME) and --input-shape/--batch",
        ) from exc
    times = time_callable(lambda: endpoint.infer(feeds), "cpu", bench.warmup, bench.iters)
    endpoint.close()
    first = next(iter(feeds.values()))
    if not bench.input_shape:
        bench.input_shape, bench.dtype = tuple(first.shape), str(first.dtype)
    bench.results.append(TargetResult(f"triton-{protocol}", summarize(times), int(first.shape[0])))


def benchmark_triton(
    url: str,
    model: str,
    *,
    batch: int | None = None,
    input_shape: str | tuple[int, ...] | None = None,
    warmup: int = 5,
    iters: int = 50,
    progress: Callable[[str], None] | None = None,
) -> TargetBenchmark:
    """Benchmark a served model alone (no local TARGET)."""
    check_counts(warmup, iters)
    bench = TargetBenchmark(f"{url}/{model}", "triton", "server", url, "fp32", (), warmup, iters, False)
    add_triton(bench, url, model, batch=batch, input_shape=input_shape, progress=progress)
    return bench
