"""The path a new user takes: their own SimAM class, a file from plain ``torch.onnx.export``.

The SimAM classes below are written the way public code writes them (none is ours). Each network is
exported with torch's own exporter at its defaults (dynamo, which writes ``model.onnx.data``) and
with TorchScript at opsets 12 and 17, then fused, run in a plain ONNX Runtime session with nothing
registered (the file's local SimAM function), unfused, and compared with PyTorch every step.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from simam_deploy.errors import InputError
from simam_deploy.export import export_onnx
from simam_deploy.graph import contract
from simam_deploy.graph.pipeline import fuse_file, unfuse_file
from simam_deploy.onnx_utils import check_external_data_locations, load_onnx, save_onnx
from tests.cli_runner import exit_code as cli
from tests.onnx_corpus import MeanSimAM, StdSimAM, VarSimAM, simam_module


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, attention: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()  # YOLO style: every SiLU is a sigmoid that is not SimAM
        self.attention = attention

    def forward(self, x):
        return self.attention(self.act(self.bn(self.conv(x))))


class UserNet(nn.Module):
    """Two blocks with the user's attention class, then a SiLU conv and a head."""

    def __init__(self, make_attention) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stage = nn.Sequential(Block(3, 8, make_attention(0)), Block(8, 8, make_attention(1)))
        self.neck = nn.Sequential(nn.Conv2d(8, 8, 1), nn.SiLU())
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.neck(self.stage(x)))


# name -> (attention factory by block index, the (e_lambda, unbiased) fuse must read per block)
FAMILIES = {
    "paper": (lambda i: simam_module(e_lambda=(1e-4, 0.1)[i]), [(1e-4, 1), (0.1, 1)]),
    "torch-var": (lambda i: VarSimAM(1e-4, unbiased=bool(i)), [(1e-4, 0), (1e-4, 1)]),
    "std-squared": (lambda i: StdSimAM(0.1), [(0.1, 1), (0.1, 1)]),
    "mean-family": (lambda i: MeanSimAM(1e-4), [(2.5e-5, 0), (2.5e-5, 0)]),
}
EXPORTS = ("dynamo-default", "torchscript-12", "torchscript-17")
SHAPE = (1, 3, 16, 12)


def torch_export(net: nn.Module, path: Path, how: str) -> None:
    """Exactly what a user types: torch.onnx.export with default settings (or the TorchScript opset)."""
    example = (torch.randn(*SHAPE),)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if how == "dynamo-default":
            torch.onnx.export(net, example, str(path))
        else:
            torch.onnx.export(net, example, str(path), dynamo=False, opset_version=int(how.split("-")[1]))


