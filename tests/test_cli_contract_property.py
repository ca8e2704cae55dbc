"""The CLI contract as a property (hypothesis): every command, driven with generated bad input
(corrupt, truncated or empty files; wrong shapes, dtypes and ranks; NaN/Inf data; colliding,
missing, read-only or full output paths), must for every run

* exit 0, 1 or 2 as documented (and 2 whenever the scenario is known to be bad input),
* print no Python traceback,
* leave every input byte-identical and, on exit 2, every output path untouched,
* leave no temporary file behind,
* write outputs readable under the umask (0666 minus the umask), JSON with its schema id.

Runs in-process through tests/cli_runner.py (the same main() and handler the entry point uses).
Kept fast for CI: small real models exported once per session, --seeds 0, --iters 2; the number of
examples is SIMAM_CONTRACT_EXAMPLES (default 40: about 25 s on a 2-core machine)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from tests.test_cli_contract_support import (
    digest,
    expected_mode,
    mounts_allowed,
    run,
    stray_temporaries,
)

EXAMPLES = int(os.environ.get("SIMAM_CONTRACT_EXAMPLES", "40"))
R20 = "cifar-resnet20"
CAN_MOUNT = mounts_allowed()

MODEL_KINDS = ["fixed", "dynamic", "truncated", "empty", "garbage", "missing", "wrong_suffix"]
BAD_MODEL_KINDS = {"truncated", "empty", "garbage", "missing", "wrong_suffix"}
NPZ_KINDS = [
    None,
    "good",
    "nan",
    "inf",
    "huge",
    "float64",
    "float16",
    "int64",
    "rank3",
    "channels",
    "truncated",
    "empty",
]
NONFINITE_NPZ = {"nan", "inf", "huge"}
CKPT_KINDS = [None, "good", "empty", "truncated", "pickled_object"]
SHAPES = [None, "1x3x32x32", "2x3x32x32", "1x3x40x40", "1x3x1x1", "1x4x32x32", "0x3x32x32", "abc", "1x3x32"]
UNPARSABLE_SHAPES = {"0x3x32x32", "abc", "1x3x32"}
OUTPUT_KINDS = ["fresh", "existing", "stdout", "input", "other", "missing_dir"] + (
    ["readonly", "full"] if CAN_MOUNT else []
)
BAD_OUTPUT_KINDS = {"input", "other", "missing_dir", "readonly", "full"}

# Per command: its output options (first one required where listed in REQUIRED) and its inputs.
OUTPUT_OPTIONS = {
    "validate": ["--json"],
    "export": ["-o", "--json"],
    "bench": ["--json", "--plot"],
    "fuse": ["-o", "--json"],
    "unfuse": ["-o", "--json"],
    "models": ["--json"],
}
REQUIRED = {"export": "-o", "fuse": "-o", "unfuse": "-o"}
JSON_OPTIONS = {"--json"}


# ---- real material, made once per session ---------------------------------------------------------
class Material(dict):
    """name -> bytes; a short repr so that hypothesis' report of a failing example stays readable."""

    def __repr__(self) -> str:
        return f"Material({sorted(self)})"


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> Material:
    """Bytes of real files: ONNX files written by torch's exporter, a fused file, a checkpoint."""
    from tests import cli_runner

    folder = tmp_path_factory.mktemp("material")
    for name, dynamic in (("fixed", "none"), ("dynamic", "all")):
        args = ["export", R20, "-o", str(folder / f"{name}.onnx"), "--opset", "17", "--dynamic", dynamic]
        assert cli_runner.exit_code(*args) == 0
    assert cli_runner.exit_code("fuse", str(folder / "fixed.onnx"), "-o", str(folder / "fused.onnx")) == 0
    from simam_deploy.zoo import build_model

    model, _ = build_model(R20)
    torch.save(model.state_dict(), folder / "r20.pth")
    return Material({p.stem: p.read_bytes() for p in folder.iterdir() if p.is_file()})


