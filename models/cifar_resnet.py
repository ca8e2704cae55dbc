"""CIFAR ResNets with SimAM, laid out so that the SimAM authors' checkpoints load strictly.

Stem conv3x3(3->16)+BN+ReLU; three stages of basic blocks (16, 32, 64 channels, stride 2 at the
first block of stages 2 and 3); 1x1 conv + BN projection shortcut where the shape changes;
global average pool; linear. Each block's ``conv2`` is ``Sequential(conv3x3, SimAM)`` so that
weights read ``layerX.Y.conv2.0.weight`` as in the authors' files.
"""

from __future__ import annotations

import torch
from torch import nn

from simam_deploy.nn import CIFAR_LAMBDA, SimAM


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class CifarBasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, e_lambda: float) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Sequential(_conv3x3(c_out, c_out), SimAM(e_lambda))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 100, e_lambda: float = CIFAR_LAMBDA) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = _conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        widths, c_in = (16, 32, 64), 16
        for stage, width in enumerate(widths, start=1):
            layers = []
            for i in range(blocks):
                stride = 2 if (stage > 1 and i == 0) else 1
                layers.append(CifarBasicBlock(c_in, width, stride, e_lambda))
                c_in = width
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.avgpool(x), 1))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def cifar_resnet20(num_classes: int = 100, e_lambda: float = CIFAR_LAMBDA) -> CifarResNet:
    return CifarResNet(20, num_classes, e_lambda)


def cifar_resnet56(num_classes: int = 100, e_lambda: float = CIFAR_LAMBDA) -> CifarResNet:
    return CifarResNet(56, num_classes, e_lambda)
