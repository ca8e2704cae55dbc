"""SimAM as public repositories write it, each form in our own code, and how each one exports.

Every class below re-states one formula variant found in public code (the module structure, the way
H*W is read, the tensor layout and the exporter settings carry over; no code is copied). The source
of each form is listed in ``FORMS`` and in docs/bring-your-own.md. Networks and inputs are tiny so the
whole corpus exports, fuses, converts and builds in CI in well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

# -- the forms ----------------------------------------------------------------------------------


class AuthorsSimAM(nn.Module):
    """ZjjConan/SimAM (the authors): an ``nn.Sigmoid`` member, ``n = w*h - 1`` from ``x.size()``,
    the squared deviation summed over ``dim=[2, 3]``. Copied unchanged into mmyolo plugins,
    MSPANet, and most YOLO forks."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.activaton = nn.Sigmoid()  # (sic) the public spelling
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.size()
        n = w * h - 1
        sq = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = sq / (4 * (sq.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.activaton(y)


class JittorTwoStepSimAM(nn.Module):
    """The authors' Jittor port: the mean and the sum are taken over H, then W, in two steps."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.act = nn.Sigmoid()
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.size()
        n = w * h - 1
        sq = (x - x.mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)).pow(2)
        total = sq.sum(dim=2, keepdim=True).sum(dim=3, keepdim=True)
        return x * self.act(sq / (4 * (total / n + self.e_lambda)) + 0.5)


class FunctionalSimAM(nn.Module):
    """YOLOv5/YOLOv7 forks (models/common.py): no member activation, ``torch.sigmoid``,
    ``n = h * w - 1``."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.size()
        n = h * w - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5)


class ShapeSliceSimAM(nn.Module):
    """MegBox-style: ``h, w = x.shape[-2:]`` (a Shape slice, not Gathers), ``pow(., 2)``."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.act = nn.Sigmoid()
        self.e_lambda = e_lambda

    def forward(self, x):
        h, w = x.shape[-2:]
        n = w * h - 1
        sq = torch.pow(x - x.mean(dim=[2, 3], keepdim=True), 2)
        return x * self.act(sq / (4 * (sq.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5)


class NamedStepsSimAM(nn.Module):
    """Named steps, as YOLO add-on snippets and the speaker-verification blocks write it (X.shape
    products, ``v = d.sum / n``, ``E_inv = d / (4 * (v + lambda)) + 0.5``, the ``.sigmoid()`` method)."""

    def __init__(self, lambda_p: float = 1e-4) -> None:
        super().__init__()
        self.lambda_p = lambda_p

    def forward(self, X):
        n = X.shape[2] * X.shape[3] - 1
        d = (X - X.mean(dim=(2, 3), keepdim=True)).pow(2)
        v = d.sum(dim=(2, 3), keepdim=True) / n
        E_inv = d / (4 * (v + self.lambda_p)) + 0.5
        return X * E_inv.sigmoid()


class EpsDivisorSimAM(nn.Module):
    """Detection-head add-on ("unbiased-ish"): the divisor is ``h * w - 1 + 1e-12`` and the
    squared deviation is written out twice, once for the variance and once for the energy."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.shape
        mu = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mu) ** 2).sum(dim=(2, 3), keepdim=True) / (h * w - 1 + 1e-12)
        e = (x - mu) ** 2 / (4 * (var + self.e_lambda)) + 0.5
        return x * torch.sigmoid(e)


class TorchVarSimAM(nn.Module):
    """``torch.var`` over H, W (issue 23's reports; timm-style rewrites)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * (torch.var(x, dim=(2, 3), keepdim=True) + self.e_lambda)) + 0.5)


class StdSquaredSimAM(nn.Module):
    """``x.std(...) ** 2`` as the variance (issue 23's reports)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        d = (x - x.mean(dim=[2, 3], keepdim=True)) ** 2
        v = x.std(dim=[2, 3], keepdim=True) ** 2
        return x * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


class EinsumNumelSimAM(nn.Module):
    """Sums written with ``einsum`` and the count with ``numel`` (issue 23's reports)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        n = x[0, 0].numel() - 1
        mu = torch.einsum("nchw->nc", x)[:, :, None, None] / (n + 1)
        d = (x - mu) ** 2
        v = torch.einsum("nchw->nc", d)[:, :, None, None] / n
        return x * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


class NearMissChannelSimAM(nn.Module):
    """A public YOLO fork's slip (not SimAM): the energy's numerator is the summed deviation, so the
    attention is one value per channel. It must stay unfused and be explained in "rejected"."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.size()
        n = w * h - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        s = torch.sum(d, dim=[2, 3], keepdim=True)
        return x * torch.sigmoid(s / (4 * (s / n + self.e_lambda)) + 0.5)


class NearMissMeanOverHTwice(nn.Module):
    """The two-step form with a slip: the mean is taken over H twice (W never)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        _, _, h, w = x.size()
        d = (x - x.mean(dim=2, keepdim=True).mean(dim=2, keepdim=True)).pow(2)
        total = d.sum(dim=2, keepdim=True).sum(dim=3, keepdim=True)
        return x * torch.sigmoid(d / (4 * (total / (w * h - 1) + self.e_lambda)) + 0.5)


class NearMissEinsumPerSample(nn.Module):
    """The einsum form with a slip: the variance sums over C, H and W (one value per sample)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        n = x[0, 0].numel() - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)) ** 2
        v = torch.einsum("nchw->n", d)[:, None, None, None] / n
        return x * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


