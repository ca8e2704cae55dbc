"""TensorRT path: plugin library discovery/loading, the build command and the engine runner.

What runs everywhere: the plugin library is found and loaded with ctypes (when it was built, i.e.
TensorRT headers were configured), its TensorRT entry points are exported, non-plugin libraries are
refused, and the CLI/runner fail cleanly without TensorRT (the modules hidden). Engines are built
wherever a TensorRT builds (TensorRT for RTX needs no GPU); tests marked ``trt`` run and time them,
which needs a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from simam_deploy.backends import tensorrt as simam_trt
from simam_deploy.errors import InputError, MissingDependencyError

# Any TensorRT that can build: plain TensorRT or TensorRT for RTX (which builds without a GPU).
HAVE_TENSORRT = any(importlib.util.find_spec(name) for name in ("tensorrt", "tensorrt_rtx_bindings"))


def _have_cuda_device() -> bool:
    import torch

    return torch.cuda.is_available()


# Running an engine needs a GPU, whatever TensorRT module is installed: ask for the device.
needs_trt = pytest.mark.skipif(
    not (HAVE_TENSORRT and _have_cuda_device()),
    reason="needs a TensorRT Python package and a CUDA device (engines are deserialized and run)",
)


def _built_plugin() -> Path | None:
    try:
        return simam_trt.find_plugin_library()
    except (InputError, MissingDependencyError):
        return None


PLUGIN = _built_plugin()
needs_plugin = pytest.mark.skipif(
    PLUGIN is None,
    reason="SimAM TensorRT plugin not built (configure with TENSORRT_ROOT=... or set SIMAM_TRT_PLUGIN)",
)


def simam_onnx(path: Path, e_lambda: float = 1e-4, unbiased: int = 1, channels: int = 3) -> Path:
    """A model that is one SimAM node behind a Conv, with a dynamic batch."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", channels, 8, 8])
    rng = np.random.default_rng(0)
    weight = helper.make_tensor(
        "w",
        TensorProto.FLOAT,
        [channels, channels, 3, 3],
        rng.standard_normal(channels * channels * 9).tolist(),
    )
    conv = helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1])
    node = helper.make_node(
        "SimAM", ["c"], ["output"], domain="com.simam_deploy", e_lambda=e_lambda, unbiased=unbiased
    )
    graph = helper.make_graph([conv, node], "simam", [x], [y], initializer=[weight])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.simam_deploy", 1)]
    )
    onnx.save(model, path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simam_deploy.cli.main", *args], capture_output=True, text=True, check=False
    )


# ---- plugin library ----------------------------------------------------------------------------------


@needs_plugin
def test_plugin_loads_with_ctypes_and_exports_tensorrt_entry_points():
    library = simam_trt.load_plugin_library(PLUGIN)
    major, minor = (int(part) for part in library.info["tensorrt_headers"].split(".")[:2])
    # loadLibrary hands TensorRT's logger over through setLoggerFinder (TensorRT >= 8.6).
    assert ("setLoggerFinder" in library.entry_points) == ((major, minor) >= (8, 6))
    # TensorRT >= 10 loads IPluginCreatorV3One lists through getCreators; 8.x through getPluginCreators.
    assert ("getCreators" if major >= 10 else "getPluginCreators") in library.entry_points
    assert library.info["plugin"] == "SimAM" and library.info["version"] == "1"
    assert library.info["cuda_kernels"] == "yes"


@needs_plugin
def test_plugin_needs_nothing_from_libnvinfer():
    nm = subprocess.run(["nm", "-D", "--undefined-only", str(PLUGIN)], capture_output=True, text=True)
    if nm.returncode != 0:
        pytest.skip(f"nm not usable here: {nm.stderr.strip()}")
    undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    strong_trt = [s for s in undefined if "nvinfer" in s.lower() or s.startswith("_ZN8nvinfer1")]
    assert not strong_trt, f"plugin depends on TensorRT symbols: {strong_trt}"
    weak = [line for line in nm.stdout.splitlines() if line.split()[-1] == "getPluginRegistry"]
    assert all(line.split()[0] == "w" for line in weak), "getPluginRegistry must be a weak reference"


