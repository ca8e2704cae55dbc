"""The backend registry: one package per backend, each stating what it can do; the commands read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simam_deploy import backends as registry
from simam_deploy.errors import InputError
from tests.cli_runner import run_cli
from tests.test_tensorrt import simam_onnx

REPO = Path(__file__).resolve().parents[1]


def test_every_backend_package_is_registered_and_states_its_capabilities():
    names = [b.name for b in registry.backends()]
    assert names == list(registry.PACKAGES)
    folders = sorted(p.parent.name for p in (REPO / "simam_deploy" / "backends").glob("*/__init__.py"))
    assert folders == sorted(registry.PACKAGES)  # a folder without its registry line is caught here
    for backend in registry.backends():
        caps = backend.capabilities
        assert caps.precisions and set(caps.precisions) <= set(registry.PRECISIONS), backend.name
        assert caps.devices and caps.custom_op, backend.name
        # every module:attribute the entry names exists (resolved lazily at run time, so check here)
        for reference in (backend.runner, backend.library, backend.probe):
            if reference is not None:
                assert callable(registry._resolve(reference)), reference
        assert json.dumps(backend.to_dict())


def test_file_types_pick_the_first_registered_backend():
    assert registry.backend_for("m.onnx").name == "onnxruntime"
    assert registry.backend_for("m.ENGINE").name == "tensorrt"
    assert registry.backend_for("m.onnx", "openvino").name == "openvino"
    assert [b.name for b in registry.file_backends(".onnx")] == ["onnxruntime", "openvino"]


@pytest.mark.parametrize(
    "target, backend, message",
    [
        ("m.onnx", "tensorrt", "cannot run m.onnx"),
        ("m.engine", "openvino", "use tensorrt for .engine"),
        ("m.onnx", "torch", "opens PyTorch models only"),
        ("m.onnx", "tvm", "unknown backend 'tvm'"),
        ("m.pb", None, "unknown file type .pb"),
    ],
)
def test_a_backend_that_cannot_open_the_file_is_refused(target, backend, message):
    with pytest.raises(InputError, match=message):
        registry.backend_for(target, backend)


def test_an_option_the_backend_does_not_take_is_named_not_dropped(tmp_path):
    model = simam_onnx(tmp_path / "m.onnx")
    with pytest.raises(InputError, match="onnxruntime backend has no option plugin_lib"):
        registry.load_runner(model, plugin_lib="libsimam_trt_plugin.so")
    runner = registry.load_runner(model, plugin_lib=None, threads=1)  # None: not given
    assert runner.name == "onnxruntime" and runner.input_names == ["input"]
    with pytest.raises(InputError, match="threads must be >= 1"):
        registry.load_runner(model, threads=0)


def test_libs_lists_the_backends_with_a_native_library(capsys):
    from simam_deploy.libs import library_kinds

    assert library_kinds() == [b.name for b in registry.backends() if b.library is not None]
    assert library_kinds() == ["tensorrt", "onnxruntime"]  # the order `simam-deploy libs` prints
    code, out, _ = run_cli(["libs", "--json", "-"], capsys)
    assert code == 0
    assert [lib["kind"] for lib in json.loads(out)["libraries"]] == library_kinds()


def test_validate_and_bench_offer_the_registered_backends(capsys):
    code, out, _ = run_cli(["validate", "--help"], capsys)
    assert code == 0 and "tensorrt|onnxruntime|openvino" in out.replace(" ", "").replace("\n", "")
    from simam_deploy.bench.targets import ALL_BACKENDS, ONNX_BACKENDS

    assert ONNX_BACKENDS == ("onnxruntime", "openvino") and "tensorrt" in ALL_BACKENDS


def test_per_layer_on_a_backend_without_a_probe_says_so():
    with pytest.raises(InputError, match="--per-layer is not available on the torch backend"):
        registry.get_backend("torch").per_layer_probe()
