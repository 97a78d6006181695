"""ResNet-50 with last stride 1 and BNNeck: the Bag of Tricks baseline (Luo et al., 2019), written anew."""
from __future__ import annotations

import torch
from torch import nn

from hwnas.models._registry import register_model
from hwnas.models.necks import build_neck
from hwnas.models.reid import ReIDModel


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 x4 expansion, BN after each, projection shortcut when shapes change."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + self.downsample(x))


class ResNet50Backbone(nn.Module):
    """ResNet-50 body (3-4-6-3 bottlenecks); ``last_stride=1`` keeps layer4 at 16x8 for 256x128 input."""

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, last_stride)):
            stage = [Bottleneck(cin, width, stride)] + [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*stage))
            cin = width * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_channels = (1024, 2048)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))
        mid = self.layer3(x)
        return [mid, self.layer4(mid)]


@register_model
def resnet50_bot(*, num_classes: int = 751, neck: str = "bnneck", last_stride: int = 1) -> ReIDModel:
    """BoT baseline: ResNet-50 (last stride 1) + BNNeck; its inference params include the classifier count."""
    backbone = ResNet50Backbone(last_stride)
    config = {"num_classes": num_classes, "neck": neck, "last_stride": last_stride}
    return ReIDModel(backbone, build_neck(neck, backbone.feature_channels, num_classes), "resnet50_bot", config)
