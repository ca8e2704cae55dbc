"""Shared fixtures. The authors' checkpoint lives in ../shared beside the checkout; tests that need
it skip with that reason when it is absent (everything else must work without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMAM_SHARED", REPO.parent / "shared"))
OFFICIAL_CKPT = SHARED / "models" / "official-cifar100-resnet20-simam" / "model_best.pth.tar"


@pytest.fixture(scope="session")
def official_checkpoint() -> Path:
    if not OFFICIAL_CKPT.is_file():
        pytest.skip(f"the authors' checkpoint is not at {OFFICIAL_CKPT} (../shared absent)")
    return OFFICIAL_CKPT


@pytest.fixture(scope="session")
def official_r20_onnx(tmp_path_factory, official_checkpoint) -> Path:
    """The authors' ResNet-20 exported decomposed (dynamo, opset 18, dynamic batch+H+W)."""
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20", official_checkpoint)
    out = tmp_path_factory.mktemp("official") / "r20.onnx"
    export_onnx(model, out, opset=18, input_shape=(1, 3, 32, 32), dynamic="all", exporter="dynamo")
    return out


@pytest.fixture(scope="session")
def saved_r20(tmp_path_factory) -> tuple[Path, Path]:
    """The seeded zoo ResNet-20 (dynamic batch) and a folder of its inputs (batch 2) and PyTorch's
    outputs on them (validate --save-inputs/--save-outputs): the host side of parity on a device."""
    from simam_deploy.export import export_onnx
    from simam_deploy.validate import validate
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("saved")
    model, _ = build_model("cifar-resnet20")
    onnx_path = folder / "r20.onnx"
    export_onnx(model, onnx_path, opset=17, input_shape=(2, 3, 32, 32), exporter="torchscript")
    io = folder / "io"
    report = validate(
        onnx_path, "cifar-resnet20", seeds=(0,), input_shape=(2, 3, 32, 32), save_inputs=io, save_outputs=io
    )
    assert report.passed
    return onnx_path, io


ZOO_SHAPES = {"cifar-resnet20": (3, 32, 32), "resnet50": (3, 224, 224)}


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """``zoo_onnx(model, mode)``: the seeded zoo network (cifar-resnet20 or resnet50) exported once per
    session, dynamic batch, opset 17, in ``mode`` (decomposed, plugin or plugin+epilogue: fused from
    the decomposed export). resnet50's export is the slow part of the TensorRT plan tests, so every
    module that needs it shares one."""
    from simam_deploy.export import export_onnx
    from simam_deploy.graph.pipeline import fuse_file
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("zoo-onnx")
    made: dict[tuple[str, str], Path] = {}

    def get(model: str, mode: str) -> Path:
        if (model, mode) not in made:
            out = folder / f"{model}-{mode}.onnx"
            if mode in ("plugin", "plugin+epilogue"):  # what export --mode plugin [--epilogue] does
                fuse_file(get(model, "decomposed"), out, epilogue=mode == "plugin+epilogue")
            else:
                network, _ = build_model(model)
                export_onnx(network, out, mode=mode, input_shape=(1, *ZOO_SHAPES[model]), opset=17)
            made[model, mode] = out
        return made[model, mode]

    return get