def test_explicit_missing_plugin_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        simam_trt.find_plugin_library(tmp_path / "nope.so")


def test_env_var_pointing_nowhere_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(simam_trt.PLUGIN_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(InputError, match=simam_trt.PLUGIN_ENV):
        simam_trt.find_plugin_library()


def test_env_var_wins_over_build_tree(tmp_path, monkeypatch):
    fake = tmp_path / simam_trt.PLUGIN_LIBRARY_NAME
    fake.write_bytes(b"\x7fELF")
    monkeypatch.setenv(simam_trt.PLUGIN_ENV, str(fake))
    assert simam_trt.find_plugin_library() == fake


def test_a_library_that_is_not_a_plugin_is_refused():
    import simam_deploy._C as native

    with pytest.raises(InputError, match="not a TensorRT plugin library"):
        simam_trt.load_plugin_library(native.__file__)


def test_a_text_file_is_not_loadable(tmp_path):
    bogus = tmp_path / "libsimam_trt_plugin.so"
    bogus.write_text("not an ELF file")
    with pytest.raises(InputError, match="cannot load plugin library"):
        simam_trt.load_plugin_library(bogus)


def test_plugin_info_parsing_keeps_spaces_in_values():
    info = simam_trt.parse_plugin_info(
        "plugin=SimAM version=1 tensorrt_headers=10.16.0 api=IPluginV3 (IPluginV3OneCore/Build/Runtime, "
        "IPluginCreatorV3One) cuda_kernels=yes registered_by=load-time registry_refused=no"
    )
    assert info["api"] == "IPluginV3 (IPluginV3OneCore/Build/Runtime, IPluginCreatorV3One)"
    assert info["cuda_kernels"] == "yes" and info["registered_by"] == "load-time"
    assert info["registry_refused"] == "no"


# ---- shapes ---------------------------------------------------------------------------------------


def test_shapes_parse_named_and_unnamed_profiles():
    shapes = simam_trt.parse_shapes(["input=1x3x32x32:8x3x32x32:32x3x32x32"])
    assert shapes == {"input": ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32))}
    assert simam_trt.parse_shapes(["2x3x8x8"]) == {None: ((2, 3, 8, 8),) * 3}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("x=1x3:2x3", "MIN:OPT:MAX"),
        ("x=1x3x8x8:1x3x8:1x3x8x8", "different ranks"),
        ("x=4x3x8x8:2x3x8x8:8x3x8x8", "min <= opt <= max"),
        ("x=0x3x8x8", "positive integers"),
        ("x=ax3x8x8", "positive integers"),
    ],
)
def test_bad_shapes_name_the_problem(spec, message):
    with pytest.raises(InputError, match=message):
        simam_trt.parse_shapes([spec])


# ---- without TensorRT: precise errors, exit code 2 ------------------------------------------------


# A Python where neither TensorRT module can be imported, whatever this machine has installed: a None
# entry in sys.modules makes `import tensorrt` raise ImportError, as a missing package does.
HIDE_TENSORRT = "import sys; sys.modules['tensorrt'] = sys.modules['tensorrt_rtx_bindings'] = None; "


def test_build_without_tensorrt_exits_2_with_install_hint(tmp_path):
    model = simam_onnx(tmp_path / "m.onnx")
    script = HIDE_TENSORRT + "from simam_deploy.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", script, "build", str(model), "-o", str(tmp_path / "m.engine"), "--fp16"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "no TensorRT Python package could be imported" in result.stderr
    assert 'pip install "simam-deploy[trt]"' in result.stderr and "JetPack" in result.stderr
    assert "simam-deploy[trt-rtx]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.engine").exists()


