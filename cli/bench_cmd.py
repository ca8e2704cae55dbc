from __future__ import annotations

import click

from simam_deploy.backends import PRECISIONS
from simam_deploy.cli.common import (
    check_outputs,
    dtype_name,
    envelope,
    err_console,
    human_console,
    write_json,
)

EPILOG = """\b
Two modes:
  --kernel   the SimAM op alone: eager decomposed vs torch.compile vs the fused kernel, on the
             SimAM shapes of ResNet-50 at batch 32 (or --shape ...), reporting median time,
             effective bandwidth (read x once + write y once) and the fraction of a copy of
             the same bytes timed in the same run: a device-to-device copy on a GPU; on the CPU
             a memcpy, interleaved with the kernel into a preallocated output (row "kernel").
             With --epilogue: the whole block z = relu(simam(x) * scale[c] + bias[c] + r) (SimAM,
             a folded BatchNorm's affine, residual add, ReLU): eager = those torch ops, compile =
             torch.compile of them, fused = the one SimAM op with its fused epilogue; bytes moved
             = x and r read once + z written once, and the copy moves as many bytes.
  TARGET     a whole model, several ways side by side: a zoo name (or module:callable) in
             PyTorch eager / with fused SimAM / under torch.compile / exported to ONNX Runtime,
             an .onnx file in ONNX Runtime, or a TensorRT .engine. Reports mean/p50/p90/p99
             latency and throughput.

\b
Examples:
  simam-deploy bench --kernel --device cuda --json kernel.json --plot kernel.png
  simam-deploy bench --kernel --device cpu --batch 4 --dtype fp32
  simam-deploy bench --kernel --shape 8x256x56x56 --shape 8x2048x7x7 --dtype fp16 --dtype bf16
  simam-deploy bench --kernel --epilogue --device cuda --dtype fp16 --json block.json
  simam-deploy bench resnet50 --device cuda --dtype fp16 --batch 32 --compare eager,fused,compile
  simam-deploy bench cifar-resnet20 --checkpoint model_best.pth.tar --compare eager,fused,onnxruntime
  simam-deploy bench r20.onnx --input-shape 64x3x32x32
  simam-deploy bench r20.onnx --backend onnxruntime --backend openvino --threads 1   # 4 rows, interleaved
  simam-deploy bench r50.engine --cuda-graph --iters 500
  simam-deploy bench r20.engine --reference cifar-resnet20 --compare tensorrt,eager,fused,onnxruntime
  simam-deploy bench r20-fused.onnx --triton http://localhost:8000 r20     # served beside local ORT
  simam-deploy bench --triton grpc://localhost:8001 r20 --batch 8
  simam-deploy bench cifar-resnet20 --json - | jq .results    # schema simam-deploy/bench/v1

\b
Defaults: --warmup 20 / --iters 200 on cuda, 3 / 15 on cpu (kernel mode) and 5 / 50 (targets).
Exit codes: 0 ok, 2 usage or input error.
"""


