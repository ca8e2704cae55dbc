"""The OpenVINO backend, for real: torch's exports (decomposed) and our fuse (fused) compiled by
OpenVINO's CPU plugin, SimAM nodes rebuilt by the ONNX frontend extension, parity against PyTorch, the
registry's --backend on validate and bench, and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from simam_deploy.backends import get_backend, load_runner
from simam_deploy.errors import InputError
from simam_deploy.nn import simam_reference
from tests.cli_runner import run_cli

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason='OpenVINO not installed (pip install "simam-deploy[openvino]")',
)
REFERENCE = "cifar-resnet20"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from simam_deploy.export import export_onnx
    from simam_deploy.graph.pipeline import fuse_file
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("openvino")
    model, _ = build_model(REFERENCE)
    decomposed = folder / "r20.onnx"
    export_onnx(model, decomposed, input_shape=(1, 3, 32, 32), dynamic="batch")
    fused = folder / "r20-fused.onnx"
    fuse_file(decomposed, fused, expect=9)
    return {"decomposed": decomposed, "fused": fused}


def _one_simam(path: Path, e_lambda: float, unbiased: int, hw: tuple[int, int] | None = (5, 7)) -> Path:
    """A file that is one SimAM node (dynamic H and W when ``hw`` is None), no local function."""
    from simam_deploy.graph import contract

    dims = ["N", 4, *(hw or ("H", "W"))]
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, dims)
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)
    node = contract.make_simam_node("x", "y", contract.SimamAttributes(e_lambda, bool(unbiased)), "simam")
    graph = onnx.helper.make_graph([node], "one", [x], [y])
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17), contract.simam_opset_import()]
    )
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("e_lambda, unbiased", [(1e-4, 1), (0.1, 0), (3.0, 1)])
@pytest.mark.parametrize("hw", [(5, 7), None])
def test_simam_node_matches_the_float64_reference(tmp_path, e_lambda, unbiased, hw):
    path = _one_simam(tmp_path / "one.onnx", e_lambda, unbiased, hw)
    runner = load_runner(path, backend="openvino")
    for shape in [(2, 4, 5, 7), *([(1, 4, 3, 9), (3, 4, 16, 2)] if hw is None else [])]:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32) * 3 + 1
        got = runner.infer({"x": x})["y"]
        want = simam_reference(torch.from_numpy(x).double(), e_lambda=e_lambda, unbiased=bool(unbiased))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_fused_file_needs_the_extension_and_runs_with_it(files):
    import openvino as ov

    # OpenVINO alone ignores the file's model-local function and has no SimAM: the extension is what runs
    with pytest.raises(RuntimeError, match="SimAM"):
        ov.Core().read_model(str(files["fused"]))
    runner = load_runner(files["fused"], backend="openvino")
    assert runner.input_spec() == [("input", (None, 3, 32, 32), np.dtype(np.float32))]


@pytest.mark.parametrize("kind", ["decomposed", "fused"])
def test_validate_on_openvino_passes_for_both_forms(files, kind):
    from simam_deploy.validate import validate

    report = validate(files[kind], REFERENCE, backend="openvino", seeds=(0, 1)).to_dict()
    assert report["passed"] and report["precision"] == "fp32" and report["target_backend"] == "openvino"
    worst = max(o["max_abs"] for run in report["runs"] for o in run["outputs"].values())
    assert worst < 1e-4


def test_validate_per_layer_on_openvino_names_the_corrupted_block(files, tmp_path):
    from simam_deploy.validate import validate
    from tests.test_per_layer import TARGET_BLOCK, TARGET_FOLDER, change_lambda

    clean = validate(files["fused"], REFERENCE, backend="openvino", per_layer=True, seeds=(0,)).to_dict()
    assert clean["passed"] and clean["first_divergence"] is None and len(clean["layers"]) == 9
    bad = tmp_path / "bad.onnx"
    change_lambda(files["decomposed"], bad, TARGET_FOLDER)
    broken = validate(bad, REFERENCE, backend="openvino", per_layer=True, seeds=(0,)).to_dict()
    assert not broken["passed"] and broken["first_divergence"] == TARGET_BLOCK


def test_parity_forces_f32_inference_precision(files):
    runner = load_runner(files["decomposed"], backend="openvino")
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"


def test_cli_validate_and_bench_take_the_backend(files, capsys):
    code, out, err = run_cli(
        ["validate", str(files["fused"]), "--reference", REFERENCE, "--backend", "openvino", "--json", "-"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["passed"]
    code, out, err = run_cli(
        ["bench", str(files["decomposed"]), "--backend", "onnxruntime", "--backend", "openvino",
         "--threads", "1", "--warmup", "1", "--iters", "3", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    rows = [r["backend"] for r in json.loads(out)["results"]]
    assert rows == [
        "onnxruntime decomposed",
        "onnxruntime fused",
        "openvino decomposed",
        "openvino fused",
    ]


def test_registry_states_what_openvino_can_do():
    backend = get_backend("openvino")
    assert backend.suffixes == (".onnx",) and backend.capabilities.devices == ("cpu",)
    assert backend.library is None and backend.probe is not None
    with pytest.raises(InputError, match="no native library"):
        backend.find_library()


def test_bad_input_is_an_input_error(files, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(InputError):
        load_runner(broken, backend="openvino")
    with pytest.raises(InputError, match="no option providers"):
        load_runner(files["fused"], backend="openvino", providers=["CPUExecutionProvider"])
    with pytest.raises(InputError, match="precision"):
        load_runner(files["fused"], backend="openvino", precision="int3")
    bad_lambda = _one_simam(tmp_path / "neg.onnx", 1e-4, 1)
    proto = onnx.load(bad_lambda)
    proto.graph.node[0].attribute[0].f = -1.0  # e_lambda
    onnx.save(proto, bad_lambda)
    with pytest.raises(InputError, match="e_lambda must be a finite number > 0"):
        load_runner(bad_lambda, backend="openvino")
    code, _, err = run_cli(
        ["validate", str(tmp_path / "x.engine"), "--reference", REFERENCE, "--backend", "openvino"], capsys
    )
    assert code == 2 and "does not exist" in err
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"\0" * 16)
    code, _, err = run_cli(
        ["validate", str(engine), "--reference", REFERENCE, "--backend", "openvino"], capsys
    )
    assert code == 2 and "cannot run x.engine" in err
