"""User-style model factories for CLI tests (MODEL = tests.helpers_models:callable)."""

import torch

from simam_deploy.models.cifar_resnet import cifar_resnet20


def r20_other_lambda():
    torch.manual_seed(0)  # same weights as the zoo's seeded cifar-resnet20 ...
    return cifar_resnet20(e_lambda=10.0)  # ... but a SimAM that computes something else