@pytest.fixture(scope="module")
def special_dirs():
    """A read-only tmpfs and a full tmpfs (root with mount rights only; else those kinds are not drawn)."""
    if not CAN_MOUNT:
        yield {}
        return
    from tests.test_cli_contract_support import full_dir, read_only_dir

    with read_only_dir() as ro, full_dir() as full:
        yield {"readonly": ro, "full": full}


# ---- one generated scenario -------------------------------------------------------------------------
@dataclass
class Scenario:
    command: str
    model: str
    npz: str | None
    ckpt: str | None
    shape: str | None
    outputs: dict[str, str]
    args: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    output_paths: dict[str, Path] = field(default_factory=dict)
    known_bad: list[str] = field(default_factory=list)


GOOD = {
    "model": ["fixed", "dynamic"],
    "npz": [None, "good", "nan", "inf", "huge"],  # NaN/Inf data is good input: the check must fail (1)
    "ckpt": [None, "good"],
    "shape": [None, "1x3x32x32", "1x3x40x40"],
    "output": ["fresh", "existing", "stdout"],
}
EVERY = {"model": MODEL_KINDS, "npz": NPZ_KINDS, "ckpt": CKPT_KINDS, "shape": SHAPES, "output": OUTPUT_KINDS}


@st.composite
def scenarios(draw) -> Scenario:
    """A clean run, a clean run with exactly one fault, or faults anywhere (so that every exit code
    and every kind of bad input is drawn often, not only the combinations that fail early)."""
    command = draw(st.sampled_from(list(OUTPUT_OPTIONS)))
    dimensions = ["model"] if command in ("validate", "bench", "fuse", "unfuse") else []
    dimensions += ["npz"] if command == "validate" else []
    dimensions += ["ckpt"] if command in ("validate", "export") else []
    dimensions += ["shape"] if command in ("validate", "export", "bench") else []
    dimensions += [f"output{option}" for option in OUTPUT_OPTIONS[command]]
    style = draw(st.sampled_from(["clean", "one fault", "one fault", "chaos"]))
    faulty = {draw(st.sampled_from(dimensions))} if style == "one fault" else set()

    def pick(dimension: str, kind: str, allowed=lambda k: True):
        table = EVERY if style == "chaos" or dimension in faulty else GOOD
        return draw(st.sampled_from([k for k in table[kind] if allowed(k)]))

    model = pick("model", "model") if "model" in dimensions else "fixed"
    npz = pick("npz", "npz") if "npz" in dimensions else None
    ckpt = pick("ckpt", "ckpt") if "ckpt" in dimensions else None
    shape = pick("shape", "shape") if "shape" in dimensions and npz is None else None
    outputs = {}
    for option in OUTPUT_OPTIONS[command]:
        optional = REQUIRED.get(command) != option
        kind = pick(f"output{option}", "output", lambda k, o=option: k != "stdout" or o in JSON_OPTIONS)
        if optional and draw(st.integers(0, 3)) == 0:
            kind = "none"
        outputs[option] = kind
    return Scenario(command, model, npz, ckpt, shape, outputs)


def _write_model(work: Path, kind: str, material: dict[str, bytes], fused: bool) -> Path:
    good = material["fused" if fused else ("dynamic" if kind == "dynamic" else "fixed")]
    path = work / ("model.txt" if kind == "wrong_suffix" else "model.onnx")
    content = {
        "fixed": good,
        "dynamic": good,
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "garbage": b"\x08\x07not an onnx file\xff\xfe" * 50,
        "wrong_suffix": good,
    }.get(kind)
    if content is not None:
        path.write_bytes(content)
    return path


