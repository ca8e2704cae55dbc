"""The real TensorRT in the loop: TensorRT for RTX 1.x builds engines ahead of time on this CPU-only
machine, with its real ONNX parser and plugin registry, and our plugin built against 11.x headers.

Nothing here deserializes or runs an engine (that needs a GPU: tests/test_tensorrt.py asks for one).
Tests skip, saying why, when the RTX wheels are not installed or the plugin was not built for them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from simam_deploy.backends import tensorrt as simam_trt
from simam_deploy.errors import InputError, MissingDependencyError
from tests.cli_runner import run_cli

REPO = Path(__file__).resolve().parents[1]
TRT_HEADERS = (
    Path(os.environ.get("SIMAM_SHARED", REPO.parent / "shared")) / "third_party" / "tensorrt-headers"
)
HAVE_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None


def _rtx_plugin() -> tuple[Path | None, str]:
    """The plugin library, when it was built against the 11.x headers RTX needs (else why not)."""
    try:
        path = simam_trt.find_plugin_library()
        library = simam_trt.load_plugin_library(path)
    except (InputError, MissingDependencyError) as exc:
        return (
            None,
            f"SimAM TensorRT plugin not built ({exc.message}); make install TENSORRT_ROOT=<11.x headers>",
        )
    headers = library.info.get("tensorrt_headers", "?")
    if not headers.startswith("11."):
        return None, f"the plugin was built against TensorRT {headers} headers; TensorRT for RTX needs 11.x"
    return path, ""


PLUGIN, WHY_NO_PLUGIN = _rtx_plugin()
needs_rtx = pytest.mark.skipif(
    not HAVE_RTX, reason=f"TensorRT for RTX wheels not installed (pip install {simam_trt.runtime.RTX_WHEELS})"
)
needs_rtx_plugin = pytest.mark.skipif(not HAVE_RTX or PLUGIN is None, reason=WHY_NO_PLUGIN or "no RTX")

NODES = {"cifar-resnet20": 9, "resnet50": 16}
SHAPES = {"cifar-resnet20": (3, 32, 32), "resnet50": (3, 224, 224)}


def _profile(model: str, vary: str) -> list[str]:
    c, h, w = SHAPES[model]
    if vary == "batch":
        return [f"input=1x{c}x{h}x{w}:4x{c}x{h}x{w}:8x{c}x{h}x{w}"]
    return [f"input=1x{c}x{h // 2}x{w // 2}:2x{c}x{h}x{w}:2x{c}x{h * 2}x{w * 2}"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """ONNX files with dynamic batch, H and W, by (model, mode); exported once for this module."""
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("rtx-onnx")
    cache: dict[tuple[str, str], Path] = {}

    def get(model: str, mode: str) -> Path:
        if (model, mode) not in cache:
            network, _ = build_model(model)
            out = folder / f"{model}-{mode}.onnx"
            export_onnx(network, out, mode=mode, input_shape=(1, *SHAPES[model]), dynamic="all")
            cache[model, mode] = out
        return cache[model, mode]

    return get


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ---- probing: features, not version numbers (defect 2) ---------------------------------------------


@needs_rtx
def test_rtx_features_are_probed_not_read_from_its_version_number():
    runtime = simam_trt.import_runtime("tensorrt-rtx")
    assert runtime.name == "tensorrt-rtx" and runtime.version.startswith("1.")
    assert not runtime.explicit_batch_flag  # 1.x is not TensorRT 8: no EXPLICIT_BATCH
    assert runtime.strongly_typed_only and runtime.registry_layout == 11
    assert {"SM86", "SM89", "SM120"} <= set(runtime.compute_capabilities)
    assert "SM90" not in runtime.compute_capabilities


@needs_rtx
def test_auto_runtime_picks_plain_tensorrt_first_then_rtx():
    runtime = simam_trt.import_runtime("auto")
    expected = "tensorrt" if importlib.util.find_spec("tensorrt") else "tensorrt-rtx"
    assert runtime.name == expected


# ---- the parser's link (defect 6) ------------------------------------------------------------------


@needs_rtx
def test_rtx_library_link_is_the_same_file_as_the_shipped_library():
    simam_trt.import_runtime("tensorrt-rtx")
    link = simam_trt.rtx_parser_link()
    assert link is not None and link.name == "libtensorrt_rtx.so"
    assert link.is_symlink() and link.samefile(link.with_name("libtensorrt_rtx.so.1"))


@needs_rtx_plugin
def test_a_plugin_build_recreates_the_missing_link_instead_of_aborting(exported, tmp_path):
    """Without the link the parser's dlopen fails and the process aborts on the first plugin node."""
    simam_trt.import_runtime("tensorrt-rtx")
    link = simam_trt.rtx_parser_link()
    link.unlink()
    try:
        model = exported("cifar-resnet20", "plugin")
        engine = tmp_path / "r20.engine"
        script = "from simam_deploy.cli.main import main; main()"
        args = ["build", str(model), "-o", str(engine), "--runtime", "tensorrt-rtx", "--shapes"]
        args += _profile("cifar-resnet20", "batch")
        result = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert engine.is_file() and link.is_symlink()
    finally:
        simam_trt.rtx_parser_link()  # leave the venv as it was