def test_build_with_missing_onnx_exits_2(tmp_path):
    result = run_cli("build", str(tmp_path / "absent.onnx"), "-o", str(tmp_path / "m.engine"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_build_refuses_to_overwrite_its_input(tmp_path):
    model = simam_onnx(tmp_path / "m.onnx")
    result = run_cli("build", str(model), "-o", str(model))
    assert result.returncode == 2
    assert "same file as input" in result.stderr


def test_build_help_shows_trtexec_equivalent():
    result = run_cli("build", "--help")
    assert result.returncode == 0
    assert "trtexec --onnx=" in result.stdout and "--dynamicPlugins=" in result.stdout


def test_runner_rejects_missing_and_empty_engines(tmp_path):
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    with pytest.raises(InputError, match="does not exist"):
        TensorRTRunner(tmp_path / "absent.engine")
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        TensorRTRunner(empty)
    tiny = tmp_path / "tiny.engine"
    tiny.write_bytes(b"abc")
    with pytest.raises(InputError, match="not a TensorRT engine"):
        TensorRTRunner(tiny)


@pytest.mark.skipif(_have_cuda_device(), reason="checks the message shown on a machine without a GPU")
def test_runner_without_a_gpu_says_so_whatever_tensorrt_is_installed(tmp_path):
    from simam_deploy.backends import load_runner

    engine = tmp_path / "model.engine"
    engine.write_bytes(os.urandom(4096))
    with pytest.raises(MissingDependencyError, match="need an NVIDIA GPU"):
        load_runner(engine)


# ---- with TensorRT and a GPU ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_runtime() -> str:
    """The TensorRT that builds here, with a plugin built for its registry (TensorRT for RTX builds
    without a GPU, so CI gets this far)."""
    if not HAVE_TENSORRT:
        pytest.skip("no TensorRT Python package (pip install simam-deploy[trt] or simam-deploy[trt-rtx])")
    if PLUGIN is None:
        pytest.skip("SimAM TensorRT plugin not built (make install TENSORRT_ROOT=...)")
    runtime = simam_trt.import_runtime("auto")
    headers = simam_trt.load_plugin_library(PLUGIN).info.get("tensorrt_headers", "?")
    if headers.split(".")[0] != str(runtime.registry_layout):
        pytest.skip(
            f"the plugin was built against TensorRT {headers} headers; {runtime.label} needs "
            f"{runtime.registry_layout}.x"
        )
    return runtime.name


@pytest.fixture(scope="module")
def built_model(tmp_path_factory, build_runtime):
    """An fp32 engine of a one-SimAM model, built (not run)."""
    folder = tmp_path_factory.mktemp("trt")
    model = simam_onnx(folder / "m.onnx", e_lambda=1e-4, unbiased=1, channels=4)
    engine = folder / "m.engine"
    report = simam_trt.build_engine(
        model, engine, precision="fp32", shapes=["input=1x4x8x8:2x4x8x8:4x4x8x8"], runtime=build_runtime
    )
    return model, engine, report


@pytest.fixture(scope="module")
def built_fp16(built_model, build_runtime):
    model, engine, _ = built_model
    fp16 = engine.with_name("fp16.engine")
    report = simam_trt.build_engine(
        model, fp16, precision="fp16", shapes=["input=1x4x8x8:2x4x8x8:4x4x8x8"], runtime=build_runtime
    )
    return fp16, report


@pytest.fixture(scope="module")
def built_engine(built_model):
    """The fp32 engine, on a machine that can run it."""
    if not (HAVE_TENSORRT and _have_cuda_device()):
        pytest.skip("needs a TensorRT Python package and a CUDA device")
    import torch

    runtime = simam_trt.import_runtime("auto")
    device = "SM{}{}".format(*torch.cuda.get_device_capability())
    if runtime.name == "tensorrt-rtx" and device not in runtime.compute_capabilities:
        pytest.skip(
            f"{runtime.label} has no {device} target (it has {', '.join(runtime.compute_capabilities)})"
        )
    return built_model


def _reference(model: Path, x: np.ndarray) -> np.ndarray:
    import torch

    from simam_deploy.nn import simam_reference

    proto = onnx.load(model)
    weight = onnx.numpy_helper.to_array(proto.graph.initializer[0])
    conv = torch.nn.functional.conv2d(
        torch.from_numpy(x).double(), torch.from_numpy(weight).double(), padding=1
    )
    return simam_reference(conv, e_lambda=1e-4, unbiased=True).float().numpy()


def test_engine_build_maps_every_simam_node_to_the_plugin(built_model):
    _, engine, report = built_model
    assert engine.stat().st_size == report.engine_bytes > 0
    assert report.simam_nodes == report.simam_plugin_layers == 1
    assert report.profiles == {"input": [[1, 4, 8, 8], [2, 4, 8, 8], [4, 4, 8, 8]]}


@pytest.mark.trt
@needs_trt
@pytest.mark.parametrize("batch", [1, 3, 4])
def test_engine_matches_reference_for_dynamic_batch(built_engine, batch):
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    model, engine, _ = built_engine
    runner = TensorRTRunner(engine)
    x = np.random.default_rng(batch).standard_normal((batch, 4, 8, 8)).astype(np.float32)
    got = runner.infer({"input": x})["output"]
    np.testing.assert_allclose(got, _reference(model, x), rtol=1e-4, atol=1e-4)


@pytest.mark.trt
@needs_trt
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engine_benchmark_returns_positive_latencies(built_engine, cuda_graph):
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    _, engine, _ = built_engine
    runner = TensorRTRunner(engine)
    x = np.zeros((2, 4, 8, 8), np.float32)
    times = runner.benchmark({"input": x}, warmup=3, iters=10, cuda_graph=cuda_graph)
    assert len(times) == 10 and all(t > 0 for t in times)


def test_fp16_build_keeps_the_plugin_and_reaches_half_precision(built_fp16):
    engine, report = built_fp16
    assert report.simam_plugin_layers == 1 and engine.stat().st_size == report.engine_bytes > 0
    # TensorRT <= 10: an fp32 network with the FP16 flag; 11/RTX: the file converted to fp16 on the way
    assert (report.precision, report.builder_flags) in (("fp32", ["FP16"]), ("fp16", []))


@pytest.mark.trt
@needs_trt
def test_fp16_engine_matches_reference_within_half_precision(built_engine, built_fp16):
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    model, _, _ = built_engine
    engine, _ = built_fp16
    x = np.random.default_rng(7).standard_normal((2, 4, 8, 8)).astype(np.float32)
    got = TensorRTRunner(engine).infer({"input": x})["output"]
    np.testing.assert_allclose(got, _reference(model, x), rtol=2e-2, atol=2e-2)


@pytest.mark.trt
@needs_trt
def test_engine_outside_profile_is_an_input_error(built_engine):
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    _, engine, _ = built_engine
    with pytest.raises(InputError, match="optimization profile"):
        TensorRTRunner(engine).infer({"input": np.zeros((8, 4, 8, 8), np.float32)})


# ---- the export -> plugin contract, checked without TensorRT ---------------------------------------


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_exported_plugin_nodes_carry_what_the_trt_parser_turns_into_our_fields(tmp_path, exporter):
    """onnx-tensorrt's fallback importer looks the creator up by op_type/plugin_version/plugin_namespace
    and converts FLOAT -> kFLOAT32 and INT -> kINT32; a model-local function named SimAM would be
    inlined instead of reaching the plugin."""
    import torch

    from simam_deploy.export import export_onnx
    from simam_deploy.nn import SimAM

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), SimAM(e_lambda=1e-3, unbiased=False)
    ).eval()
    out = tmp_path / "tiny.onnx"
    # --no-function: TensorRT < 10.7 would import a local function SimAM instead of the plugin
    export_onnx(model, out, mode="plugin", input_shape=(1, 3, 8, 8), exporter=exporter, function=False)
    proto = onnx.load(out)
    assert not [f for f in proto.functions if f.name == simam_trt.PLUGIN_NAME]
    nodes = [n for n in proto.graph.node if n.op_type == simam_trt.PLUGIN_NAME]
    assert len(nodes) == 1
    attrs = {a.name: a for a in nodes[0].attribute}
    assert attrs["e_lambda"].type == onnx.AttributeProto.FLOAT
    assert attrs["e_lambda"].f == pytest.approx(1e-3)
    assert attrs["unbiased"].type == onnx.AttributeProto.INT and attrs["unbiased"].i == 0
    if "plugin_version" in attrs:
        assert attrs["plugin_version"].s.decode() == simam_trt.PLUGIN_VERSION
    if "plugin_namespace" in attrs:
        assert attrs["plugin_namespace"].s.decode() == ""