def _write_npz(work: Path, kind: str) -> Path:
    path = work / "inputs.npz"
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    arrays = {
        "good": x,
        "nan": np.where(np.arange(x.size).reshape(x.shape) == 100, np.nan, x).astype(np.float32),
        "inf": np.where(np.arange(x.size).reshape(x.shape) < 10, np.inf, x).astype(np.float32),
        "huge": np.full_like(x, 1e30),
        "float64": x.astype(np.float64),
        "float16": x.astype(np.float16),
        "int64": x.astype(np.int64),
        "rank3": x[0],
        "channels": np.zeros((1, 4, 32, 32), np.float32),
    }
    if kind in arrays:
        np.savez(path, input=arrays[kind])
    else:
        np.savez(path, input=x)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"")
    return path


def _write_ckpt(work: Path, kind: str, material: dict[str, bytes]) -> Path:
    path = work / "weights.pth"
    good = material["r20"]
    content = {
        "good": good,
        "empty": b"",
        "truncated": good[: len(good) // 3],
        "pickled_object": pickle.dumps({"state_dict": Path("not/a/tensor")}),  # refused by weights_only
    }[kind]
    path.write_bytes(content)
    return path


def _resolve_outputs(sc: Scenario, work: Path, dirs: dict[str, Path]) -> None:
    """Give each output option its path; record which kinds make the run bad input."""
    first_file: Path | None = None
    for option, kind in sc.outputs.items():
        suffix = {"--json": ".json", "--plot": ".png"}.get(option, ".onnx")
        name = f"out{option.strip('-')}{suffix}"
        if kind == "none":
            continue
        if kind == "other" and first_file is None:
            kind = "fresh"
        if kind == "input" and not [p for p in sc.inputs if p.exists()]:
            kind = "fresh"
        path = {
            "fresh": work / name,
            "existing": work / name,
            "stdout": Path("-"),
            "input": next((p for p in sc.inputs if p.exists()), None),
            "other": first_file,
            "missing_dir": work / "no-such-dir" / name,
            "readonly": dirs.get("readonly", work) / name,
            "full": dirs.get("full", work) / name,
        }[kind]
        if kind == "existing":
            path.write_bytes(b"an older report, replaced only on success\n")
        if kind in BAD_OUTPUT_KINDS and not (kind == "full" and not _writes(sc, option)):
            sc.known_bad.append(f"{option} {kind}")
        if kind != "stdout" and first_file is None:
            first_file = path
        sc.output_paths[option] = path
        sc.args += [option, str(path)]


def _writes(sc: Scenario, option: str) -> bool:
    """Whether the command reaches the write of ``option`` when everything else is good."""
    if sc.command == "unfuse" and option == "-o":
        return sc.model not in BAD_MODEL_KINDS  # the fused file has SimAM nodes to expand
    return True


def _build(sc: Scenario, work: Path, material: dict[str, bytes], dirs: dict[str, Path]) -> None:
    model = _write_model(work, sc.model, material, fused=sc.command == "unfuse")
    bad_model = sc.model in BAD_MODEL_KINDS
    if sc.command in ("validate", "bench", "fuse", "unfuse"):
        sc.args = [sc.command, str(model)]
        sc.inputs.append(model)
        # fuse/unfuse read any file name; validate/bench pick the backend by the suffix.
        if bad_model and not (sc.model == "wrong_suffix" and sc.command in ("fuse", "unfuse")):
            sc.known_bad.append(f"model {sc.model}")
    elif sc.command == "export":
        sc.args = ["export", R20, "--opset", "17"]  # the torchscript exporter: seconds, not tens
    else:
        sc.args = ["models"]
    if sc.command == "validate":
        sc.args += ["--reference", R20, "--seeds", "0"]
    if sc.command == "bench":
        sc.args += ["--iters", "2", "--warmup", "0", "--device", "cpu"]
    if sc.npz is not None:
        npz = _write_npz(work, sc.npz)
        sc.inputs.append(npz)
        sc.args += ["--inputs", str(npz)]
        if sc.npz not in {"good"} | NONFINITE_NPZ:
            sc.known_bad.append(f"npz {sc.npz}")
    if sc.ckpt is not None:
        ckpt = _write_ckpt(work, sc.ckpt, material)
        sc.inputs.append(ckpt)
        sc.args += ["--checkpoint", str(ckpt)]
        if sc.ckpt != "good":
            sc.known_bad.append(f"checkpoint {sc.ckpt}")
    if _needs_shape(sc):
        sc.known_bad.append("bench of a dynamic-H/W file without --input-shape")
    if sc.shape is not None:
        sc.args += ["--input-shape", sc.shape]
        if _shape_is_bad(sc):
            sc.known_bad.append(f"--input-shape {sc.shape}")
    _resolve_outputs(sc, work, dirs)


def _shape_is_bad(sc: Scenario) -> bool:
    if sc.shape in UNPARSABLE_SHAPES or sc.shape == "1x4x32x32":
        return True
    if sc.command in ("validate", "export", "bench") and sc.shape == "1x3x1x1":
        # SimAM on 1x1 planes: refused, layer named (bench runs the fused form too, whose kernel refuses)
        return True
    file_target = sc.command in ("validate", "bench")
    return file_target and sc.model == "fixed" and sc.shape != "1x3x32x32"


def _needs_shape(sc: Scenario) -> bool:
    """bench runs an H/W-dynamic file only at a size it is told."""
    return sc.command == "bench" and sc.model == "dynamic" and sc.shape is None


def _tree(*folders: Path) -> dict[Path, str]:
    return {p: digest(p) for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file()}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_every_run_keeps_the_contract(sc: Scenario, material, special_dirs, capsys, tmp_path):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        _build(sc, work, material, special_dirs)
        folders = [work, *special_dirs.values()]
        before = _tree(*folders)
        inputs = {p: digest(p) for p in sc.inputs if p.is_file()}
        code, out, err = run(sc.args, capsys)
        event(f"{sc.command} exit {code}")  # see --hypothesis-show-statistics
        text = f"{sc}\nexit {code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"

        assert code in (0, 1, 2), text
        assert "Traceback" not in out + err, text
        for path, sha in inputs.items():
            assert path.is_file() and digest(path) == sha, f"input {path} changed\n{text}"
        assert not stray_temporaries(*folders), text
        if sc.known_bad:
            assert code == 2, f"known bad ({sc.known_bad}) but exit {code}\n{text}"
        elif sc.npz in NONFINITE_NPZ:
            assert code == 1 and "NaN" in out + err, text
        else:
            assert code == 0, text
        if code == 2:
            _check_nothing_half_written(sc, before, _tree(*folders), text)
            assert "error" in err.lower(), text
            return
        _check_outputs(sc, before, out, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_nothing_half_written(sc: Scenario, before: dict, after: dict, text: str) -> None:
    """Exit 2: nothing changed, except that a run failing on its LAST write (e.g. --json on a full
    disk after -o was written) keeps the earlier outputs, complete and in place."""
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outputs = {p for p in sc.output_paths.values() if str(p) != "-"}
    assert changed <= outputs, f"exit 2 changed non-output files {changed - outputs}\n{text}"
    for path in changed:
        assert path in after, f"exit 2 removed {path}\n{text}"
        assert path.suffix == ".onnx" and path.stat().st_size > 0, text
        onnx.checker.check_model(onnx.load(path))  # complete, not half-written


def _check_outputs(sc: Scenario, before: dict[Path, str], out: str, text: str) -> None:
    for option, path in sc.output_paths.items():
        if str(path) == "-":
            assert json.loads(out)["schema"] == f"simam-deploy/{sc.command}/v1", text
            continue
        if not path.exists():
            continue  # e.g. fuse/unfuse with nothing to write
        assert (path.stat().st_mode & 0o777) == expected_mode(), text
        if option == "--json":
            assert json.loads(path.read_text())["schema"] == f"simam-deploy/{sc.command}/v1", text
        if path in before:
            assert digest(path) != before[path], f"{option} was not replaced\n{text}"


# ==== hostile cases generated from the click commands themselves (issue 23) ======================
# Every command of the CLI and every option that names an output are read from click, so that a new
# command or option is covered without editing this file (a new command needs its clean invocation
# in CLEAN_RUNS below; the test refuses to run without one). An option names an output when its help
# starts with "Write" or says "to write", "updated" or "created if missing" (the convention of
# cli/*); it takes '-' when its help says "'-' = stdout". For each command the classes are:
#   alias   an output option given one of the command's inputs (model/ONNX file, --reference and
#           --inputs Python files, checkpoint, data file), as is or through a symlink or hard link
#   dash    '-' for an output option: stdout where documented (exit 0, JSON on stdout), else exit 2
#   corrupt one input replaced by a truncated, empty, random-bytes or directory variant
#   user    the user's factory raises, exits (SystemExit(0)) or returns the wrong type; the inputs
#           callable exits
#   memory  a batch of 10^9 (--batch, or --input-shape) is refused up front
# and every run must exit as expected, print no traceback, leave every input byte-identical, leave
# no temporary file, never create a file named '-', and on exit 2 write no output.
GENERATED_EXAMPLES = int(os.environ.get("SIMAM_GENERATED_EXAMPLES", "150"))
_WRITES = re.compile(r"^(write|where to write)\b|\bto write\b|\bupdated\b|created if missing", re.I)
HUGE = 10**9


def cli_commands() -> dict[str, click.Command]:
    from simam_deploy.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in COMMANDS}


def output_options(command: click.Command) -> list[click.Option]:
    return [
        p
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and not p.hidden and _WRITES.search(p.help or "")
    ]


def takes_stdout(option: click.Option) -> bool:
    return "'-' = stdout" in (option.help or "")


def option_names(command: click.Command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


class UserMaterial:
    """The user's own network: mynet.py, its ONNX export (dynamic batch), the fused file, a state
    dict and an .npz of inputs, as bytes (each example writes fresh copies)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def __repr__(self) -> str:
        return f"UserMaterial({sorted(self.files)})"

    def write(self, work: Path) -> dict[str, Path]:
        paths = {}
        for name, data in self.files.items():
            paths[name] = work / name
            paths[name].write_bytes(data)
        return paths


@pytest.fixture(scope="module")
def user_material(tmp_path_factory) -> UserMaterial:
    from tests import cli_runner
    from tests.test_cli_contract_support import USER_NET

    folder = tmp_path_factory.mktemp("user-material")
    (folder / "mynet.py").write_text(USER_NET)
    spec = f"{folder / 'mynet.py'}:build"
    args = ["export", spec, "--input-shape", "2x3x16x16", "--opset", "17", "-o", str(folder / "mynet.onnx")]
    assert cli_runner.exit_code(*args) == 0
    assert cli_runner.exit_code("fuse", str(folder / "mynet.onnx"), "-o", str(folder / "fused.onnx")) == 0
    from simam_deploy.zoo import build_model

    torch.save(build_model(spec)[0].state_dict(), folder / "mynet.pth")
    np.savez(
        folder / "x.npz", input=np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    )
    return UserMaterial({p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})


def _clean_run(command: str, f: dict[str, Path], work: Path) -> tuple[list[str], list[Path]]:
    """A fast invocation of ``command`` that exits 0 on the user's network, and its input files."""
    user = f"{f['mynet.py']}:build"
    fast = ["--iters", "2", "--warmup", "0", "--device", "cpu"]
    runs = {
        "models": (["models"], []),
        "libs": (["libs"], []),
        "export": (
            ["export", user, "--checkpoint", f["mynet.pth"], "--input-shape", "1x3x16x16", "--opset", "17",
             "-o", work / "out.onnx"],
            [f["mynet.py"], f["mynet.pth"]],
        ),
        "validate": (
            ["validate", f["mynet.onnx"], "--reference", user, "--checkpoint", f["mynet.pth"], "--inputs",
             f["x.npz"]],
            [f["mynet.onnx"], f["mynet.py"], f["mynet.pth"], f["x.npz"]],
        ),
        "fuse": (["fuse", f["mynet.onnx"], "-o", work / "out.onnx"], [f["mynet.onnx"]]),
        "unfuse": (["unfuse", f["fused.onnx"], "-o", work / "out.onnx"], [f["fused.onnx"]]),
        "convert": (
            ["convert", f["mynet.onnx"], "--precision", "fp16", "-o", work / "out.onnx"],
            [f["mynet.onnx"]],
        ),
        "quantize": (
            ["quantize", f["mynet.onnx"], "--calibrate", f["x.npz"], "--samples", "2",
             "-o", work / "out.onnx"],
            [f["mynet.onnx"], f["x.npz"]],
        ),
        "build": (
            ["build", f["fused.onnx"], "--runtime", "tensorrt-rtx", "-o", work / "out.engine"],
            [f["fused.onnx"]],
        ),
        "bench": (
            ["bench", user, "--checkpoint", f["mynet.pth"], "--input-shape", "1x3x16x16",
             "--compare", "eager", *fast],
            [f["mynet.py"], f["mynet.pth"]],
        ),
        "triton": (["triton", f["mynet.onnx"], "-o", work / "repo"], [f["mynet.onnx"]]),
    }  # fmt: skip
    if command not in runs:
        pytest.fail(f"command {command!r} has no clean invocation in CLEAN_RUNS: add one to _clean_run")
    args, inputs = runs[command]
    return [str(a) for a in args], inputs


def _set_option(args: list[str], names: list[str], value: str | None) -> list[str]:
    """``args`` with option ``names`` set to ``value`` (replaced where present; removed for None)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        out.append(a)
    return out if value is None else [*out, names[-1], value]


@dataclass
class Hostile:
    command: str
    fault: str
    option: str | None = None  # the output option (alias, dash) or the input index (corrupt)
    variant: str = ""
    index: int = 0


def _faults(command: str, cmd: click.Command) -> list[str]:
    names = option_names(cmd)
    faults = ["dash"] if output_options(cmd) else []
    if command not in ("models", "libs"):
        faults += ["alias", "corrupt"]
    if command in ("export", "validate", "bench"):
        faults.append("user")
    if "--batch" in names or "--input-shape" in names:
        faults.append("memory")
    return faults


@st.composite
def hostile_cases(draw) -> Hostile:
    commands = cli_commands()
    command = draw(st.sampled_from(sorted(commands)))
    cmd = commands[command]
    fault = draw(st.sampled_from(_faults(command, cmd)))
    outputs = [o.opts[-1] for o in output_options(cmd)]
    if fault in ("alias", "dash"):
        return Hostile(
            command,
            fault,
            draw(st.sampled_from(outputs)),
            draw(st.sampled_from(["same", "symlink", "hardlink"])),
            draw(st.integers(0, 3)),
        )
    if fault == "corrupt":
        return Hostile(
            command,
            fault,
            None,
            draw(st.sampled_from(["truncated", "empty", "random", "directory"])),
            draw(st.integers(0, 3)),
        )
    if fault == "user":
        variants = ["build_raising", "build_exits", "build_text"] + (
            ["batches_exit"] if command == "validate" else []
        )
        return Hostile(command, fault, None, draw(st.sampled_from(variants)))
    return Hostile(command, fault)


def _corrupt(path: Path, variant: str) -> None:
    data = path.read_bytes()
    path.unlink()
    if variant == "directory":
        path.mkdir()
        return
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "random": np.random.default_rng(7).bytes(2048)}[
            variant
        ]
    )


def _apply(case: Hostile, args: list[str], inputs: list[Path], f: dict[str, Path], work: Path):
    """The hostile invocation: (args, expected exit code, words the error must hold)."""
    cmd = cli_commands()[case.command]
    if case.fault == "dash":
        option = next(o for o in output_options(cmd) if o.opts[-1] == case.option)
        return _set_option(args, option.opts, "-"), (0 if takes_stdout(option) else 2), []
    if case.fault == "alias":
        option = next(o for o in output_options(cmd) if o.opts[-1] == case.option)
        source = inputs[case.index % len(inputs)]
        target = source
        if case.variant != "same":
            target = work / f"alias-{case.variant}{source.suffix}"
            target.symlink_to(source) if case.variant == "symlink" else os.link(source, target)
        return _set_option(args, option.opts, str(target)), 2, []
    if case.fault == "corrupt":
        _corrupt(inputs[case.index % len(inputs)], case.variant)
        return args, 2, []
    if case.fault == "user":
        if case.variant == "batches_exit":
            return _set_option(args, ["--inputs"], f"{f['mynet.py']}:batches_exit"), 2, ["batches_exit"]
        user = f"{f['mynet.py']}:build"
        return [a.replace(user, f"{f['mynet.py']}:{case.variant}") for a in args], 2, ["mynet.py"]
    names = option_names(cmd)
    if "--batch" in names:
        return _set_option(args, ["--batch"], str(HUGE)), 2, ["GB"]
    return _set_option(_set_option(args, ["--inputs"], None), ["--input-shape"], f"{HUGE}x3x16x16"), 2, ["GB"]


def _check_hostile_run(case: Hostile, user_material: UserMaterial, tmp_path: Path, capsys) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    cwd = os.getcwd()
    try:
        f = user_material.write(work)
        args, inputs = _clean_run(case.command, f, work)
        if case.command == "build":
            pytest.importorskip(
                "tensorrt_rtx_bindings", reason="the RTX builder (make install) builds without a GPU"
            )
        digests = {p: digest(p) for p in inputs}
        args, expected, words = _apply(case, args, inputs, f, work)
        before = _tree(work)
        os.chdir(work)  # a file literally named '-' would land here
        code, out, err = run(args, capsys)
        os.chdir(cwd)
        with contextlib.suppress(InvalidArgument):  # statistics exist inside hypothesis' runs only
            event(f"{case.command} {case.fault} exit {code}")
        text = f"{case}\n{' '.join(args)}\nexit {code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
        assert code == expected, text
        assert "Traceback" not in out + err and "bug in simam-deploy" not in err, text
        assert not (work / "-").exists(), text
        assert not stray_temporaries(work), text
        for path, sha in digests.items():
            if case.fault != "corrupt":
                assert path.is_file() and digest(path) == sha, f"input {path} changed\n{text}"
        for word in words:
            assert word in err, text
        if code == 2:
            assert "error" in err.lower(), text
            after = _tree(work)
            assert {p for p in after if before.get(p) != after[p]} == set(), f"exit 2 wrote files\n{text}"
        elif case.fault == "dash":
            assert json.loads(out)["schema"].startswith("simam-deploy/"), text
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


@settings(
    max_examples=GENERATED_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile_cases())
def test_generated_hostile_cases_keep_the_contract(case: Hostile, user_material, capsys, tmp_path):
    _check_hostile_run(case, user_material, tmp_path, capsys)


def _every_output_option() -> list[Hostile]:
    """Each command's every output option once as '-' and once aliasing an input (the link kind
    cycling), whatever hypothesis draws: no option is left to chance."""
    cases = []
    for command, cmd in sorted(cli_commands().items()):
        for i, option in enumerate(output_options(cmd)):
            cases.append(Hostile(command, "dash", option.opts[-1]))
            if command not in ("models", "libs"):
                cases.append(
                    Hostile(command, "alias", option.opts[-1], ["same", "symlink", "hardlink"][i % 3], i)
                )
    return cases


@pytest.mark.parametrize("case", _every_output_option(), ids=lambda c: f"{c.command}{c.option}-{c.fault}")
def test_every_output_option_refuses_aliases_and_dash(case: Hostile, user_material, capsys, tmp_path):
    _check_hostile_run(case, user_material, tmp_path, capsys)
