"""Triton model repositories, and serving them for real with the tritonserver of nvidia-pytriton.

The repository tests need only onnx. The serving tests start the real server (Triton 2.51, python
backend only, CPU) that `make triton-server` unpacks into .venv/tritonserver, on 127.0.0.1 only,
with ephemeral ports; they query it with tritonclient over HTTP and gRPC, run a bounded load test,
and check that the server stops cleanly (ports closed, no process left).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from simam_deploy.errors import InputError
from simam_deploy.triton import write_repository
from tests.cli_runner import run_cli

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def r20_model():
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20", None)
    return model.eval()


@pytest.fixture(scope="module")
def r20_decomposed(tmp_path_factory, r20_model) -> Path:
    from simam_deploy.export import export_onnx

    out = tmp_path_factory.mktemp("triton") / "r20.onnx"
    export_onnx(r20_model, out, opset=18, input_shape=(1, 3, 32, 32), dynamic="batch", exporter="dynamo")
    return out


def _parse_config(path: Path):
    """Parse config.pbtxt with Triton's own ModelConfig protobuf: a wrong field name fails here."""
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


# ---- repositories --------------------------------------------------------------------------------


def test_onnx_repository_layout_and_config(tmp_path, r20_decomposed):
    report = write_repository(
        r20_decomposed, tmp_path / "repo", name="r20", max_batch=16, preferred_batch_sizes=[4, 8]
    )
    model_dir = tmp_path / "repo" / "r20"
    assert sorted(report.files) == ["1/model.onnx", "README.md", "config.pbtxt"]
    assert (model_dir / "1" / "model.onnx").read_bytes() == r20_decomposed.read_bytes()
    config = _parse_config(model_dir / "config.pbtxt")
    assert config.backend == "onnxruntime" and config.max_batch_size == 16
    assert [(i.name, list(i.dims)) for i in config.input] == [("input", [3, 32, 32])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("output", [100])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert not config.model_operations.op_library_filename  # decomposed: no library needed
    assert "tritonserver --model-repository=" in (model_dir / "README.md").read_text()


def test_repository_files_are_readable_by_others(tmp_path, r20_decomposed):
    old = os.umask(0o022)
    try:
        write_repository(r20_decomposed, tmp_path / "repo", name="r20")
    finally:
        os.umask(old)
    for path in (tmp_path / "repo" / "r20").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_fixed_batch_gives_max_batch_zero_and_no_dynamic_batching(tmp_path, r20_model):
    from simam_deploy.export import export_onnx

    fixed = tmp_path / "fixed.onnx"
    export_onnx(r20_model, fixed, opset=18, input_shape=(2, 3, 32, 32), dynamic="none", exporter="dynamo")
    report = write_repository(fixed, tmp_path / "repo")
    assert report.max_batch_size == 0 and not report.dynamic_batching
    config = _parse_config(tmp_path / "repo" / "fixed" / "config.pbtxt")
    assert list(config.input[0].dims) == [2, 3, 32, 32] and not config.HasField("dynamic_batching")
    with pytest.raises(InputError, match="dynamic batch axis"):
        write_repository(fixed, tmp_path / "repo2", max_batch=8)


def test_fused_onnx_ships_the_op_library(tmp_path, r20_fused):
    report = write_repository(r20_fused, tmp_path / "repo", name="f", server_repository="/models")
    config = _parse_config(tmp_path / "repo" / "f" / "config.pbtxt")
    assert list(config.model_operations.op_library_filename) == ["/models/f/lib/libsimam_ort_ops.so"]
    shipped = tmp_path / "repo" / "f" / "lib" / "libsimam_ort_ops.so"
    from simam_deploy.backends.onnxruntime.library import library_path

    assert shipped.read_bytes() == library_path().read_bytes()
    assert report.simam_nodes == 9


def test_python_backend_repository(tmp_path, r20_decomposed):
    report = write_repository(r20_decomposed, tmp_path / "repo", name="py", backend="python", instances=2)
    model_dir = tmp_path / "repo" / "py"
    assert (model_dir / "1" / "model.py").is_file() and (model_dir / "1" / "model.onnx").is_file()
    config = _parse_config(model_dir / "config.pbtxt")
    assert config.backend == "python" and config.instance_group[0].count == 2
    assert config.parameters["onnx_file"].string_value == "model.onnx"
    assert report.backend == "python"


def test_external_data_is_copied_beside_the_model(tmp_path, r20_decomposed):
    model = onnx.load(str(r20_decomposed))
    source = tmp_path / "ext" / "r20.onnx"
    source.parent.mkdir()
    onnx.save(model, str(source), save_as_external_data=True, location="r20.onnx.data", size_threshold=0)
    report = write_repository(source, tmp_path / "repo", name="ext")
    assert "1/r20.onnx.data" in report.files
    copied = onnx.load(str(tmp_path / "repo" / "ext" / "1" / "model.onnx"))  # loads the data beside it
    assert len(copied.graph.initializer) == len(model.graph.initializer)


def test_external_data_outside_the_folder_is_refused_and_nothing_written(tmp_path, r20_decomposed):
    model = onnx.load(str(r20_decomposed))
    onnx.save(
        model, str(tmp_path / "r20.onnx"), save_as_external_data=True, location="w.data", size_threshold=0
    )
    hostile = onnx.load(str(tmp_path / "r20.onnx"), load_external_data=False)
    for init in hostile.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    inner = tmp_path / "inner"
    inner.mkdir()
    onnx.save(hostile, str(inner / "hostile.onnx"))
    with pytest.raises(InputError, match="out of the model's folder"):
        write_repository(inner / "hostile.onnx", tmp_path / "repo")
    # refused before the repository folder is made: no model folder, no staging folder
    assert not (tmp_path / "repo").exists() or list((tmp_path / "repo").iterdir()) == []


def test_engine_needs_its_onnx_and_bad_options_exit_2(tmp_path, r20_decomposed, capsys):
    engine = tmp_path / "r20.engine"
    engine.write_bytes(b"not read by the writer")
    code, _, err = run_cli(["triton", str(engine), "-o", str(tmp_path / "repo")], capsys)
    assert code == 2 and "--onnx" in err
    code, _, err = run_cli(
        ["triton", str(r20_decomposed), "-o", str(tmp_path / "r"), "--instances", "0"], capsys
    )
    assert code == 2 and "instances" in err
    code, _, err = run_cli(
        ["triton", str(r20_decomposed), "-o", str(tmp_path / "r"), "--name", "a b"], capsys
    )
    assert code == 2 and "not usable" in err
    code, _, err = run_cli(
        ["triton", str(r20_decomposed), "-o", str(tmp_path / "r"), "--backend", "tensorrt"], capsys
    )
    assert code == 2 and "does not fit" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_existing_model_needs_force_and_is_replaced_whole(tmp_path, r20_decomposed, capsys):
    repo = tmp_path / "repo"
    assert run_cli(["triton", str(r20_decomposed), "-o", str(repo), "--name", "m"], capsys)[0] == 0
    stale = repo / "m" / "stale.txt"
    stale.write_text("old")
    code, _, err = run_cli(["triton", str(r20_decomposed), "-o", str(repo), "--name", "m"], capsys)
    assert code == 2 and "--force" in err and stale.exists()
    code, out, _ = run_cli(
        ["triton", str(r20_decomposed), "-o", str(repo), "--name", "m", "--force", "--json", "-"], capsys
    )
    assert code == 0 and not stale.exists()
    import json

    report = json.loads(out)
    assert report["schema"] == "simam-deploy/triton/v1" and report["model"] == "m"


# ---- serving for real ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_dist():
    from simam_deploy.errors import MissingDependencyError
    from simam_deploy.triton.server import find_server

    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install '.[triton]')")
    try:
        return find_server()
    except MissingDependencyError as exc:
        if IN_CI:  # make test installs it: missing here is a broken set-up, not a reason to skip
            pytest.fail(f"CI must serve for real, but: {exc}")
        pytest.skip(f"{exc} (run `make triton-server`)")


