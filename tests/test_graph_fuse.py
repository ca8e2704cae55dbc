"""fuse: SimAM subgraphs from every exporter/opset/simplifier become single SimAM nodes; near misses don't.

Every fused model and its unfused round trip must compute what the original computes in ONNX Runtime.
"""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from simam_deploy.errors import InputError
from simam_deploy.graph import contract
from simam_deploy.graph.function import attach_simam_function
from simam_deploy.graph.fuse import fuse_simam
from simam_deploy.graph.unfuse import unfuse_simam
from simam_deploy.nn import simam_reference_numpy
from simam_deploy.precision import convert_precision
from tests import onnx_corpus as corpus
from tests.cli_runner import exit_code as cli
from tests.onnx_corpus import simam_node_model

HAND = {e.name: e for e in corpus.hand_entries()}
TORCH_NAMES = [
    f"{exp}-op{opset}-{'dyn' if dyn else 'static'}{suffix}"
    for exp, opset, dyn in corpus.TORCH_SOURCES
    for suffix in ([""] + (["-onnxslim"] if (exp, opset) in (("torchscript", 13), ("dynamo", 18)) else []))
]


@pytest.fixture(scope="module")
def torch_corpus() -> dict[str, corpus.Entry]:
    return {e.name: e for e in corpus.torch_entries()}


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    runner = OnnxRuntimeRunner(model)
    return runner.infer({runner.input_names[0]: x})[runner.output_names[0]]


def simam_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if contract.is_simam_node(n)]


def check_entry(entry: corpus.Entry) -> None:
    fused, report = fuse_simam(entry.model)
    got = [(f.e_lambda, bool(f.unbiased)) for f in report.fused]
    assert len(got) == len(entry.expect), (entry.name, got, report.rejected)
    for (lam, unbiased), (want_lam, want_unbiased) in zip(got, entry.expect, strict=True):
        assert unbiased == want_unbiased
        assert lam == pytest.approx(want_lam, rel=1e-3 if entry.float16 else 1e-6)
    if entry.reject:
        assert any(entry.reject in r.reason for r in report.rejected), report.rejected
    assert len(simam_nodes(fused)) == len(entry.expect)
    if entry.expect:
        onnx.checker.check_model(fused, full_check=True)
        names = {n.op_type for n in fused.graph.node}
        assert "Sigmoid" not in names or len(entry.expect) < 2  # every SimAM sigmoid went away
    else:
        assert fused is entry.model  # nothing fused: the input comes back untouched
    unfused = unfuse_simam(fused)
    assert not simam_nodes(unfused)
    rng = np.random.default_rng(1)
    tol = 2e-3 if entry.float16 else 1e-5
    for shape in entry.input_shapes:
        x = (rng.standard_normal(shape) * 2 + 0.3).astype(np.float16 if entry.float16 else np.float32)
        want = run(entry.model, x).astype(np.float32)
        np.testing.assert_allclose(
            run(fused, x).astype(np.float32), want, rtol=tol, atol=tol, err_msg=entry.name
        )
        got = run(unfused, x).astype(np.float32)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=entry.name)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_written_variants(name):
    check_entry(HAND[name])


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_torch_exported_variants(torch_corpus, name):
    check_entry(torch_corpus[name])


@pytest.fixture(scope="module")
def user_corpus() -> dict[str, corpus.Entry]:
    return {e.name: e for e in corpus.user_entries()}


@pytest.mark.parametrize("name", corpus.user_entry_names())
def test_users_simam_classes_from_both_exporters(user_corpus, name):
    check_entry(user_corpus[name])


def test_fused_node_follows_contract_and_keeps_shapes():
    fused, report = fuse_simam(HAND["hand-paper-op18"].model)
    (node,) = simam_nodes(fused)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b""
    assert attrs["unbiased"] == 1 and attrs["e_lambda"] == pytest.approx(1e-4)
    assert {(o.domain, o.version) for o in fused.opset_import} >= {("com.simam_deploy", 1), ("", 18)}
    types = contract.value_types(fused)
    out_type = types[node.output[0]].tensor_type
    assert [d.dim_value for d in out_type.shape.dim] == [1, 4, 6, 5]
    assert report.fused[0].replaced_nodes and report.fused[0].max_abs_error < 1e-5


def test_fusing_twice_finds_only_the_existing_nodes():
    fused, _ = fuse_simam(HAND["hand-paper-op13"].model)
    again, report = fuse_simam(fused)
    assert again is fused and not report.fused and report.existing_simam_nodes == 1


def test_numeric_check_rejects_a_match_beyond_tolerance():
    _, report = fuse_simam(HAND["hand-paper-op18"].model, atol=1e-12)
    assert not report.fused
    assert "numeric check failed" in report.rejected[0].reason