def plain_session(path: Path, profile_prefix: str | None = None) -> ort.InferenceSession:
    """ONNX Runtime with nothing registered, from the file path (so it reads external data itself)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def profiled_nodes(session: ort.InferenceSession) -> set[tuple[str, str]]:
    """(node name, op type) of every node ONNX Runtime actually executed, read from its profile."""
    events = json.loads(Path(session.end_profiling()).read_text())
    return {
        (e["name"], e["args"]["op_name"])
        for e in events
        if e.get("cat") == "Node" and "op_name" in e.get("args", {})
    }


def profiled_op_types(session: ort.InferenceSession) -> set[str]:
    return {op for _, op in profiled_nodes(session)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, nn.Module]]:
    root = tmp_path_factory.mktemp("user-exports")
    files = {}
    for family, (make, _) in FAMILIES.items():
        net = UserNet(make).eval()
        for how in EXPORTS:
            folder = root / f"{family}-{how}"
            folder.mkdir()
            torch_export(net, folder / "model.onnx", how)
            files[family, how] = (folder / "model.onnx", net)
    return files


@pytest.mark.parametrize("how", EXPORTS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_users_file_fuses_runs_without_our_op_and_unfuses(exported, family, how, tmp_path):
    src, net = exported[family, how]
    x = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32) * 2
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    source_external = (src.parent / "model.onnx.data").exists()
    # torch 2.13's default export (dynamo, external_data=True) always writes model.onnx.data
    assert source_external == (how == "dynamo-default")

    fused_path = tmp_path / "fused.onnx"
    report, written = fuse_file(src, fused_path, expect=2)
    got = [(f.e_lambda, f.unbiased) for f in report.fused]
    for (lam, unbiased), (want_lam, want_unbiased) in zip(got, FAMILIES[family][1], strict=True):
        assert unbiased == want_unbiased and lam == pytest.approx(want_lam, rel=1e-5)
    assert report.rejected == []  # the four SiLU sigmoids are no candidates
    assert report.function
    # the output keeps the input's layout: weights beside it when the input had them
    assert (tmp_path / "fused.onnx.data").exists() == source_external
    assert len(written) == (2 if source_external else 1)
    fused = onnx.load(fused_path, load_external_data=False)
    simam = [n for n in fused.graph.node if contract.is_simam_node(n)]
    # named after the module path, from TorchScript's node names or dynamo's scope metadata
    assert [n.name for n in simam] == ["/stage/0/attention/SimAM", "/stage/1/attention/SimAM"]
    assert [f.name for f in report.fused] == [n.name for n in simam]
    assert [n.output[0] for n in simam] == ["/stage/0/attention/output", "/stage/1/attention/output"]
    assert [(f.domain, f.name) for f in fused.functions] == [(contract.DOMAIN, contract.OP_TYPE)]
    assert "Sigmoid" not in {n.op_type for n in fused.graph.node if n.name.endswith("SimAM")}

    # plain ONNX Runtime: nothing registered, it expands the local function
    session = plain_session(fused_path, str(tmp_path / "plain"))
    np.testing.assert_allclose(run_session(session, x), want, rtol=1e-4, atol=1e-5)
    executed = profiled_nodes(session)
    ops = {op for _, op in executed}
    assert "SimAM" not in ops and {"Sigmoid", "ReduceMean"} <= ops
    # ONNX Runtime names the nodes it inlined from the local function _inlfunc_SimAM_<body node>
    assert any(name.startswith("_inlfunc_SimAM_attention") and op == "Sigmoid" for name, op in executed)

    plain_path = tmp_path / "plain.onnx"
    unfuse_file(fused_path, plain_path, expect=2)
    plain = load_onnx(plain_path)
    assert not plain.functions and not any(contract.is_simam_node(n) for n in plain.graph.node)
    assert contract.DOMAIN not in {o.domain for o in plain.opset_import}
    np.testing.assert_allclose(run_session(plain_session(plain_path), x), want, rtol=1e-4, atol=1e-5)


def test_onnx_reference_evaluator_runs_the_fused_file(exported, tmp_path):
    from onnx.reference import ReferenceEvaluator

    src, net = exported["torch-var", "dynamo-default"]
    out = tmp_path / "fused.onnx"
    fuse_file(src, out, expect=2)
    x = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = ReferenceEvaluator(load_onnx(out)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_with_our_op_registered_onnx_runtime_runs_the_fused_kernel(exported, tmp_path):
    from simam_deploy.backends.onnxruntime import library as simam_ort

    src, net = exported["paper", "torchscript-17"]
    out = tmp_path / "fused.onnx"
    fuse_file(src, out, expect=2)
    options = simam_ort.session_options()  # our op library, same domain: no retargeting
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "ours")
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_session(session, x), want, rtol=1e-4, atol=1e-5)
    executed = profiled_op_types(session)
    # the fused kernel ran, not the local function (the SiLU sigmoids remain, no ReduceMean)
    assert "SimAM" in executed and "ReduceMean" not in executed


# -- export recognises users' classes ------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_plugin_mode_fuses_users_classes_and_names_them(tmp_path, exporter):
    net = UserNet(FAMILIES["paper"][0]).eval()
    out = tmp_path / "plugin.onnx"
    opset = 18 if exporter == "dynamo" else 17
    report = export_onnx(net, out, mode="plugin", input_shape=SHAPE, exporter=exporter, opset=opset)
    assert report.simam_modules == []  # none is simam_deploy's class...
    assert report.simam_nodes == 2  # ...yet every block became one SimAM node
    assert [(b["module"], b["class"], b["unbiased"]) for b in report.simam_blocks] == [
        ("stage.0.attention", "simam_module", 1),
        ("stage.1.attention", "simam_module", 1),
    ]
    assert [b["e_lambda"] for b in report.simam_blocks] == pytest.approx([1e-4, 0.1])
    model = load_onnx(out)
    nodes = [n for n in model.graph.node if contract.is_simam_node(n)]
    # node and tensor names follow the module path, so other tools' reports map back to modules
    assert [n.name for n in nodes] == ["/stage/0/attention/SimAM", "/stage/1/attention/SimAM"]
    assert [n.output[0] for n in nodes] == ["/stage/0/attention/output", "/stage/1/attention/output"]
    assert all(t.startswith("/") for n in model.graph.node for t in n.output if t not in ("output",))
    assert report.local_function and model.functions
    x = np.random.default_rng(6).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_session(plain_session(out), x), want, rtol=1e-4, atol=1e-5)


def test_export_decomposed_lists_blocks_and_no_simam_is_explained(tmp_path):
    net = UserNet(FAMILIES["mean-family"][0]).eval()
    report = export_onnx(net, tmp_path / "d.onnx", input_shape=SHAPE, opset=17)
    assert report.simam_nodes == 0 and len(report.simam_blocks) == 2
    assert report.simam_blocks[0]["path"] == "/stage/0/attention"
    plain = UserNet(lambda i: nn.Identity()).eval()
    report = export_onnx(plain, tmp_path / "none.onnx", input_shape=SHAPE, opset=17)
    assert report.simam_blocks == [] and "no SimAM block found in UserNet" in report.notes[0]
    with pytest.raises(InputError, match="0 SimAM nodes"):
        export_onnx(plain, tmp_path / "none-plugin.onnx", mode="plugin", input_shape=SHAPE, opset=17)
    assert not (tmp_path / "none-plugin.onnx").exists()
    report = export_onnx(
        plain, tmp_path / "none-plugin.onnx", mode="plugin", input_shape=SHAPE, opset=17, allow_none=True
    )
    assert report.simam_nodes == 0


def test_cli_export_plugin_without_simam_exits_2(tmp_path, capsys, monkeypatch):
    module = tmp_path / "user_nets_plain.py"
    module.write_text(
        "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["export", "user_nets_plain:build", "--input-shape", "1x3x16x16", "--opset", "17"]
    assert cli(*args, "--mode", "plugin", "-o", str(tmp_path / "p.onnx")) == 2
    assert "0 SimAM nodes" in capsys.readouterr().err
    assert cli(*args, "-o", str(tmp_path / "d.onnx")) == 0
    assert "no SimAM block found" in capsys.readouterr().out


# -- external data -------------------------------------------------------------------------------


def test_cli_external_data_modes_and_protected_input(exported, tmp_path, capsys):
    src, _ = exported["paper", "dynamo-default"]
    data = src.parent / "model.onnx.data"
    before = data.read_bytes()
    never, always = tmp_path / "never.onnx", tmp_path / "always.onnx"
    assert cli("fuse", str(src), "-o", str(never), "--external-data", "never", "--expect", "2") == 0
    assert (
        not (tmp_path / "never.onnx.data").exists()
        and not load_onnx(never).graph.initializer[0].external_data
    )
    assert cli("unfuse", str(never), "-o", str(always), "--external-data", "always") == 0
    assert (tmp_path / "always.onnx.data").exists() and check_external_data_locations(always)
    # writing over the input's weights file is refused, and nothing is half-written
    assert cli("fuse", str(src), "-o", str(data)) == 2
    assert "overwrite input file" in capsys.readouterr().err
    assert data.read_bytes() == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["model.onnx", "model.onnx.data"]


N_WEIGHTS = 512


def _external_model(folder: Path, location: str) -> Path:
    """A small model whose weight sits in external data at ``location`` (written by hand)."""
    weight = onnx.numpy_helper.from_array(np.arange(N_WEIGHTS, dtype=np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [N_WEIGHTS])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [N_WEIGHTS])],
        [weight],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * N_WEIGHTS))):
        tensor.external_data.add(key=key, value=value)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("/etc/hostname", "absolute path"),
        ("../secret.bin", "climbs out"),
        ("sub/../../secret.bin", "climbs out"),
        ("missing.bin", "does not exist"),
        ("link.bin", "resolves outside"),
        ("short.bin", "truncated"),
    ],
)
def test_external_data_locations_are_confined_to_the_model_folder(tmp_path, location, message):
    folder = tmp_path / "models"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(N_WEIGHTS, np.float32).tobytes())
    os.symlink(secret, folder / "link.bin")
    (folder / "short.bin").write_bytes(b"\x00" * 8)
    path = _external_model(folder, location)
    with pytest.raises(InputError, match=message):
        load_onnx(path)


def test_external_data_beside_the_model_loads_and_save_is_atomic(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.arange(N_WEIGHTS, dtype=np.float32).tobytes())
    model = load_onnx(_external_model(folder, "w.bin"))
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(model.graph.initializer[0]), np.arange(N_WEIGHTS)
    )
    out = tmp_path / "copy.onnx"
    written = save_onnx(model, out, external_data="always")
    assert written == [tmp_path / "copy.onnx.data", out]
    assert model.graph.initializer[0].raw_data  # the caller's proto keeps its weights
    # 'never' on the same path removes the stale weights file that no longer belongs to it
    save_onnx(model, out, external_data="never")
    assert not (tmp_path / "copy.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.onnx", "m"]
    with pytest.raises(InputError, match="external-data"):
        save_onnx(model, out, external_data="sometimes")


def build_paper_net() -> nn.Module:
    """A module:callable for the CLI (same seeded weights as the exported network)."""
    return UserNet(FAMILIES["paper"][0]).eval()


def test_cli_validate_and_unfuse_read_external_data(exported, tmp_path, capsys):
    src, _ = exported["paper", "dynamo-default"]
    fused = tmp_path / "fused.onnx"
    assert cli("fuse", str(src), "-o", str(fused), "--expect", "2") == 0
    assert (tmp_path / "fused.onnx.data").exists()
    reference = "tests.test_real_world_onnx:build_paper_net"
    shape = "x".join(map(str, SHAPE))
    for target in (src, fused):
        code = cli("validate", str(target), "--reference", reference, "--input-shape", shape)
        assert code == 0, capsys.readouterr()


def test_rerunning_an_external_data_save_in_the_output_folder(tmp_path, monkeypatch):
    """onnx.save(save_as_external_data=True) looks for an existing data file relative to the current
    directory; a second run of the same command there must still replace both files."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.arange(N_WEIGHTS, dtype=np.float32).tobytes())
    model = load_onnx(_external_model(folder, "w.bin"))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert save_onnx(model, Path("out.onnx"), external_data="always") == [
            Path("out.onnx.data"),
            Path("out.onnx"),
        ]
    assert oct((tmp_path / "out.onnx.data").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    weights = onnx.numpy_helper.to_array(load_onnx(tmp_path / "out.onnx").graph.initializer[0])
    np.testing.assert_array_equal(weights, np.arange(N_WEIGHTS))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


USER_MODULE = """
import torch
from torch import nn


class SimAM(nn.Module):  # a user's own class that happens to share our class name
    def __init__(self, e_lambda=1e-4):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5)


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), SimAM(0.1), nn.Conv2d(4, 4, 3), SimAM())
"""


def test_cli_export_plugin_lists_users_blocks(tmp_path, capsys, monkeypatch):
    (tmp_path / "user_nets_simam.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out, rep = tmp_path / "p.onnx", tmp_path / "p.json"
    args = ["export", "user_nets_simam:build", "--input-shape", "1x3x16x16", "--mode", "plugin"]
    assert cli(*args, "-o", str(out), "--json", str(rep)) == 0
    text = capsys.readouterr().out
    assert "2 SimAM blocks in the graph" in text and "SimAM modules found" not in text
    blocks = json.loads(rep.read_text())["simam_blocks"]
    assert [(b["module"], b["class"], b["e_lambda"], b["unbiased"]) for b in blocks] == [
        ("1", "SimAM", pytest.approx(0.1), 1),
        ("3", "SimAM", pytest.approx(1e-4), 1),
    ]
    assert sum(contract.is_simam_node(n) for n in load_onnx(out).graph.node) == 2
