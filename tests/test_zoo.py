from pathlib import Path

import pytest
import torch

from simam_deploy.errors import InputError
from simam_deploy.models import ZOO
from simam_deploy.nn import find_simam_modules
from simam_deploy.zoo import build_model, load_checkpoint, read_state_dict

# SimAM count and lambda per architecture, from where the authors place the module.
EXPECTED = {
    "cifar-resnet20": (9, 1e-4),
    "cifar-resnet56": (27, 1e-4),
    "resnet18": (8, 0.1),
    "resnet50": (16, 0.1),
    "mobilenetv2": (17, 0.1),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_zoo_model_has_simam_where_expected(name):
    model, report = build_model(name)
    count, lam = EXPECTED[name]
    simams = find_simam_modules(model)
    assert report is None
    assert len(simams) == count
    assert all(m.e_lambda == lam and m.unbiased for _, m in simams)
    assert not model.training


def test_zoo_lists_exactly_the_five_models():
    assert sorted(ZOO) == sorted(EXPECTED)


def test_seeded_weights_are_reproducible():
    a, _ = build_model("cifar-resnet20", seed=3)
    b, _ = build_model("cifar-resnet20", seed=3)
    c, _ = build_model("cifar-resnet20", seed=4)
    wa, wb, wc = (m.conv1.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_official_checkpoint_loads_strictly(official_checkpoint):
    model, report = build_model("cifar-resnet20", official_checkpoint)
    assert report.tensors_loaded == len(model.state_dict()) == 128
    assert len(report.dropped_profiler_keys) == 98  # 226 keys in the file, per its provenance note
    assert report.wrapper_key == "state_dict"
    assert report.metadata["arch"] == "resnet20"
    raw = torch.load(official_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.layer1[0].conv2[0].weight, raw["layer1.0.conv2.0.weight"])


def test_official_checkpoint_classifies_a_normalised_image(official_checkpoint):
    # A trained net gives confident, non-degenerate predictions; random weights would not.
    model, _ = build_model("cifar-resnet20", official_checkpoint)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 3, 32, 32, generator=gen) - 0.48) / 0.2
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (16, 100) and torch.isfinite(logits).all()


def test_wrong_architecture_names_the_keys(official_checkpoint):
    with pytest.raises(InputError) as err:
        build_model("cifar-resnet56", official_checkpoint)
    assert "missing (216)" in str(err.value) and "layer1.3.conv1.weight" in str(err.value)
    with pytest.raises(InputError, match=r"unexpected|wrong shape|missing"):
        build_model("resnet18", official_checkpoint)


def test_module_prefix_and_model_wrapper_and_profiler_keys(tmp_path: Path):
    model, _ = build_model("cifar-resnet20", seed=1)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.total_ops"] = torch.zeros(1, dtype=torch.float64)
    state["module.layer1.total_params"] = torch.zeros(1, dtype=torch.float64)
    path = tmp_path / "wrapped.pt"
    torch.save({"model": state, "epoch": 3}, path)
    fresh, _ = build_model("cifar-resnet20", seed=2)
    report = load_checkpoint(fresh, path)
    assert report.stripped_prefix == "module." and report.wrapper_key == "model"
    assert len(report.dropped_profiler_keys) == 2
    assert torch.equal(fresh.linear.weight, model.linear.weight)


def test_genuinely_unexpected_and_missing_weights_are_refused(tmp_path: Path):
    model, _ = build_model("cifar-resnet20")
    state = model.state_dict()
    state["layer9.extra.weight"] = torch.zeros(2)
    del state["linear.bias"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(InputError) as err:
        load_checkpoint(model, tmp_path / "bad.pt")
    assert "layer9.extra.weight" in str(err.value) and "linear.bias" in str(err.value)


def test_corrupt_and_pickled_checkpoints_are_refused(tmp_path: Path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="is not a PyTorch checkpoint"):
        read_state_dict(corrupt)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Path("x")}, unsafe)  # arbitrary object
    with pytest.raises(InputError, match="weights_only"):
        read_state_dict(unsafe)
    with pytest.raises(InputError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


def test_unknown_model_lists_known_ones():
    with pytest.raises(InputError) as err:
        build_model("resnet1000")
    assert "cifar-resnet20" in str(err.value) and "package.module:callable" in str(err.value)


def test_user_callable_by_module_and_by_file(tmp_path: Path, monkeypatch):
    src = (
        "import torch\nfrom simam_deploy.nn import SimAM\n"
        "def make():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), SimAM(0.5))\n"
        "def not_a_module():\n    return 3\n"
    )
    (tmp_path / "usernet.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    model, _ = build_model("usernet:make")
    assert len(find_simam_modules(model)) == 1
    model, _ = build_model(f"{tmp_path / 'usernet.py'}:make")
    assert len(find_simam_modules(model)) == 1
    with pytest.raises(InputError, match=r"not a torch\.nn\.Module"):
        build_model("usernet:not_a_module")
    with pytest.raises(InputError, match="not a callable"):
        build_model("usernet:missing")
    with pytest.raises(InputError, match="cannot import"):
        build_model("no_such_pkg_xyz:make")