@pytest.fixture(scope="module")
def r20_fused(tmp_path_factory, r20_decomposed) -> Path:
    """cifar-resnet20 with its 9 SimAM subgraphs fused into SimAM nodes (run by our op library)."""
    from simam_deploy.backends.onnxruntime.library import library_path
    from simam_deploy.errors import MissingDependencyError
    from simam_deploy.graph.pipeline import fuse_file

    try:
        library_path()
    except MissingDependencyError as exc:  # built only where ONNX Runtime's C API headers are
        if IN_CI:
            pytest.fail(f"CI builds the op library from ../shared's headers, but: {exc}")
        pytest.skip(f"the ONNX Runtime op library is not built: {exc.message}")

    out = tmp_path_factory.mktemp("fused") / "r20-fused.onnx"
    report, _ = fuse_file(r20_decomposed, out)
    assert len(report.fused) == 9
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, server_dist, r20_fused, r20_model):
    """One server, one python-backend model of the fused network (dynamic batching on)."""
    from simam_deploy.triton.server import LocalTritonServer

    root = tmp_path_factory.mktemp("serve")
    report = write_repository(r20_fused, root / "repo", name="r20", backend="python", max_batch=16)
    assert report.simam_nodes == 9 and report.libraries == ["lib/libsimam_ort_ops.so"]
    server = LocalTritonServer(root / "repo", server=server_dist, log_path=root / "server.log")
    server.start()
    try:
        assert server.ready("r20"), server.log_text()[-2000:]
        yield server
    finally:
        server.stop()


def _torch_reference(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_outputs_match_pytorch(served, r20_model, protocol):
    from simam_deploy.triton.client import TritonEndpoint

    url = served.http_url if protocol == "http" else served.grpc_url
    endpoint = TritonEndpoint(url, "r20", protocol)
    x = np.random.default_rng(7).standard_normal((5, 3, 32, 32)).astype(np.float32)
    got = endpoint.infer({"input": x})["output"]
    ref = _torch_reference(r20_model, x)
    assert got.shape == (5, 100)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)  # validate's FP32 tolerances
    endpoint.close()


