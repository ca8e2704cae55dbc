"""Kernel benchmark: eager decomposed SimAM vs ``torch.compile`` of it vs the fused op.

Per (shape, dtype) case every implementation runs on the same input in the same process, so
the ratios are side by side. Effective bandwidth counts the bytes a perfect kernel must move:
read x once + write y once (2 * numel * itemsize). A plain copy of the same bytes is timed in
the same run -- the memory limit the fused kernel is measured against -- and every
implementation is reported as a fraction of it:
  * GPU: a device-to-device copy (``Tensor.copy_``), timed before the implementations;
  * CPU: numpy's ``copyto`` (one ``memcpy`` on one thread, as in the issue that set the target)
    into a buffer allocated once, timed interleaved with the "kernel" row -- the C kernel through
    the binding into an output allocated once, so that neither pays for allocation or first-touch
    page faults (the "fused" row, the op as a model calls it, allocates its output every call):
    kernel, copy, kernel, copy, ... so that both see the same machine load; medians compared.

``epilogue=True`` times the whole block of issue 25 instead of SimAM alone:
``z = relu(simam(x) * scale[c] + bias[c] + r)`` (a folded BatchNorm's per-channel affine, a
residual add, ReLU). "eager" is those decomposed torch ops, "compile" ``torch.compile`` of the same
function, "fused" the op with its fused epilogue (``ops.simam(x, scale=, bias=, residual=,
activation="relu")``: one kernel, the CUDA kernel on a GPU), "kernel" (CPU) the C kernel with the
same epilogue into an output allocated once. A perfect kernel reads x and r once and writes z
once: 3 * numel * itemsize bytes; the copy row copies that many bytes too (x and half of r's
bytes, read and written), so "of copy" still compares like with like.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from simam_deploy.bench.timing import check_counts, summarize, time_callable
from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.formula import apply_epilogue
from simam_deploy.nn import CIFAR_LAMBDA, simam_decomposed
from simam_deploy.shapes import parse_shape

# The SimAM inputs of ResNet-50 at batch 32 (one per stage).
RESNET50_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (32, 256, 56, 56),
    (32, 512, 28, 28),
    (32, 1024, 14, 14),
    (32, 2048, 7, 7),
)
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
IMPLEMENTATIONS: tuple[str, ...] = ("eager", "compile", "fused")
SCHEMA = "simam-deploy/bench-kernel/1"
# What a case times (KernelBenchmark.block): SimAM alone, or with the fused epilogue of issue 25.
BLOCK_SIMAM = "simam"
BLOCK_EPILOGUE = "relu(simam(x)*scale[c]+bias[c]+r)"


@dataclass
class KernelRow:
    shape: tuple[int, int, int, int]
    dtype: str
    impl: str
    median_ms: float
    min_ms: float
    p90_ms: float
    iters: int
    bytes_moved: int
    gb_per_s: float
    speedup_vs_eager: float | None = None
    fraction_of_copy: float | None = None  # copy time / this time (the copy of the same run)
    # impl "kernel" (CPU): the C kernel into a preallocated output, timed interleaved with the copy
    max_abs_diff_vs_fused: float | None = None
    p10_ms: float | None = None  # the plot's spread: p10 to p90


@dataclass
class CopyRow:
    shape: tuple[int, int, int, int]
    dtype: str
    median_ms: float
    gb_per_s: float
    method: str = "d2d copy"  # "d2d copy" (GPU) or "memcpy" (CPU: numpy copyto, one thread)


@dataclass
class KernelBenchmark:
    device: str
    device_name: str
    torch_version: str
    cpu_threads: int
    warmup: int
    iters: int
    e_lambda: float
    unbiased: bool
    cpu_simd_target: str | None = None  # the instruction set the CPU kernel dispatched to
    block: str = BLOCK_SIMAM  # what every row times: BLOCK_SIMAM or BLOCK_EPILOGUE
    rows: list[KernelRow] = field(default_factory=list)
    copies: list[CopyRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["schema"] = SCHEMA
        return data


def parse_shapes(texts: Sequence[str]) -> list[tuple[int, int, int, int]]:
    return [parse_shape(t) for t in texts]


def with_batch(
    shapes: Sequence[tuple[int, int, int, int]], batch: int | None
) -> list[tuple[int, int, int, int]]:
    if batch is None:
        return list(shapes)
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}", "use --batch 1 or more")
    return [(batch, c, h, w) for _, c, h, w in shapes]


def resolve_dtypes(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in DTYPES]
    if unknown:
        raise InputError(f"unknown dtype(s) {', '.join(unknown)}", f"use {', '.join(DTYPES)}")
    return list(dict.fromkeys(names))


def resolve_device(device: str) -> str:
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device '{device}'", "use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but PyTorch sees no CUDA GPU", "use --device cpu")
    return device


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs)"


def epilogue_block_decomposed(
    x: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    residual: torch.Tensor,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
) -> torch.Tensor:
    """The block of issue 25 in plain torch ops: SimAM, a folded BatchNorm's per-channel affine,
    the residual add, ReLU (what eager PyTorch runs, and what ``torch.compile`` is given)."""
    y = simam_decomposed(x, e_lambda=e_lambda, unbiased=unbiased)
    return apply_epilogue(y, scale, bias, residual, "relu")


def epilogue_block_fused(
    x: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    residual: torch.Tensor,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
) -> torch.Tensor:
    """The same block as one fused op: SimAM with its epilogue (fp32 math, one rounding)."""
    from simam_deploy import ops

    return ops.simam(x, e_lambda, unbiased, scale=scale, bias=bias, residual=residual, activation="relu")


def _implementations(
    names: Sequence[str], e_lambda: float, unbiased: bool, device: str, epilogue: bool = False
) -> dict[str, Callable]:
    from simam_deploy import ops

    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise InputError(
            f"unknown implementation(s) {', '.join(unknown)}", f"use {', '.join(IMPLEMENTATIONS)}"
        )
    impls: dict[str, Callable] = {}
    decomposed = epilogue_block_decomposed if epilogue else simam_decomposed
    for name in names:
        if name in ("eager", "compile"):  # "compile" is compiled per case
            impls[name] = functools.partial(decomposed, e_lambda=e_lambda, unbiased=unbiased)
        else:
            if not ops.native_available():
                raise MissingDependencyError("the fused op needs simam_deploy._C", ops.BUILD_HINT)
            if device == "cuda" and not ops.has_cuda():
                raise MissingDependencyError(
                    "simam_deploy._C was built without CUDA kernels", ops.REBUILD_HINT
                )
            fused = epilogue_block_fused if epilogue else ops.simam
            impls[name] = functools.partial(fused, e_lambda=e_lambda, unbiased=unbiased)
    return impls


def _compiled(fn: Callable) -> Callable:
    # A fresh dynamo cache per case: one code object recompiled for 8 shapes would hit the
    # recompile limit and silently fall back to eager.
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


def run_kernel_benchmark(
    shapes: Sequence[tuple[int, int, int, int]] = RESNET50_SHAPES,
    dtypes: Sequence[str] = ("fp32", "fp16"),
    *,
    device: str = "cpu",
    warmup: int = 3,
    iters: int = 20,
    impls: Sequence[str] = IMPLEMENTATIONS,
    e_lambda: float = CIFAR_LAMBDA,
    unbiased: bool = True,
    epilogue: bool = False,
    progress: Callable[[str], None] | None = None,
) -> KernelBenchmark:
    """Time every implementation on every (shape, dtype); see the module docstring (``epilogue``:
    the whole block relu(simam(x) * scale[c] + bias[c] + r) instead of SimAM alone)."""
    device = resolve_device(device)
    dtypes = resolve_dtypes(dtypes)
    check_counts(warmup, iters)
    implementations = _implementations(impls, e_lambda, unbiased, device, epilogue)
    bench = KernelBenchmark(
        device=device,
        device_name=device_name(device),
        torch_version=torch.__version__,
        cpu_threads=torch.get_num_threads(),
        warmup=warmup,
        iters=iters,
        e_lambda=e_lambda,
        unbiased=unbiased,
        cpu_simd_target=_cpu_simd_target(),
        block=BLOCK_EPILOGUE if epilogue else BLOCK_SIMAM,
    )
    for shape in shapes:
        for dtype_name in dtypes:
            if progress:
                progress(f"{'x'.join(map(str, shape))} {dtype_name}")
            _run_case(bench, implementations, tuple(shape), dtype_name, progress)
    return bench


def _cpu_simd_target() -> str | None:
    from simam_deploy import ops

    if not ops.native_available():
        return None
    from simam_deploy import _C

    return _C.cpu_simd_target()


def host_kernel(
    x: torch.Tensor,
    e_lambda: float,
    unbiased: bool,
    epilogue: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> Callable[[], torch.Tensor]:
    """The CPU kernel on contiguous CPU tensor ``x`` into an output allocated once (returned by
    each call): the kernel alone, without the op's allocation of its result. ``epilogue`` =
    (scale, bias, residual) adds the fused epilogue with ReLU, as ``epilogue_block_fused``."""
    from simam_deploy import _C

    x = x.contiguous()
    y = torch.empty_like(x)
    code = {torch.float32: _C.FLOAT32, torch.float16: _C.FLOAT16, torch.bfloat16: _C.BFLOAT16}[x.dtype]
    n, c, h, w = x.shape
    if epilogue is None:

        def run() -> torch.Tensor:
            _C.forward_cpu(x.data_ptr(), y.data_ptr(), n, c, h, w, code, e_lambda, unbiased)
            return y

        return run
    scale, bias, residual = (t.contiguous() for t in epilogue)
    pointers = {"scale": scale.data_ptr(), "bias": bias.data_ptr(), "residual": residual.data_ptr()}
    relu = list(_C.ACTIVATIONS).index("relu")

    def run_block() -> torch.Tensor:
        _C.run_cpu(
            x.data_ptr(), y.data_ptr(), n, c, h, w, code, e_lambda, unbiased, **pointers, activation=relu
        )
        return y

    return run_block


def copy_source(x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """The bytes a copy of "the same bytes" moves: x's, and with a ``residual`` half of its bytes
    more, so that reading + writing them moves what reading x and r and writing z does."""
    src = x.contiguous().reshape(-1).view(torch.uint8)  # uint8: numpy has no bfloat16
    if residual is None:
        return src
    extra = residual.contiguous().reshape(-1).view(torch.uint8)
    return torch.cat((src, extra[: extra.numel() // 2]))


def host_copy(x: torch.Tensor, residual: torch.Tensor | None = None) -> Callable[[], object]:
    """A plain copy of the bytes of CPU tensor ``x`` (and half of ``residual``'s, see
    ``copy_source``) into a new buffer: numpy's ``copyto``."""
    src = copy_source(x, residual).numpy()
    dst = np.empty_like(src)
    return functools.partial(np.copyto, dst, src)


