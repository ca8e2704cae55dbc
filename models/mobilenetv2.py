"""ImageNet MobileNetV2 with SimAM where the authors place it: inside each inverted residual's
depthwise stage, right after the depthwise conv and before its BN (conv, SimAM, BN, ReLU6).
Key layout follows torchvision (features.N.conv.M...), classifier is ``Sequential(Linear)``."""

from __future__ import annotations

import torch
from torch import nn

from simam_deploy.nn import IMAGENET_LAMBDA, SimAM

# t (expansion), c (channels), n (repeats), s (first stride)
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _conv_bn_relu6(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, e_lambda: float | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
    ]
    if e_lambda is not None:
        layers.append(SimAM(e_lambda))
    layers += [nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, e_lambda: float) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(c_in, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden, e_lambda=e_lambda),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, e_lambda: float = IMAGENET_LAMBDA) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        c_in = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(c_in, c, s if i == 0 else 1, t, e_lambda))
                c_in = c
        features.append(_conv_bn_relu6(c_in, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenetv2(num_classes: int = 1000, e_lambda: float = IMAGENET_LAMBDA) -> MobileNetV2:
    return MobileNetV2(num_classes, e_lambda)