def test_bounded_load_with_dynamic_batching(served, r20_model):
    import json
    import urllib.request

    from simam_deploy.triton.client import load_test

    rng = np.random.default_rng(3)
    pool = rng.standard_normal((16, 1, 3, 32, 32)).astype(np.float32)
    expected = [_torch_reference(r20_model, x) for x in pool]

    def check(i, outputs):
        np.testing.assert_allclose(outputs["output"], expected[i % 16], atol=1e-4, rtol=1e-3)

    report = load_test(
        f"grpc://{served.grpc_url}", "r20", lambda i: {"input": pool[i % 16]}, requests=500, concurrency=16,
        check=check, deadline_s=120,
    )  # fmt: skip
    print(f"\ntriton python backend, 500 requests x16: {report.to_dict()}")
    assert report.errors == 0, report.first_error
    assert report.throughput_rps > 0 and report.p50_ms <= report.p99_ms
    # The server counts an inference after its response is sent: the last one can land a moment
    # after the client has it, so read the statistics until they settle (bounded).
    for _ in range(50):
        with urllib.request.urlopen(f"http://{served.http_url}/v2/models/r20/stats", timeout=5) as response:
            stats = json.load(response)["model_stats"][0]
        if stats["inference_count"] >= 500:
            break
        time.sleep(0.1)
    assert stats["inference_count"] >= 500
    # Dynamic batching really grouped requests: fewer executions than inferences.
    assert stats["execution_count"] < stats["inference_count"]


def test_other_backends_fail_only_for_the_missing_backend(tmp_path, server_dist, r20_decomposed):
    """The onnxruntime (and, with an engine, tensorrt_plan) repositories are well-formed: the
    server that has only the python backend refuses them for the missing backend, not the config."""
    from simam_deploy.triton.server import LocalTritonServer

    repo = tmp_path / "repo"
    write_repository(r20_decomposed, repo, name="ort")
    engine = _rtx_engine(r20_decomposed, tmp_path)
    if engine is not None:
        report = write_repository(engine, repo, name="trt", onnx_source=r20_decomposed)
        assert report.libraries == ["lib/libsimam_trt_plugin.so"]
    write_repository(r20_decomposed, repo, name="broken")
    config = repo / "broken" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size", "max_batch_sise"))
    with LocalTritonServer(repo, server=server_dist, explicit=True, log_path=tmp_path / "log") as server:
        loaded, message = server.load("ort")
        broken_loaded, broken_message = server.load("broken")
        trt_loaded, trt_message = server.load("trt") if engine is not None else (False, None)
    assert not loaded
    assert "unable to find backend library for backend 'onnxruntime'" in message, message
    if engine is not None:  # a real engine from TensorRT for RTX's builder, platform tensorrt_plan
        assert not trt_loaded
        assert "unable to find backend library for backend 'tensorrt'" in trt_message, trt_message
    # The same check tells a config fault apart: a misspelt field fails on parsing, not on the backend.
    assert not broken_loaded and "unable to find backend library" not in broken_message, broken_message


def _rtx_engine(onnx_path: Path, folder: Path) -> Path | None:
    """A real serialized engine when TensorRT for RTX (it builds without a GPU) is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorrt_rtx_bindings") is None:
        if IN_CI:
            pytest.fail(
                "CI installs TensorRT for RTX (make test): the tensorrt_plan repository needs an engine"
            )
        return None
    from simam_deploy.backends.tensorrt import build_engine

    engine = folder / "r20.engine"
    build_engine(onnx_path, engine, runtime="tensorrt-rtx")
    return engine


def test_server_stops_cleanly(tmp_path, server_dist, r20_decomposed):
    from simam_deploy.triton.server import LocalTritonServer, port_open

    write_repository(r20_decomposed, tmp_path / "repo", name="r20", backend="python")
    server = LocalTritonServer(tmp_path / "repo", server=server_dist, log_path=tmp_path / "log")
    server.start()
    pid, ports = server.process.pid, (server.http_port, server.grpc_port)
    assert all(port_open(p) for p in ports)
    server.stop()
    assert not any(port_open(p) for p in ports)
    with pytest.raises(ProcessLookupError):  # the whole process group (server + python stubs) is gone
        os.killpg(pid, 0)


def test_bench_puts_served_latency_beside_local_runs(served, r20_decomposed, capsys):
    import json

    url = f"http://{served.http_url}"
    code, out, err = run_cli(
        ["bench", str(r20_decomposed), "--triton", url, "r20", "--batch", "2", "--warmup", "1",
         "--iters", "3", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    rows = {r["backend"]: r for r in report["results"]}
    assert "triton-http" in rows and any(name.startswith("onnxruntime") for name in rows)
    assert rows["triton-http"]["batch"] == 2 and rows["triton-http"]["p50_ms"] > 0
    code, out, err = run_cli(
        ["bench", "--triton", f"grpc://{served.grpc_url}", "r20", "--iters", "2", "--warmup", "0",
         "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert [r["backend"] for r in json.loads(out)["results"]] == ["triton-grpc"]
    code, _, err = run_cli(["bench", "--triton", url, "no-such-model", "--iters", "1"], capsys)
    assert code == 2 and "no-such-model" in err