@needs_rtx_plugin
def test_a_read_only_wheel_gets_a_link_in_our_cache_and_the_fix(exported, tmp_path):
    """Where the wheel's folder cannot be written: exit 2 naming both fixes, and the LD_LIBRARY_PATH
    one (a link in a cache folder we own: same file, so one copy loads) really builds."""
    simam_trt.import_runtime("tensorrt-rtx")
    link = simam_trt.rtx_parser_link()
    folder = link.parent
    chattr = shutil.which("chattr")
    if chattr is None or os.geteuid() != 0:
        pytest.skip("needs root and chattr to make the wheel's folder read-only")
    link.unlink()
    if subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        simam_trt.rtx_parser_link()
        pytest.skip("this file system has no immutable attribute")
    try:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        model = exported("cifar-resnet20", "plugin")
        args = [sys.executable, "-c", "from simam_deploy.cli.main import main; main()", "build", str(model)]
        args += ["-o", str(tmp_path / "r20.engine"), "--runtime", "tensorrt-rtx", "--shapes"]
        args += _profile("cifar-resnet20", "batch")
        refused = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
        assert refused.returncode == 2, refused.stderr
        cache = tmp_path / "cache" / "simam-deploy" / "tensorrt-rtx"
        assert f"export LD_LIBRARY_PATH={cache}" in refused.stderr and "ln -s" in refused.stderr
        assert not (tmp_path / "r20.engine").exists()
        env["LD_LIBRARY_PATH"] = str(cache)
        built = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
        assert built.returncode == 0, built.stderr
        assert "9/9 SimAM nodes" in built.stdout
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
        simam_trt.rtx_parser_link()


# ---- the real builder ----------------------------------------------------------------------------


@needs_rtx_plugin
def test_cli_export_then_build_reports_every_simam_node_as_a_plugin_layer(tmp_path, capsys):
    """The issue's "done when": export --mode plugin, build, 9/9 SimAM nodes as plugin layers (defect 1:
    the build used to die on `network._simam_parser = parser` with exit 1)."""
    onnx_file, engine, report = tmp_path / "r20.onnx", tmp_path / "r20.engine", tmp_path / "r20.json"
    code, _, err = run_cli(["export", "cifar-resnet20", "--mode", "plugin", "-o", str(onnx_file)], capsys)
    assert code == 0, err
    code, out, err = run_cli(["build", str(onnx_file), "-o", str(engine), "--json", str(report)], capsys)
    assert code == 0, err
    assert "9/9 SimAM nodes -> SimAM plugin layers" in out and "TensorRT for RTX 1.7" in out
    data = json.loads(report.read_text())
    assert data["schema"] == "simam-deploy/build/v1" and data["runtime"] == "tensorrt-rtx"
    assert data["simam_nodes"] == data["simam_plugin_layers"] == 9
    assert data["engine_bytes"] == engine.stat().st_size > 0
    assert data["layers"] > data["simam_plugin_layers"] and data["build_seconds"] > 0