def test_unknown_opset_is_refused():
    model = HAND["hand-paper-op13"].model
    old = onnx.ModelProto.FromString(model.SerializeToString())
    old.opset_import[0].version = 9
    with pytest.raises(InputError, match="opset 9"):
        fuse_simam(old)


def test_official_resnet20_fuses_into_nine_nodes_both_exporters(
    official_checkpoint, official_r20_onnx, tmp_path
):
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20", official_checkpoint)
    ts_path = tmp_path / "r20-ts.onnx"
    export_onnx(model, ts_path, opset=17, input_shape=(1, 3, 32, 32), dynamic="all", exporter="torchscript")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    for path in (official_r20_onnx, ts_path):
        decomposed = onnx.load(path)
        fused, report = fuse_simam(decomposed)
        assert len(report.fused) == 9 and not report.rejected
        assert all(f.e_lambda == pytest.approx(1e-4) and f.unbiased == 1 for f in report.fused)
        assert len(simam_nodes(fused)) == 9
        names = sorted(f.name for f in report.fused)
        assert "/layer1/0/conv2/simam/SimAM" in names
        np.testing.assert_allclose(run(fused, x), run(decomposed, x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(run(unfuse_simam(fused), x), run(decomposed, x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_resnet50_fuse_time(tmp_path):
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    model, _ = build_model("resnet50")
    path = tmp_path / "r50.onnx"
    export_onnx(model, path, opset=17, input_shape=(1, 3, 64, 64), dynamic="all", exporter="torchscript")
    start = time.perf_counter()
    _, report = fuse_simam(onnx.load(path))
    seconds = time.perf_counter() - start
    assert len(report.fused) == 16 and not report.rejected
    assert seconds < 30, f"fusing resnet50 took {seconds:.1f}s"


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_fuse_writes_model_and_json(tmp_path, capsys):
    src, out, rep = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "report.json"
    onnx.save(HAND["hand-commuted-op17"].model, src)
    assert cli("fuse", str(src), "-o", str(out), "--json", str(rep)) == 0
    assert len(simam_nodes(onnx.load(out))) == 1
    data = json.loads(rep.read_text())
    assert data["fused"][0]["e_lambda"] == pytest.approx(0.1) and data["fused"][0]["unbiased"] == 1
    assert "fused 1 SimAM" in capsys.readouterr().out


def test_cli_fuse_without_simam_writes_the_model_unchanged_and_expect_fails(tmp_path, capsys):
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(HAND["hand-offset-0.4-op18"].model, src)
    out.write_bytes(b"stale output of an earlier run")
    assert cli("fuse", str(src), "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert "no SimAM subgraph found" in text and "unchanged" in text and "offset is 0.4" in text
    written = onnx.load(out)  # the stale file is gone: the next pipeline step reads this model
    assert [n.op_type for n in written.graph.node] == [
        n.op_type for n in HAND["hand-offset-0.4-op18"].model.graph.node
    ]
    assert cli("fuse", str(src), "-o", str(out), "--expect", "1") == 1
    assert "fused 0 SimAM subgraph(s), expected 1" in capsys.readouterr().err
    assert cli("fuse", str(src), "-o", str(out), "--expect", "0") == 0


def test_cli_fuse_expect_and_json_schema(tmp_path, capsys):
    src, out, rep = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    onnx.save(HAND["hand-paper-op18"].model, src)
    assert cli("fuse", str(src), "-o", str(out), "--expect", "2", "--json", str(rep)) == 1
    assert out.exists()  # written all the same; the count is what failed
    data = json.loads(rep.read_text())
    assert data["schema"] == "simam-deploy/fuse/v1" and data["expect"] == 2 and len(data["fused"]) == 1
    assert data["local_function"] is True
    assert cli("fuse", str(src), "-o", str(out), "--expect", "1", "--no-function") == 0
    assert not onnx.load(out).functions


def test_cli_fuse_expect_on_an_already_fused_file_counts_its_simam_nodes(tmp_path, capsys):
    """Re-running a pipeline's `fuse --expect N` on its own output holds (it used to exit 1)."""
    src, fused, again = tmp_path / "in.onnx", tmp_path / "fused.onnx", tmp_path / "again.onnx"
    onnx.save(corpus.torch_export("torchscript", 17, False), src)
    assert cli("fuse", str(src), "-o", str(fused), "--expect", "2") == 0
    capsys.readouterr()
    assert cli("fuse", str(fused), "-o", str(again), "--expect", "2") == 0
    text = capsys.readouterr().out
    assert "2 SimAM node(s) were already in the file (--expect counts them)" in text
    assert "no new SimAM subgraph" in text
    assert cli("fuse", str(fused), "-o", str(again), "--expect", "3") == 1
    assert "2 SimAM node(s) in the output: 0 fused now, 2 already, expected 3" in capsys.readouterr().err


def test_cli_fuse_dry_run_writes_nothing(tmp_path, capsys):
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(HAND["hand-paper-op21"].model, src)
    assert cli("fuse", str(src), "-o", str(out), "--dry-run") == 0
    assert not out.exists() and "would be fused" in capsys.readouterr().out


def test_cli_fuse_bad_inputs(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(HAND["hand-paper-op21"].model, src)
    assert cli("fuse", str(src), "-o", str(src)) == 2
    assert "same file as input" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \x00\xff\x13")
    assert cli("fuse", str(junk), "-o", str(tmp_path / "o.onnx")) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
    assert cli("fuse", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o.onnx")) == 2
    ext = tmp_path / "ext.onnx"
    big = HAND["hand-se-gap-gate-op18"].model
    onnx.save(big, ext, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    (tmp_path / "ext.onnx.data").unlink()
    assert cli("fuse", str(ext), "-o", str(tmp_path / "o.onnx")) == 2
    assert "does not exist next to the model" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_local_function_needs_opset_12_and_plugin_files_get_it_from_fuse(tmp_path):
    fused, report = fuse_simam(HAND["hand-paper-op11"].model)
    assert len(report.fused) == 1 and not fused.functions and not report.function
    assert "opset >= 12" in report.notes[0]
    fused, report = fuse_simam(HAND["hand-paper-op12"].model)
    assert report.function and [f.name for f in fused.functions] == ["SimAM"]
    # a plugin-mode file without the function: fuse has nothing to fuse but adds the function
    src, out = tmp_path / "plugin.onnx", tmp_path / "portable.onnx"
    onnx.save(simam_node_model(17, 0.1, 0), src)
    assert cli("fuse", str(src), "-o", str(out), "--expect", "1") == 0  # --expect counts it
    portable = onnx.load(out)
    assert [(f.domain, f.name) for f in portable.functions] == [(contract.DOMAIN, contract.OP_TYPE)]
    x = np.random.default_rng(2).standard_normal((2, 4, 6, 5)).astype(np.float32)
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    want = simam_reference_numpy(np.maximum(x, 0), 0.1, False)
    np.testing.assert_allclose(session.run(None, {"X": x})[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("opset", [14, 17])
def test_a_converted_fused_file_runs_its_local_function_in_plain_onnx_runtime(opset, precision):
    """The function's body follows the precision (it kept float32 constants: ONNX Runtime refused
    the fp16 file with 'var: B has inconsistent type'; a bf16 conversion dropped the function)."""
    model = simam_node_model(opset, 0.1, 0, dims=("n", 4, "h", "w"))
    model.graph.node[1].input[0] = "X"  # SimAM alone: ONNX Runtime's CPU provider has no bf16 Relu
    del model.graph.node[0]
    assert attach_simam_function(model) is None
    out, _ = convert_precision(model, precision)
    assert [f.name for f in out.functions] == [contract.OP_TYPE]
    session = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(4).standard_normal((2, 4, 7, 5)).astype(np.float32) * 3
    tol = 5e-3 if precision == "fp16" else 3e-2
    want = simam_reference_numpy(x, 0.1, False)
    np.testing.assert_allclose(session.run(None, {"X": x})[0], want, rtol=tol, atol=tol)


def test_fuse_replaces_a_simam_function_the_file_brought(tmp_path):
    """A file's own SimAM function (here: Identity) would run in place of SimAM; fuse writes ours."""
    model = simam_node_model(17, 1e-4, 1)
    bogus = onnx.helper.make_function(
        contract.DOMAIN, contract.OP_TYPE, ["X"], ["Y"], [onnx.helper.make_node("Identity", ["X"], ["Y"])],
        opset_imports=[onnx.helper.make_opsetid("", 17)], attributes=["e_lambda", "unbiased"],
    )  # fmt: skip
    model.functions.append(bogus)
    src, out = tmp_path / "bogus.onnx", tmp_path / "fixed.onnx"
    onnx.save(model, src)
    assert cli("fuse", str(src), "-o", str(out)) == 0
    x = np.random.default_rng(7).standard_normal((2, 4, 6, 5)).astype(np.float32)
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    want = simam_reference_numpy(np.maximum(x, 0), 1e-4, True)
    np.testing.assert_allclose(session.run(None, {"X": x})[0], want, rtol=1e-5, atol=1e-6)
