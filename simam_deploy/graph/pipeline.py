"""File-to-file fuse and unfuse, as the commands run them (usable from Python too).

Both always write the output, the model unchanged when there was nothing to do, so the next step
of a pipeline never picks up a stale file; ``expect`` turns a surprising count into a failed check
(exit 1) after the output is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from simam_deploy.errors import InputError, ParityFailure
from simam_deploy.fileio import check_output_path
from simam_deploy.graph import contract
from simam_deploy.graph.fuse import DEFAULT_ATOL, FuseReport, add_function, fuse_simam
from simam_deploy.graph.io import load_model, save_model
from simam_deploy.graph.unfuse import unfuse_simam

FUSE_SCHEMA = "simam-deploy/fuse/v1"
UNFUSE_SCHEMA = "simam-deploy/unfuse/v1"


@dataclass
class UnfuseReport:
    expanded: list[dict] = field(default_factory=list)  # name, input, output, e_lambda, unbiased

    def to_dict(self) -> dict:
        return {"expanded": list(self.expanded)}


def check_expected(count: int, expect: int | None, what: str) -> None:
    """ParityFailure (exit 1) when ``expect`` is given and differs from ``count``."""
    if expect is not None and count != expect:
        raise ParityFailure(
            f"{what.format(count)}, expected {expect}",
            "look at the rejected candidates in the report (--json), or correct --expect",
        )


def fuse_count(report: FuseReport, source: str | os.PathLike | None = None) -> tuple[int, str]:
    """What ``fuse --expect`` counts: the SimAM nodes of the output, those fused now plus those the
    file already had (so re-running fuse on a fused file holds); and the message template."""
    where = f" in {source}" if source is not None else ""
    if not report.existing_simam_nodes:
        return len(report.fused), f"fused {{}} SimAM subgraph(s){where}"
    return len(report.fused) + report.existing_simam_nodes, (
        f"{{}} SimAM node(s) in the output: {len(report.fused)} fused now, "
        f"{report.existing_simam_nodes} already{where}"
    )


def _check_expect(expect: int | None) -> None:
    if expect is not None and expect < 0:
        raise InputError(f"--expect must be >= 0, got {expect}", "give the number of SimAM blocks, e.g. 9")


def fuse_file(
    source: str | os.PathLike,
    output: str | os.PathLike | None,
    *,
    atol: float = DEFAULT_ATOL,
    dry_run: bool = False,
    function: bool = True,
    external_data: str = "auto",
    expect: int | None = None,
    epilogue: bool = False,
) -> tuple[FuseReport, list[Path]]:
    """Fuse ``source`` into ``output``; returns the report and the files written. ``epilogue``
    also folds what follows each SimAM node into it (:mod:`simam_deploy.graph.epilogue`).

    Raises ParityFailure (exit 1) when ``expect`` differs from the number of SimAM nodes in the
    output (fused now plus those already in ``source``); the output is written first all the same.
    """
    if output is None and not dry_run:
        raise InputError("no output file given", "add -o OUT.onnx, or --dry-run to only report")
    if not atol > 0:
        raise InputError(f"--atol must be > 0, got {atol}", "e.g. --atol 1e-4")
    _check_expect(expect)
    if output is not None:
        check_output_path(output, [source])
    model = load_model(source)
    fused, report = fuse_simam(model, atol=atol, dry_run=dry_run, function=function, epilogue=epilogue)
    changed = bool(report.fused) or bool(report.epilogue and report.epilogue.folded)
    if not changed and function and report.existing_simam_nodes:
        # a plugin-mode file: give its nodes the portable function (ours, replacing any SimAM
        # function the file brought: a runtime would execute that body in place of SimAM)
        fused = model
        add_function(fused, report)
    written: list[Path] = []
    if not dry_run:
        written = save_model(fused, output, source=source, external_data=external_data)
    count, what = fuse_count(report, source)
    check_expected(count, expect, what)
    return report, written


def unfuse_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    external_data: str = "auto",
    expect: int | None = None,
) -> tuple[UnfuseReport, list[Path]]:
    """Expand every SimAM node of ``source`` into standard ops in ``output`` (always written)."""
    _check_expect(expect)
    check_output_path(output, [source])
    model = load_model(source)
    found = contract.validate_simam_nodes(model)
    report = UnfuseReport(
        [{"name": n.name, "input": n.input[0], "output": n.output[0], **a.as_dict()} for n, a in found]
    )
    out = unfuse_simam(model) if found else model
    written = save_model(out, output, source=source, external_data=external_data)
    check_expected(len(found), expect, f"expanded {{}} SimAM node(s) in {source}")
    return report, written