# -- networks ------------------------------------------------------------------------------------


class ImageNet(nn.Module):
    """conv -> attention -> conv -> attention -> conv; two blocks so every count is checked."""

    def __init__(self, make: Callable[[float], nn.Module]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU())
        self.att1 = make(1e-4)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.att2 = make(0.1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.att2(self.mid(self.att1(self.stem(x)))))


class SpeakerBlock(nn.Module):
    """wespeaker / 3D-Speaker SimAM-ResNet basic block: SimAM is a method of the block, applied to
    the residual branch before the shortcut is added."""

    def __init__(self, channels: int, lambda_p: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.lambda_p = lambda_p

    def simam(self, X):
        n = X.shape[2] * X.shape[3] - 1
        d = (X - X.mean(dim=[2, 3], keepdim=True)).pow(2)
        v = d.sum(dim=[2, 3], keepdim=True) / n
        return X * torch.sigmoid(d / (4 * (v + self.lambda_p)) + 0.5)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.simam(self.bn2(self.conv2(out)))
        return torch.relu(out + x)


class SpeakerNet(nn.Module):
    """Filterbank features [B, T, F] in, an embedding out; SimAM runs on [B, C, F, T] inside."""

    def __init__(self, make: Callable[[float], nn.Module] | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.block1 = SpeakerBlock(4, 1e-4)
        self.block2 = SpeakerBlock(4, 1e-4)
        self.embed = nn.Linear(4 * 2, 6)

    def forward(self, feats):
        x = feats.permute(0, 2, 1).unsqueeze(1)  # (B, T, F) -> (B, 1, F, T)
        x = self.block2(self.block1(torch.relu(self.stem(x))))
        stats = torch.cat([x.mean(dim=(2, 3)), x.flatten(2).std(dim=2)], dim=1)  # statistics pooling
        return self.embed(stats)


# -- export settings -----------------------------------------------------------------------------


@dataclass
class Export:
    """How a repository's own export script calls torch.onnx.export."""

    exporter: str  # dynamo | torchscript
    opset: int
    input_name: str
    output_name: str
    shape: tuple[int, ...]
    dynamic: dict[int, str] = field(default_factory=dict)  # axis -> name (TorchScript dynamic_axes)
    onnxslim: bool = False


@dataclass
class Form:
    name: str
    source: str  # where the form comes from
    build: Callable[[], nn.Module]
    export: Export
    expect: list[tuple[float, int]]  # (e_lambda, unbiased) fuse must read, in graph order
    reject: str | None = None  # near miss: a fragment of the reason "rejected" must give


def image_net(cls) -> Callable[[], nn.Module]:
    return lambda: ImageNet(cls).eval()


PAPER = [(1e-4, 1), (0.1, 1)]
IMAGE = (1, 3, 12, 10)
HW = {0: "batch", 2: "h", 3: "w"}
YOLO_AXES = {0: "batch", 2: "height", 3: "width"}
DYNAMO = Export("dynamo", 18, "x", "y", IMAGE, HW)  # torch 2.13's default exporter and opset


def yolo(opset: int, onnxslim: bool = False) -> Export:
    return Export("torchscript", opset, "images", "output0", IMAGE, YOLO_AXES, onnxslim)


FORMS = [
    Form("authors-dynamo", "ZjjConan/SimAM simam_module; torch defaults (dynamo, opset 18), dynamic H/W",
         image_net(AuthorsSimAM), DYNAMO, PAPER),
    Form("mmyolo-mmdeploy", "mmyolo SimAM plugin (the authors' code); mmdeploy's ONNX config: "
         "TorchScript opset 11, input 'input', dynamic batch/height/width", image_net(AuthorsSimAM),
         Export("torchscript", 11, "input", "output", IMAGE, YOLO_AXES), PAPER),
    Form("jittor-two-step", "ZjjConan/SimAM Jittor port: mean and sum over H, then W; dynamo, "
         "dynamic batch/H/W", image_net(JittorTwoStepSimAM), DYNAMO, PAPER),
    Form("yolov5-functional", "YOLOv5/v7 forks' common.py SimAM (torch.sigmoid); yolov5 export.py: "
         "TorchScript opset 17, 'images' -> 'output0', dynamic batch/height/width",
         image_net(FunctionalSimAM), yolo(17), PAPER),
    Form("ultralytics-onnxslim", "YOLO add-on SimAM with named steps (v, E_inv, .sigmoid()); the "
         "ultralytics exporter: TorchScript opset 19, 'images', dynamic batch/height/width, then onnxslim",
         image_net(NamedStepsSimAM), yolo(19, onnxslim=True), PAPER),
    Form("megbox-shape-slice", "MegBox SimAM (h, w = x.shape[-2:]); dynamo, dynamic batch/H/W",
         image_net(ShapeSliceSimAM), DYNAMO, PAPER),
    Form("speaker-simam-resnet", "wespeaker SimAM-ResNet / 3D-Speaker: SimAM as a block method on "
         "[B, C, F, T] from fbank [B, T, 80]; wespeaker export_onnx.py: TorchScript opset 14, 'feats' "
         "dynamic B/T -> 'embs'", lambda: SpeakerNet().eval(),
         Export("torchscript", 14, "feats", "embs", (1, 20, 16), {0: "B", 1: "T"}), [(1e-4, 1), (1e-4, 1)]),
    Form("eps-divisor", "detection-head SimAM with divisor h*w-1+1e-12 and the square written twice; "
         "dynamo, dynamic batch/H/W", image_net(EpsDivisorSimAM), DYNAMO, PAPER),
    Form("torch-var-dynamic", "torch.var (issue 23); dynamo, dynamic batch/H/W",
         image_net(TorchVarSimAM), DYNAMO, PAPER),
    Form("std-squared-dynamic", "x.std() ** 2 (issue 23); dynamo, dynamic batch/H/W",
         image_net(StdSquaredSimAM), DYNAMO, PAPER),
    Form("einsum-numel", "einsum sums and a numel count (issue 23); TorchScript opset 17, dynamic "
         "batch/H/W", image_net(EinsumNumelSimAM), Export("torchscript", 17, "x", "y", IMAGE, HW), PAPER),
]  # fmt: skip

NEAR_MISSES = [
    Form("channel-energy-slip", "a YOLO fork's SimAM whose numerator is the summed deviation",
         image_net(NearMissChannelSimAM), yolo(17), [], reject="numerator comes from ReduceSum"),
    Form("mean-over-h-twice", "the two-step form averaging over H twice", image_net(NearMissMeanOverHTwice),
         DYNAMO, [], reject="the mean is taken over axes [2]"),
    Form("einsum-per-sample", "the einsum form summing the variance over C, H, W",
         image_net(NearMissEinsumPerSample), Export("torchscript", 17, "x", "y", IMAGE, HW), [],
         reject="not one value per channel"),
]  # fmt: skip


# module:callable factories for `validate --reference tests.public_simam_forms:build_<name>`
for _form in FORMS:
    globals()[f"build_{_form.name.replace('-', '_')}"] = _form.build


def export_form(form: Form, path: Path) -> nn.Module:
    """Export ``form``'s network to ``path`` the way its repository does; returns the network."""
    net = form.build()
    spec = form.export
    example = (torch.randn(*spec.shape),)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if spec.exporter == "dynamo":
            dims = {axis: torch.export.Dim.AUTO for axis in spec.dynamic}
            program = torch.onnx.export(
                net, example, dynamo=True, opset_version=spec.opset, input_names=[spec.input_name],
                output_names=[spec.output_name], dynamic_shapes=(dims,) if dims else None, verbose=False,
            )  # fmt: skip
            program.save(str(path))
        else:
            torch.onnx.export(
                net, example, str(path), dynamo=False, opset_version=spec.opset, do_constant_folding=True,
                input_names=[spec.input_name], output_names=[spec.output_name],
                dynamic_axes={spec.input_name: spec.dynamic} if spec.dynamic else None,
            )  # fmt: skip
    if spec.onnxslim:
        import onnx
        import onnxslim

        onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return net
