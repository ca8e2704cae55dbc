"""The model zoo (installed as simam_deploy.models). ``ZOO`` maps a name to its entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from simam_deploy.models.cifar_resnet import cifar_resnet20, cifar_resnet56
from simam_deploy.models.imagenet_resnet import resnet18, resnet50
from simam_deploy.models.mobilenetv2 import mobilenetv2


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, int, int, int]  # default export shape, NCHW
    e_lambda: float
    num_classes: int
    description: str


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            "cifar-resnet20",
            cifar_resnet20,
            (1, 3, 32, 32),
            1e-4,
            100,
            "CIFAR ResNet-20, SimAM after conv2 of each basic block (authors' checkpoint layout)",
        ),
        ZooEntry(
            "cifar-resnet56",
            cifar_resnet56,
            (1, 3, 32, 32),
            1e-4,
            100,
            "CIFAR ResNet-56, SimAM after conv2 of each basic block",
        ),
        ZooEntry(
            "resnet18",
            resnet18,
            (1, 3, 224, 224),
            0.1,
            1000,
            "ImageNet ResNet-18, SimAM after the 3x3 conv2 of each basic block",
        ),
        ZooEntry(
            "resnet50",
            resnet50,
            (1, 3, 224, 224),
            0.1,
            1000,
            "ImageNet ResNet-50, SimAM after the 3x3 conv2 of each bottleneck",
        ),
        ZooEntry(
            "mobilenetv2",
            mobilenetv2,
            (1, 3, 224, 224),
            0.1,
            1000,
            "ImageNet MobileNetV2, SimAM after each depthwise conv (before its BN)",
        ),
    ]
}