@needs_rtx_plugin
@pytest.mark.parametrize("vary", ["batch", "hw"])
@pytest.mark.parametrize("mode", ["plugin", "decomposed"])
@pytest.mark.parametrize("model", ["cifar-resnet20", "resnet50"])
def test_real_builds_for_both_models_modes_and_profiles(exported, tmp_path, model, mode, vary):
    engine = tmp_path / "model.engine"
    report = simam_trt.build_engine(
        exported(model, mode), engine, shapes=_profile(model, vary), runtime="tensorrt-rtx"
    )
    expected = NODES[model] if mode == "plugin" else 0
    assert report.simam_nodes == report.simam_plugin_layers == expected
    assert report.runtime == "tensorrt-rtx" and report.engine_bytes == engine.stat().st_size > 0
    assert (report.plugin_library is not None) == (mode == "plugin")
    low, _, high = report.profiles["input"]
    assert (low[0] < high[0]) if vary == "batch" else (low[2] < high[2] and low[3] < high[3])


@needs_rtx_plugin
def test_compute_capability_targets_reach_the_builder(exported, tmp_path, capsys):
    engine = tmp_path / "r20.engine"
    report = simam_trt.build_engine(
        exported("cifar-resnet20", "plugin"),
        engine,
        shapes=_profile("cifar-resnet20", "batch"),
        runtime="tensorrt-rtx",
        compute_capabilities=["sm86", "SM_120"],
    )
    assert report.compute_capabilities == ["SM86", "SM120"]
    args = ["build", str(exported("cifar-resnet20", "plugin")), "-o", str(tmp_path / "cli.engine")]
    args += ["--shapes", *_profile("cifar-resnet20", "batch"), "--compute-capability", "sm89", "--json", "-"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert json.loads(out)["compute_capabilities"] == ["SM89"]  # stdout holds the JSON only
    assert "9/9 SimAM nodes" in err
    with pytest.raises(InputError, match="cannot target SM90"):
        simam_trt.build_engine(
            exported("cifar-resnet20", "plugin"), tmp_path / "x.engine", compute_capabilities=["sm90"]
        )
    assert not (tmp_path / "x.engine").exists()


@needs_rtx_plugin
def test_plugins_to_serialize_embeds_the_plugin_library(exported, tmp_path):
    model = exported("cifar-resnet20", "plugin")
    plain = simam_trt.build_engine(
        model, tmp_path / "plain.engine", shapes=_profile("cifar-resnet20", "batch")
    )
    embedded = simam_trt.build_engine(
        model, tmp_path / "embedded.engine", shapes=_profile("cifar-resnet20", "batch"), embed_plugin=True
    )
    assert embedded.plugin_embedded and not plain.plugin_embedded
    # The library's own exported symbol names travel inside the engine, and only there.
    assert b"simamTrtPluginInfo" in (tmp_path / "embedded.engine").read_bytes()
    assert b"simamTrtPluginInfo" not in (tmp_path / "plain.engine").read_bytes()
    assert embedded.engine_bytes > plain.engine_bytes


@needs_rtx_plugin
def test_weights_in_external_data_are_found_by_parse_from_file(exported, tmp_path):
    model = onnx.load(exported("cifar-resnet20", "plugin"))
    path = tmp_path / "r20.onnx"
    onnx.save(model, path, save_as_external_data=True, location="r20.onnx.data", size_threshold=0)
    assert (tmp_path / "r20.onnx.data").stat().st_size > path.stat().st_size
    report = simam_trt.build_engine(path, tmp_path / "r20.engine", shapes=_profile("cifar-resnet20", "batch"))
    assert report.simam_plugin_layers == 9
    # A location that leaves the model's folder is refused before TensorRT opens anything.
    escaping = onnx.load(path, load_external_data=False)
    for entry in escaping.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../outside.data"
    onnx.save(escaping, tmp_path / "escaping.onnx")
    with pytest.raises(InputError, match="climbs out of the model's folder"):
        simam_trt.build_engine(tmp_path / "escaping.onnx", tmp_path / "x.engine")


@needs_rtx_plugin
def test_precision_on_a_strongly_typed_runtime_converts_the_file_on_the_way(exported, tmp_path):
    report = simam_trt.build_engine(
        exported("cifar-resnet20", "plugin"),
        tmp_path / "x.engine",
        precision="fp16",
        shapes=_profile("cifar-resnet20", "hw"),  # the module's files have dynamic batch, H and W
    )
    assert report.precision == "fp16" and report.builder_flags == []
    assert any("no fp16 builder flag" in n and "converted" in n for n in report.notices)


# ---- malformed SimAM attributes through the real parser ------------------------------------------


def _damage(model: onnx.ModelProto, how: str) -> onnx.ModelProto:
    node = next(n for n in model.graph.node if n.op_type == "SimAM")
    attrs = {a.name: a for a in node.attribute}
    if how == "negative e_lambda":
        attrs["e_lambda"].f = -1.0
    elif how == "unbiased 2":
        attrs["unbiased"].i = 2
    elif how == "e_lambda as INT":
        node.attribute.remove(attrs["e_lambda"])
        node.attribute.append(onnx.helper.make_attribute("e_lambda", 1))
    elif how == "e_lambda missing":
        node.attribute.remove(attrs["e_lambda"])
    return model


@needs_rtx_plugin
@pytest.mark.parametrize(
    "how, named",
    [
        ("negative e_lambda", "e_lambda must be a finite number > 0"),
        ("unbiased 2", "unbiased must be 0 or 1, got 2"),
        ("e_lambda as INT", "field 'e_lambda' has type kINT32, expected kFLOAT32"),
        ("e_lambda missing", "required field 'e_lambda'"),
    ],
)
def test_malformed_attributes_exit_2_naming_the_attribute_and_write_nothing(
    exported, tmp_path, capsys, how, named
):
    bad = tmp_path / "bad.onnx"
    onnx.save(_damage(onnx.load(exported("cifar-resnet20", "plugin")), how), bad)
    before = _files(tmp_path)
    code, _, err = run_cli(["build", str(bad), "-o", str(tmp_path / "bad.engine")], capsys)
    assert code == 2, err
    assert named in err and "Traceback" not in err
    assert _files(tmp_path) == before  # no engine, no temporary file left behind


@needs_rtx_plugin
def test_a_binding_error_becomes_exit_2_not_a_traceback(exported, tmp_path, capsys, monkeypatch):
    """Defect 1 was an AttributeError from TensorRT's bindings escaping as exit 1: any exception
    raised inside the TensorRT calls is reported as a build failure (exit 2)."""
    runtime = simam_trt.import_runtime("tensorrt-rtx")

    def refuse(self, *args):
        raise AttributeError("'tensorrt_rtx.INetworkDefinition' object has no attribute '_simam_parser'")

    monkeypatch.setattr(runtime.module.Builder, "create_builder_config", refuse)
    args = ["build", str(exported("cifar-resnet20", "plugin")), "-o", str(tmp_path / "x.engine")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "failed while building" in err and "AttributeError" in err
    assert not (tmp_path / "x.engine").exists()


# ---- the real plugin registry (defects 3 and 4) ----------------------------------------------------

_REGISTRY_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, sys
    import tensorrt_rtx_bindings as trt

    order, path = sys.argv[1], sys.argv[2]
    registry = trt.get_plugin_registry()
    steps = []

    def simam_creators():
        return sum(1 for c in registry.all_creators if getattr(c, "name", None) == "SimAM")

    def info(lib):
        lib.simamTrtPluginInfo.restype = ctypes.c_char_p
        return lib.simamTrtPluginInfo().decode()

    def dlopen():
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        steps.append(["dlopen", True, simam_creators(), info(lib)])

    def load_library():
        handle = registry.load_library(path)
        steps.append(["load_library", handle is not None, simam_creators(), ""])

    for step in order.split(","):
        {"dlopen": dlopen, "load_library": load_library}[step]()
    steps.append(["creator", registry.get_creator("SimAM", "1", "") is not None, simam_creators(), ""])
    print(json.dumps(steps))
    """
)


def _registry_steps(order: str, plugin: Path) -> tuple[list, str]:
    result = subprocess.run(
        [sys.executable, "-c", _REGISTRY_SCRIPT, order, str(plugin)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"the process died (rc {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@needs_rtx_plugin
def test_load_library_after_a_plain_dlopen_succeeds_and_registers_once():
    steps, _ = _registry_steps("dlopen,load_library,load_library,dlopen", PLUGIN)
    dlopen, load, again, later, creator = steps
    assert dlopen[2] == 1 and "registered_by=load-time" in dlopen[3]  # load-time registration ran
    assert load[1] and load[2] == 1  # the real loadLibrary accepts the library: SimAM once
    assert not again[1] and again[2] == 1  # a second loadLibrary is refused by the registry; still once
    assert later[2] == 1 and "registered_by=loadLibrary" in later[3]
    assert creator[1]


@needs_rtx_plugin
def test_load_library_first_then_a_plain_dlopen_registers_once():
    steps, _ = _registry_steps("load_library,dlopen", PLUGIN)
    load, dlopen, creator = steps
    assert load[1] and load[2] == 1
    assert dlopen[2] == 1 and "registered_by=loadLibrary" in dlopen[3]
    assert creator[1]


def _rtx_library() -> Path:
    simam_trt.import_runtime("tensorrt-rtx")
    return simam_trt.rtx_parser_link().with_name("libtensorrt_rtx.so.1")


_CREATOR_SCRIPT = (
    "import tensorrt_rtx_bindings as trt; "
    "print(trt.get_plugin_registry().get_creator('SimAM', '1', '') is not None)"
)


@needs_rtx_plugin
@pytest.mark.parametrize("preload, registered", [("runtime,plugin", True), ("plugin", False)])
def test_ld_preload_registers_when_the_runtime_is_preloaded_too(preload, registered):
    """Triton/LD_PRELOAD: the plugin links no TensorRT, so preloaded alone it finds no registry (and
    registers nothing, as documented); preloaded after the runtime it registers at load time."""
    paths = {"runtime": str(_rtx_library()), "plugin": str(PLUGIN)}
    env = {**os.environ, "LD_PRELOAD": ":".join(paths[name] for name in preload.split(","))}
    result = subprocess.run(
        [sys.executable, "-c", _CREATOR_SCRIPT], capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(registered)


def _cuda_include() -> Path | None:
    nvcc = shutil.which("nvcc")
    candidates = [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"]
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    return next((c for c in candidates if (c / "cuda_runtime_api.h").is_file()), None)


@needs_rtx_plugin
@pytest.mark.parametrize("order", ["dlopen,loadLibrary,loadLibrary", "loadLibrary,dlopen"])
def test_a_cpp_program_linked_to_libtensorrt_rtx_loads_the_plugin_both_ways(tmp_path, order):
    headers = TRT_HEADERS / "11.1" / "include"
    if not (headers / "NvInferRuntime.h").is_file():
        pytest.skip(f"no TensorRT 11.1 headers at {headers} (../shared absent)")
    cuda = _cuda_include()
    compiler = shutil.which("g++") or shutil.which("c++")
    if cuda is None or compiler is None:
        pytest.skip("needs a C++ compiler and the CUDA toolkit's headers")
    library = _rtx_library()
    host = tmp_path / "linked_host"
    source = REPO / "plugins" / "tensorrt" / "harness" / "linked_host.cpp"
    compile_cmd = [compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-isystem", str(headers)]
    compile_cmd += ["-isystem", str(cuda), str(source), "-o", str(host), str(library), "-ldl"]
    compile_cmd += [f"-Wl,-rpath,{library.parent}"]
    subprocess.run(compile_cmd, check=True, capture_output=True)
    result = subprocess.run([str(host), str(PLUGIN), order], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASS"


def _plugin_built_against(major: str) -> Path | None:
    matrix = REPO / "build" / "trt-matrix"
    found = sorted(matrix.glob(f"trt-{major}.*/plugins/tensorrt/{simam_trt.PLUGIN_LIBRARY_NAME}"))
    return found[-1] if found else None


@needs_rtx
def test_a_plugin_built_against_10x_headers_is_refused_by_rtx_not_crashing():
    """Defect 4: the 10.x registrar used to call vtable slot 12 of RTX's 11.x-layout registry and crash."""
    plugin = _plugin_built_against("10")
    if plugin is None:
        pytest.skip("no plugin built against 10.x headers (scripts/trt_compile_matrix.sh builds one)")
    steps, stderr = _registry_steps("dlopen", plugin)
    assert steps[0][2] == 0 and "registry_refused=yes" in steps[0][3]
    assert "refuses to register with TensorRT for RTX 1.7" in stderr
    with pytest.raises(InputError, match="registry of TensorRT 11"):
        simam_trt.register_plugin(simam_trt.import_runtime("tensorrt-rtx"), plugin)


# ---- simam-deploy libs ---------------------------------------------------------------------------


@needs_rtx_plugin
def test_libs_prints_the_plugin_path_for_trtexec(capsys):
    code, out, _ = run_cli(["libs", "--tensorrt"], capsys)
    assert code == 0 and Path(out.strip()) == PLUGIN.resolve()
    ctypes.CDLL(out.strip())  # a path a host can load as it is
    code, out, _ = run_cli(["libs", "--json", "-"], capsys)
    data = json.loads(out)
    assert data["schema"] == "simam-deploy/libs/v1"
    assert data["libraries"][0] == {"kind": "tensorrt", "path": str(PLUGIN.resolve()), "problem": None}
    assert [lib["kind"] for lib in data["libraries"]] == ["tensorrt", "onnxruntime"]


def test_libs_without_a_built_plugin_exits_2_with_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(simam_trt.PLUGIN_ENV, str(tmp_path / "missing.so"))
    code, _, err = run_cli(["libs", "--tensorrt"], capsys)
    assert code == 2 and "make plugin" in err
    code, out, _ = run_cli(["libs"], capsys)
    assert code == 0 and out.startswith("tensorrt\tnot built")


# ---- fused files carry a local SimAM function (portable files) ------------------------------------


@needs_rtx_plugin
def test_rtx_takes_our_plugin_over_the_local_function(exported):
    from simam_deploy.graph.function import has_simam_function
    from simam_deploy.onnx_utils import load_onnx

    source = exported("cifar-resnet20", "plugin")
    assert has_simam_function(load_onnx(source, load_external=False))
    runtime = simam_trt.import_runtime("tensorrt-rtx")
    assert runtime.plugin_over_local_function
    from simam_deploy.backends.tensorrt import builder

    logger = builder.collecting_logger(runtime.module, False)
    builder.register_plugin(runtime, PLUGIN)
    parsed = builder._parse_onnx(runtime, runtime.module.Builder(logger), logger, source)
    assert builder.count_simam_layers(runtime.module, parsed.network)[0] == 9


@needs_rtx_plugin
def test_parsers_before_10_7_get_the_local_function_stripped_with_external_data(exported, tmp_path):
    """A TensorRT < 10.7 parser would import the function's body instead of our plugin: the build
    parses an in-memory copy without it, and external weights still resolve beside the file. The
    real RTX parser runs that path here (the runtime told it is an older parser)."""
    import dataclasses

    from simam_deploy.backends.tensorrt import builder
    from simam_deploy.onnx_utils import load_onnx, save_onnx

    external = tmp_path / "r20.onnx"
    save_onnx(load_onnx(exported("cifar-resnet20", "plugin")), external, external_data="always")
    assert (tmp_path / "r20.onnx.data").is_file()
    runtime = dataclasses.replace(simam_trt.import_runtime("tensorrt-rtx"), plugin_over_local_function=False)
    logger = builder.collecting_logger(runtime.module, False)
    builder.register_plugin(runtime, PLUGIN)
    parsed = builder._parse_onnx(runtime, runtime.module.Builder(logger), logger, external)
    simam_layers, layers = builder.count_simam_layers(runtime.module, parsed.network)
    assert simam_layers == 9 and layers > 9
