#!/usr/bin/env python3
"""Served latency and throughput on Triton beside local ONNX Runtime, on the same machine.

Writes a python-backend repository for MODEL.onnx, serves it with the tritonserver that
`make triton-server` unpacks (127.0.0.1 only), and runs the same bounded load (REQUESTS requests of
batch BATCH, CONCURRENCY at a time) against: the local ONNX Runtime session (same file, same op
library), Triton over HTTP and Triton over gRPC. Rounds are interleaved; medians are reported.

    python benchmarks/bench_triton.py r20-fused.onnx
    python benchmarks/bench_triton.py r20-fused.onnx --requests 500 --concurrency 16 --rounds 3 --json t.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from simam_deploy.backends import load_runner
from simam_deploy.errors import SimamDeployError
from simam_deploy.triton import write_repository
from simam_deploy.triton.client import LoadReport, load_test, run_load
from simam_deploy.triton.server import LocalTritonServer


def _inputs(runner, batch: int, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(count):
        feed = {}
        for name, shape, dtype in runner.input_spec():
            dims = [
                batch if i == 0 else (d if isinstance(d, int) and d > 0 else 32) for i, d in enumerate(shape)
            ]
            feed[name] = rng.standard_normal(dims).astype(dtype)
        feeds.append(feed)
    return feeds


def _median(reports: list[LoadReport]) -> dict[str, float]:
    return {
        key: statistics.median(getattr(r, key) for r in reports)
        for key in ("throughput_rps", "p50_ms", "p90_ms", "p99_ms")
    } | {"errors": sum(r.errors for r in reports)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="an .onnx file (fused, plugin-mode or decomposed)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="batch of each request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        runner = load_runner(args.model)
        pool = _inputs(runner, args.batch, 16)
        results: dict[str, list[LoadReport]] = {"local onnxruntime": [], "triton http": [], "triton grpc": []}
        with tempfile.TemporaryDirectory() as tmp:
            write_repository(args.model, Path(tmp) / "repo", name="m", backend="python", max_batch=64)
            with LocalTritonServer(Path(tmp) / "repo", log_path=Path(tmp) / "server.log") as server:
                for round_ in range(args.rounds):
                    console.print(f"[dim]round {round_ + 1}/{args.rounds}[/dim]")
                    common = {"requests": args.requests, "concurrency": args.concurrency}
                    results["local onnxruntime"].append(
                        run_load(lambda i: runner.infer(pool[i % len(pool)]), **common)
                    )
                    results["triton http"].append(
                        load_test(f"http://{server.http_url}", "m", lambda i: pool[i % len(pool)], **common)
                    )
                    results["triton grpc"].append(
                        load_test(f"grpc://{server.grpc_url}", "m", lambda i: pool[i % len(pool)], **common)
                    )
    except SimamDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {name: _median(reports) for name, reports in results.items()}
    table = Table(
        title=f"{args.model.name}: {args.requests} requests of batch {args.batch}, "
        f"{args.concurrency} at a time, median of {args.rounds} interleaved rounds",
        title_justify="left",
    )
    for column in ("path", "throughput (req/s)", "p50 ms", "p90 ms", "p99 ms", "errors"):
        table.add_column(column)
    for name, row in summary.items():
        table.add_row(
            name, f"{row['throughput_rps']:.1f}", f"{row['p50_ms']:.2f}", f"{row['p90_ms']:.2f}",
            f"{row['p99_ms']:.2f}", str(row["errors"]),
        )  # fmt: skip
    console.print(table)
    if args.json:
        args.json.write_text(
            json.dumps({"schema": "simam-deploy/bench-triton/v1", "results": summary}, indent=2)
        )
    return 0 if all(row["errors"] == 0 for row in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