def time_interleaved(fns: Sequence[Callable[[], object]], warmup: int, iters: int) -> list[list[float]]:
    """Each of ``fns`` once per round, in turn, ``iters`` rounds after ``warmup`` untimed ones;
    per function its times in ms. Interleaving puts every function under the same load."""
    check_counts(warmup, iters)
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(iters):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return times


def _block_inputs(x: torch.Tensor, epilogue: bool) -> tuple[torch.Tensor, ...]:
    """What every implementation is called with: (x,) or (x, scale, bias, r) for the block.
    scale in [0.5, 1.5) and a small bias, as a folded BatchNorm gives, so ReLU keeps about half."""
    if not epilogue:
        return (x,)
    c = x.shape[1]
    scale = (torch.rand(c, device=x.device) + 0.5).to(x.dtype)
    bias = (0.1 * torch.randn(c, device=x.device)).to(x.dtype)
    return x, scale, bias, torch.randn_like(x)


def _run_case(
    bench: KernelBenchmark, implementations: dict[str, Callable], shape, dtype_name: str, progress
) -> None:
    device, warmup, iters = bench.device, bench.warmup, bench.iters
    x = torch.randn(shape, dtype=DTYPES[dtype_name], device=device)
    inputs = _block_inputs(x, bench.block == BLOCK_EPILOGUE)
    residual = inputs[3] if len(inputs) > 1 else None
    # A perfect kernel reads x (and r) once and writes its output once.
    bytes_moved = (2 if residual is None else 3) * x.numel() * x.element_size()

    copy_gb_per_s = None
    kernel_stats = None
    if device == "cuda":
        src = copy_source(x, residual)
        out = torch.empty_like(src)
        copy_ms = summarize(time_callable(lambda: out.copy_(src), device, warmup, iters)).p50_ms
        bench.copies.append(CopyRow(shape, dtype_name, copy_ms, bytes_moved / copy_ms / 1e6))
        copy_gb_per_s = bench.copies[-1].gb_per_s
        del out, src
    elif "fused" in implementations:
        epilogue = (inputs[1], inputs[2], inputs[3]) if residual is not None else None
        kernel = host_kernel(x, bench.e_lambda, bench.unbiased, epilogue)
        kernel_ms, copied_ms = time_interleaved([kernel, host_copy(x, residual)], warmup, iters)
        kernel_stats = summarize(kernel_ms)
        copy_ms = summarize(copied_ms).p50_ms
        bench.copies.append(CopyRow(shape, dtype_name, copy_ms, bytes_moved / copy_ms / 1e6, "memcpy"))
        copy_gb_per_s = bench.copies[-1].gb_per_s

    def of_copy(median_ms: float) -> float | None:
        # The copy moved the same bytes: the ratio of bandwidths is the ratio of times.
        return bytes_moved / median_ms / 1e6 / copy_gb_per_s if copy_gb_per_s else None

    fused_out = implementations["fused"](*inputs) if "fused" in implementations else None
    case_rows: list[KernelRow] = []
    for name, fn in implementations.items():
        if name == "compile":
            try:
                fn = _compiled(fn)
                fn(*inputs)  # compile outside the timed region
            except Exception as exc:  # no C++ compiler for inductor, unsupported dtype, ...
                bench.notes.append(f"{'x'.join(map(str, shape))} {dtype_name}: torch.compile failed: {exc}")
                continue
        with torch.inference_mode():
            stats = summarize(time_callable(lambda fn=fn: fn(*inputs), device, warmup, iters))
            diff = None
            if fused_out is not None and name != "fused":
                diff = float((fn(*inputs).float() - fused_out.float()).abs().max())
        row = KernelRow(
            shape=shape,
            dtype=dtype_name,
            impl=name,
            median_ms=stats.p50_ms,
            min_ms=stats.min_ms,
            p90_ms=stats.p90_ms,
            iters=stats.iters,
            bytes_moved=bytes_moved,
            gb_per_s=bytes_moved / stats.p50_ms / 1e6,
            fraction_of_copy=of_copy(stats.p50_ms),
            max_abs_diff_vs_fused=diff,
            p10_ms=stats.p10_ms,
        )
        case_rows.append(row)
        if progress:
            progress(f"  {name:8s} {stats.p50_ms:9.3f} ms  {row.gb_per_s:8.1f} GB/s")
    if kernel_stats is not None:
        row = KernelRow(
            shape=shape,
            dtype=dtype_name,
            impl="kernel",
            median_ms=kernel_stats.p50_ms,
            min_ms=kernel_stats.min_ms,
            p90_ms=kernel_stats.p90_ms,
            iters=kernel_stats.iters,
            bytes_moved=bytes_moved,
            gb_per_s=bytes_moved / kernel_stats.p50_ms / 1e6,
            fraction_of_copy=of_copy(kernel_stats.p50_ms),
            max_abs_diff_vs_fused=float((kernel().float() - fused_out.float()).abs().max()),
            p10_ms=kernel_stats.p10_ms,
        )
        case_rows.append(row)
        if progress:
            progress(
                f"  kernel   {row.median_ms:9.3f} ms  {row.gb_per_s:8.1f} GB/s  (memcpy {copy_ms:.3f} ms)"
            )
    eager = next((r for r in case_rows if r.impl == "eager"), None)
    for row in case_rows:
        row.speedup_vs_eager = eager.median_ms / row.median_ms if eager else None
    bench.rows.extend(case_rows)
