"""User-style model factories for CLI tests (MODEL = tests.helpers_models:callable)."""

import torch

from simam_deploy.models.cifar_resnet import cifar_resnet20


def r20_other_lambda():
    torch.manual_seed(0)  # same weights as the zoo's seeded cifar-resnet20 ...
    return cifar_resnet20(e_lambda=10.0)  # ... but a SimAM that computes something else


class SpeakerSimAM(torch.nn.Module):
    """A speaker-verification style network: filterbank features [B, T, 80] in, an embedding out.
    SimAM runs on the [B, C, T', F'] maps inside (as in ResNet speaker encoders); the network's own
    input is not an image."""

    def __init__(self, feats: int = 80, channels: int = 8, embed: int = 16) -> None:
        super().__init__()
        from simam_deploy.nn import SimAM

        self.conv1 = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.simam1 = SimAM(1e-4)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.simam2 = SimAM(1e-4)
        self.fc = torch.nn.Linear(channels * ((feats + 1) // 2), embed)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.simam1(torch.relu(self.conv1(x.unsqueeze(1))))  # [B, C, T, F]
        h = self.simam2(torch.relu(self.conv2(h)))  # [B, C, T/2, F/2]
        return self.fc(h.mean(dim=2).flatten(1))  # temporal pooling, then the embedding

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(feats)


class SpeakerFrameWeights(SpeakerSimAM):
    """Two inputs: features [B, T, 80] and per-frame weights [B, T] (e.g. voice activity)."""

    def forward(self, feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.embed(feats * weights.unsqueeze(-1))


def speaker_simam():
    torch.manual_seed(0)
    return SpeakerSimAM()


def speaker_frame_weights():
    torch.manual_seed(0)
    return SpeakerFrameWeights()
