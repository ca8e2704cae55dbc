"""Every public SimAM form (tests/public_simam_forms.py), exported the way its repository exports it,
goes through the whole tool: fuse (every block found, attributes read right, numerically checked),
validate against PyTorch, export --mode plugin, convert --precision fp16 (the file then loads in plain
ONNX Runtime) and a real TensorRT for RTX build. Near misses from public code stay unfused and are
explained in "rejected".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from simam_deploy.errors import InputError
from simam_deploy.export import MAX_OPSET, MIN_OPSET, export_onnx
from simam_deploy.graph import contract
from simam_deploy.graph.pipeline import fuse_file
from simam_deploy.onnx_utils import load_onnx, opset_version
from simam_deploy.precision import convert_file
from simam_deploy.validate import validate
from tests import public_simam_forms as forms
from tests.cli_runner import run_cli

HAVE_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
BY_NAME = {f.name: f for f in forms.FORMS}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, Path, torch.nn.Module]]:
    """name -> (the repository-style export, its fused copy, the network); made once per module."""
    root = tmp_path_factory.mktemp("public-simam")
    out = {}
    for form in forms.FORMS:
        folder = root / form.name
        folder.mkdir()
        src = folder / "model.onnx"
        net = forms.export_form(form, src)
        fused = folder / "fused.onnx"
        fuse_file(src, fused, expect=len(form.expect))
        out[form.name] = (src, fused, net)
    return out


def session(path: Path) -> ort.InferenceSession:
    """ONNX Runtime with nothing of ours registered, so SimAM nodes run the file's local function;
    files below opset 12 cannot carry one (fuse says so) and get our op library instead."""
    model = onnx.load(str(path), load_external_data=False)
    if model.functions or not any(contract.is_simam_node(n) for n in model.graph.node):
        options = ort.SessionOptions()
    else:
        from simam_deploy.backends.onnxruntime import library as simam_ort

        assert opset_version(model) < 12
        options = simam_ort.session_options()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sample(form: forms.Form, seed: int = 0) -> np.ndarray:
    shape = list(form.export.shape)
    if form.export.dynamic:  # not the export's own size: the file must hold for others too
        for axis in form.export.dynamic:
            shape[axis] += 1 if axis == 0 else 3
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)


def torch_out(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_the_corpus_has_eight_distinct_public_forms():
    public = [f for f in forms.FORMS if "issue 23" not in f.source]

    def signature(form: forms.Form) -> tuple:  # the attention class and how the file is exported
        net = form.build()
        attention = getattr(net, "att1", net)
        return type(attention).__name__, form.export.exporter, form.export.opset, form.export.onnxslim

    assert len(public) >= 8
    assert len({signature(f) for f in public}) == len(public)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_fuse_finds_every_block_and_the_fused_file_runs_without_our_op(corpus, name):
    form = BY_NAME[name]
    src, fused, net = corpus[name]
    report, _ = fuse_file(src, None, dry_run=True)
    got = [(f.e_lambda, f.unbiased) for f in report.fused]
    assert [u for _, u in got] == [u for _, u in form.expect], report.rejected
    assert [lam for lam, _ in got] == pytest.approx([lam for lam, _ in form.expect], rel=1e-5)
    assert report.rejected == []
    model = load_onnx(fused)
    assert sum(contract.is_simam_node(n) for n in model.graph.node) == len(form.expect)
    x = sample(form)
    got_y = session(fused).run(None, {form.export.input_name: x})[0]
    np.testing.assert_allclose(got_y, torch_out(net, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_validate_the_fused_file_against_pytorch(corpus, name):
    form = BY_NAME[name]
    _, fused, _ = corpus[name]
    report = validate(
        fused, f"tests.public_simam_forms:build_{name.replace('-', '_')}", seeds=(0, 1),
        input_shape=tuple(form.export.shape),
    )  # fmt: skip
    assert report.passed, report.worst()


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_export_plugin_mode_writes_one_node_per_block(corpus, name, tmp_path):
    form = BY_NAME[name]
    _, _, net = corpus[name]
    out = tmp_path / "plugin.onnx"
    opset = min(max(form.export.opset, MIN_OPSET), MAX_OPSET)  # the form's opset where we export it
    exporter = "dynamo" if opset >= 18 else "torchscript"
    report = export_onnx(
        net, out, mode="plugin", input_shape=form.export.shape, opset=opset, exporter=exporter,
        input_name=form.export.input_name,
    )  # fmt: skip
    assert report.simam_nodes == len(form.expect)
    assert [b["unbiased"] for b in report.simam_blocks] == [u for _, u in form.expect]
    x = np.random.default_rng(1).standard_normal(form.export.shape).astype(np.float32)
    got = session(out).run(None, {form.export.input_name: x})[0]
    np.testing.assert_allclose(got, torch_out(net, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_fp16_conversion_of_the_fused_file_loads_in_plain_onnx_runtime(corpus, name, tmp_path):
    form = BY_NAME[name]
    _, fused, net = corpus[name]
    out = tmp_path / "fp16.onnx"
    convert_file(fused, out, "fp16")
    x = sample(form, seed=2)
    got = session(out).run(None, {form.export.input_name: x})[0]
    want = torch_out(net, x)
    assert got.dtype == np.float32  # graph inputs and outputs stay float32 by default
    np.testing.assert_allclose(got, want, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", sorted(n for n, f in BY_NAME.items() if len(f.export.shape) == 4))
def test_fp16_conversion_of_a_decomposed_file_keeps_simam_statistics_float32(corpus, name, tmp_path):
    """The mean, the sum of squares and the variance stay float32 whatever way they are written
    (a two-step sum used to leave its second half, an einsum the whole block, in float16)."""
    form = BY_NAME[name]
    src, _, net = corpus[name]
    out = tmp_path / "fp16.onnx"
    report = convert_file(src, out, "fp16")
    assert report.simam_subgraphs == len(form.expect)
    model = onnx.shape_inference.infer_shapes(load_onnx(out))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    # the image networks reduce nowhere but in their SimAM blocks
    reductions = [n for n in model.graph.node if n.op_type.startswith("Reduce") and n.op_type != "ReduceProd"]
    reductions += [n for n in model.graph.node if n.op_type == "Einsum"]
    assert reductions
    assert {n.name: types.get(n.output[0]) for n in reductions} == {
        n.name: onnx.TensorProto.FLOAT for n in reductions
    }
    x = sample(form, seed=3)
    got = session(out).run(None, {form.export.input_name: x})[0]
    np.testing.assert_allclose(got, torch_out(net, x), rtol=5e-2, atol=5e-2)


@pytest.mark.skipif(not HAVE_RTX, reason="TensorRT for RTX wheels not installed (make install)")
@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_rtx_builds_the_fused_file_with_every_simam_as_a_plugin_layer(corpus, name, tmp_path):
    from simam_deploy.backends import tensorrt as simam_trt

    form = BY_NAME[name]
    _, fused, _ = corpus[name]
    shape = form.export.shape
    big = [d + (1 if axis == 0 else 4) if axis in form.export.dynamic else d for axis, d in enumerate(shape)]
    spec = f"{form.export.input_name}={'x'.join(map(str, shape))}:{'x'.join(map(str, shape))}:" + "x".join(
        map(str, big)
    )
    try:
        report = simam_trt.build_engine(fused, tmp_path / "m.engine", shapes=[spec], runtime="tensorrt-rtx")
    except InputError as exc:
        if "plugin" in exc.message.lower() and "not built" in exc.message.lower():
            pytest.skip(f"SimAM TensorRT plugin not built for RTX: {exc.message}")
        raise
    assert report.simam_nodes == report.simam_plugin_layers == len(form.expect)
    assert report.engine_bytes == (tmp_path / "m.engine").stat().st_size > 0


@pytest.mark.parametrize("form", forms.NEAR_MISSES, ids=lambda f: f.name)
def test_public_near_misses_stay_unfused_and_are_explained(form, tmp_path):
    src = tmp_path / "model.onnx"
    forms.export_form(form, src)
    report, _ = fuse_file(src, None, dry_run=True)
    assert report.fused == []
    assert len(report.rejected) == 2  # one line per block, none silently skipped
    assert all(form.reject in r.reason for r in report.rejected), report.rejected


def test_cli_a_speaker_model_with_filterbank_input_exports_and_validates(tmp_path, capsys):
    """The issue's case: input [B, T, 80], SimAM on [B, C, F, T] inside, through the CLI."""
    ref = "tests.public_simam_forms:build_speaker_simam_resnet"
    onnx_file = tmp_path / "speaker.onnx"
    export = ["export", ref, "--input-shape", "1x20x16", "-o", str(onnx_file)]
    code, _, err = run_cli([*export, "--mode", "plugin", "--opset", "17"], capsys)
    assert code == 0, err
    assert sum(contract.is_simam_node(n) for n in load_onnx(onnx_file).graph.node) == 2
    validate_cmd = ["validate", str(onnx_file), "--reference", ref, "--input-shape", "3x20x16"]
    code, _, err = run_cli(validate_cmd, capsys)
    assert code == 0, err
