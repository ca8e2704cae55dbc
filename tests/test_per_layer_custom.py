"""--per-layer on a user's own SimAM class (not simam_deploy.nn.SimAM): blocks are found by the SimAM
formula in the graph, as fuse finds them, and named by module path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simam_deploy.export import export_onnx
from simam_deploy.validate import validate
from tests.test_per_layer import change_lambda

SPEC = "tests.test_per_layer_custom:custom_net"


class AuthorsStyleSimam(nn.Module):
    """SimAM as the paper's reference code writes it, in a class of the user's own."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.size()
        n = w * h - 1
        x_minus_mu_square = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = (
            x_minus_mu_square / (4 * (x_minus_mu_square.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda))
            + 0.5
        )
        return x * torch.sigmoid(y)


class CustomNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.attn = AuthorsStyleSimam()
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), AuthorsStyleSimam())
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.attn(torch.relu(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def custom_net() -> nn.Module:
    torch.manual_seed(0)
    return CustomNet().eval()


@pytest.mark.parametrize(("exporter", "opset"), [("dynamo", 18), ("torchscript", 17)])
def test_users_own_simam_class_is_found_and_named(tmp_path, exporter, opset):
    path = tmp_path / "custom.onnx"
    export_onnx(custom_net(), path, opset=opset, input_shape=(1, 3, 12, 12), exporter=exporter)
    clean = validate(path, SPEC, per_layer=True, seeds=(0,), input_shape=(2, 3, 12, 12)).to_dict()
    assert clean["passed"] and clean["first_divergence"] is None
    assert [layer["module"] for layer in clean["layers"]] == ["attn", "body.2"]
    assert {layer["kind"] for layer in clean["layers"]} == {"decomposed"}

    bad = tmp_path / "bad.onnx"
    change_lambda(path, bad, "/body/2")
    broken = validate(bad, SPEC, per_layer=True, seeds=(0,), input_shape=(2, 3, 12, 12)).to_dict()
    assert broken["first_divergence"] == "body.2"
    assert [layer["status"] for layer in broken["layers"]] == ["ok", "diverges"]