@click.command("bench", epilog=EPILOG)
@click.argument("target", required=False)
@click.option("--kernel", is_flag=True, help="Benchmark the SimAM op alone instead of a TARGET.")
@click.option(
    "--epilogue",
    is_flag=True,
    help="With --kernel: time the block relu(simam(x)*scale[c]+bias[c]+r) (SimAM, BatchNorm affine, "
    "residual add, ReLU) instead of SimAM alone; the fused row is one op with the fused epilogue.",
)
@click.option("--shape", "shapes", multiple=True, metavar="NxCxHxW", help="Kernel shape (repeatable).")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(PRECISIONS),
    help="Repeatable. [default: fp32 and fp16 for --kernel, fp32 for a TARGET]",
)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cuda if available]"
)
@click.option("--warmup", type=int, default=None, help="Untimed iterations first.")
@click.option("--iters", type=int, default=None, help="Timed iterations (the median is reported).")
@click.option(
    "--compare",
    metavar="LIST",
    help="Comma-separated backends: eager,fused,compile (--kernel); also onnxruntime,openvino,tensorrt "
    "(TARGET).",
)
@click.option("--batch", type=int, default=None, help="Replace the batch size N of every shape / input.")
@click.option(
    "--input-shape",
    metavar="SHAPE|NAME=SHAPE,...",
    help="TARGET input shape, any rank (1x3x32x32, 1x200x80), or one per input of a file "
    "(feats=1x200x80,weights=1x200) [default: the zoo model's / the file's].",
)
@click.option(
    "--checkpoint", metavar="PATH", help="Weights for a zoo model TARGET (loaded with weights_only)."
)
@click.option(
    "--reference",
    metavar="MODEL",
    help="For an .onnx/.engine TARGET: the PyTorch model to time beside it (eager, fused, compile, "
    "onnxruntime in --compare).",
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    metavar="NAME",
    help="For an .onnx/.engine TARGET: the backend(s) that run it, repeatable (onnxruntime, openvino for "
    ".onnx; tensorrt for engines) [default: by file type].",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="CPU threads of ONNX Runtime / OpenVINO (e.g. 1 for single-thread latency) [default: theirs].",
)
@click.option(
    "--cuda-graph", is_flag=True, help="Replay a CUDA graph (TensorRT engines whose runner supports it)."
)
@click.option(
    "--triton",
    nargs=2,
    metavar="URL MODEL",
    help="Also time MODEL served by Triton at URL (http://HOST:8000 or grpc://HOST:8001), one request at "
    "a time on the same inputs; alone when no TARGET is given.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write the results as JSON ('-' = stdout).")
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE.png",
    help="Write a bar plot (matplotlib): medians, p10-p90 whiskers.",
)
def bench(
    target, kernel, epilogue, shapes, dtypes, device, warmup, iters, compare, batch, input_shape,
    checkpoint, reference, backends, threads, cuda_graph, triton, json_path, plot_path,
) -> None:  # fmt: skip
    """Measure speed: the fused SimAM kernel (--kernel) or a model TARGET several ways side by side."""
    import torch

    from simam_deploy.bench import report
    from simam_deploy.errors import InputError

    if kernel == bool(target or triton):
        raise InputError(
            "give either --kernel or a TARGET / --triton URL MODEL (not both, not neither)",
            "see simam-deploy bench --help",
        )
    _check_arguments(target, checkpoint, reference, json_path, plot_path)
    if kernel and (backends or threads is not None):
        raise InputError("--backend and --threads apply to a TARGET", "drop them with --kernel")
    if epilogue and not kernel:
        raise InputError(
            "--epilogue applies to --kernel (the SimAM block alone), not to a TARGET or --triton",
            "add --kernel and drop the TARGET, or drop --epilogue",
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    progress = lambda msg: err_console.print(f"[dim]{msg}[/dim]")  # noqa: E731  (stderr: never mixes with JSON)
    compared = [c.strip() for c in compare.split(",") if c.strip()] if compare else None
    if kernel:
        from simam_deploy.bench.kernel import (
            IMPLEMENTATIONS,
            RESNET50_SHAPES,
            parse_shapes,
            run_kernel_benchmark,
            with_batch,
        )

        result = run_kernel_benchmark(
            with_batch(parse_shapes(shapes) if shapes else RESNET50_SHAPES, batch),
            list(dtypes) or ["fp32", "fp16"],
            device=device,
            warmup=warmup if warmup is not None else (20 if on_gpu else 3),
            iters=iters if iters is not None else (200 if on_gpu else 15),
            impls=compared or IMPLEMENTATIONS,
            epilogue=epilogue,
            progress=progress,
        )
        table, plot = report.kernel_table(result), report.plot_kernel
    elif not target:
        from simam_deploy.bench.targets import benchmark_triton

        result = benchmark_triton(
            *triton,
            batch=batch,
            input_shape=input_shape,
            warmup=warmup if warmup is not None else 5,
            iters=iters if iters is not None else 50,
            progress=progress,
        )
        table, plot = report.targets_table(result), report.plot_targets
    else:
        from simam_deploy.bench.targets import add_triton, benchmark_target

        if len(dtypes) > 1:
            raise InputError("a TARGET benchmark takes one --dtype", "run once per dtype")
        result = benchmark_target(
            target,
            compare=compared,
            device=device,
            dtype=dtypes[0] if dtypes else "fp32",
            batch=batch,
            input_shape=input_shape,
            checkpoint=checkpoint,
            reference=reference,
            warmup=warmup if warmup is not None else 5,
            iters=iters if iters is not None else 50,
            cuda_graph=cuda_graph,
            progress=progress,
            backends=list(backends) or None,
            threads=threads,
        )
        if triton:
            add_triton(result, *triton, batch=batch, input_shape=input_shape, progress=progress)
        table, plot = report.targets_table(result), report.plot_targets
    payload = result.to_dict()
    payload["mode"] = "kernel" if kernel else "target"
    if "dtype" in payload:
        payload["dtype"] = dtype_name(payload["dtype"])
    inputs = {"target": target, "checkpoint": checkpoint, "reference": reference}
    write_json(
        json_path, envelope("bench", payload, inputs=inputs, outputs={"json": json_path, "plot": plot_path})
    )
    out = human_console(json_path)
    out.print(table)
    for note in result.notes:
        out.print(f"note: {note}")
    if plot_path:
        plot(result, plot_path)


def _check_arguments(target, checkpoint, reference, json_path, plot_path) -> None:
    """Blame the right thing first (an unknown model, a missing file), and check every output path
    against the inputs and each other, before minutes of timing."""
    from simam_deploy.bench.targets import target_kind
    from simam_deploy.zoo import check_model_spec

    if target and target_kind(target) == "model":
        check_model_spec(target)
    if reference:
        check_model_spec(reference)
    file_target = target if target and target_kind(target) != "model" else None
    model_specs = [m for m in (target, reference) if m and ":" in m]
    check_outputs({"--json": json_path, "--plot": plot_path}, [file_target, checkpoint, *model_specs])
