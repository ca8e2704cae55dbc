#!/usr/bin/env python3
"""SimAM kernel benchmark: eager decomposed vs torch.compile vs the fused op, side by side.

The same library function as ``simam-deploy bench --kernel``; defaults are the SimAM shapes of
ResNet-50 at batch 32 in fp32 and fp16.

    python benchmarks/bench_kernel.py --device cuda --json kernel.json --plot kernel.png
    python benchmarks/bench_kernel.py --device cpu --batch 4 --dtype fp32
    python benchmarks/bench_kernel.py --shape 8x256x56x56 --dtype fp32 --iters 30
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from simam_deploy.bench.kernel import (
    IMPLEMENTATIONS,
    RESNET50_SHAPES,
    parse_shapes,
    run_kernel_benchmark,
    with_batch,
)
from simam_deploy.bench.report import kernel_table, plot_kernel, save_json
from simam_deploy.errors import SimamDeployError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape", action="append", metavar="NxCxHxW", help="repeatable; default: ResNet-50 shapes"
    )
    parser.add_argument("--batch", type=int, help="replace N of every shape")
    parser.add_argument("--dtype", action="append", choices=["fp32", "fp16", "bf16"], help="repeatable")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--impl", action="append", choices=IMPLEMENTATIONS, help="repeatable; default: all")
    parser.add_argument("--warmup", type=int, help="default: 20 on cuda, 3 on cpu")
    parser.add_argument("--iters", type=int, help="default: 200 on cuda, 15 on cpu")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="write a bar plot of effective bandwidth")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    try:
        shapes = with_batch(parse_shapes(args.shape) if args.shape else RESNET50_SHAPES, args.batch)
        bench = run_kernel_benchmark(
            shapes,
            args.dtype or ["fp32", "fp16"],
            device=args.device,
            warmup=args.warmup if args.warmup is not None else (20 if args.device == "cuda" else 3),
            iters=args.iters if args.iters is not None else (200 if args.device == "cuda" else 15),
            impls=args.impl or IMPLEMENTATIONS,
            progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
        )
    except SimamDeployError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return exc.exit_code
    console.print(kernel_table(bench))
    for note in bench.notes:
        console.print(f"note: {note}")
    if args.json:
        save_json(args.json, bench.to_dict())
    if args.plot:
        plot_kernel(bench, args.plot)
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
