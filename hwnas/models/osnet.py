"""OSNet (Zhou et al., ICCV 2019), the architecture of torchreid's ``osnet_x*`` models, written anew.

Used as the seed's baseline (Table 3, Table 5) and, with an FBLNeck in place of its own head, the
seed's Table 2. Channels 64-256-384-512 times the width; OSBlocks with four LiteConv streams
(depth 1..4) sharing a channel gate (reduction 16).
"""
from __future__ import annotations

import torch
from torch import nn

from hwnas.errors import UsageError
from hwnas.models._registry import register_model
from hwnas.models.necks import NECKS, OSNetHead, build_neck
from hwnas.models.reid import ReIDModel
from hwnas.ops import gated_branch_sum
from hwnas.space.blocks import Branch, ChannelGate, DownSample, Stem, conv_bn_relu

OSNET_WIDTHS: dict[float, tuple[int, int, int, int]] = {
    1.0: (64, 256, 384, 512),
    0.75: (48, 192, 288, 384),
    0.5: (32, 128, 192, 256),
    0.25: (16, 64, 96, 128),
}


class OSBlock(nn.Module):
    """Omni-scale bottleneck: 1x1 squeeze, streams of 1..4 LiteConvs, shared gate, 1x1 restore, residual."""

    def __init__(self, in_channels: int, out_channels: int, streams: int = 4) -> None:
        super().__init__()
        mid = out_channels // 4
        self.squeeze = conv_bn_relu(in_channels, mid)
        self.branches = nn.ModuleList(Branch(mid, 2 * t + 1) for t in range(1, streams + 1))
        self.gate = ChannelGate(mid, reduction=16)
        self.restore = conv_bn_relu(mid, out_channels, relu=False)
        self.shortcut: nn.Module = (
            nn.Identity() if in_channels == out_channels else conv_bn_relu(in_channels, out_channels, relu=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = gated_branch_sum(self.squeeze(x), self.branches, self.gate)
        return torch.relu(self.restore(mixed) + self.shortcut(x))


class OSNetBackbone(nn.Module):
    """conv1 (stem), conv2..conv4 with two OSBlocks each and transitions after conv2 and conv3."""

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        if width_mult not in OSNET_WIDTHS:
            raise UsageError(f"width_mult {width_mult}, osnet width_mult, expected one of "
                             f"{', '.join(map(str, OSNET_WIDTHS))}")
        c = OSNET_WIDTHS[width_mult]
        self.planes = c
        self.feature_channels = (c[2], c[3])
        self.stem = Stem(c[0])
        self.stages = nn.ModuleList(nn.Sequential(OSBlock(c[s - 1], c[s]), OSBlock(c[s], c[s])) for s in (1, 2, 3))
        self.transitions = nn.ModuleList(DownSample(c[s]) for s in (1, 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        x = self.transitions[0](self.stages[0](x))
        mid = self.transitions[1](self.stages[1](x))
        return [mid, self.stages[2](mid)]


@register_model
def osnet(*, width_mult: float = 1.0, num_classes: int = 751, neck: str = "osnet") -> ReIDModel:
    """OSNet x1.0/x0.75/x0.5/x0.25; ``neck='osnet'`` is its own head, or one of bnneck/blneck/fblneck."""
    backbone = OSNetBackbone(width_mult)
    if neck == "osnet":
        head: nn.Module = OSNetHead(backbone.feature_channels[1], num_classes)
    elif neck in NECKS:
        head = build_neck(neck, backbone.feature_channels, num_classes)
    else:
        raise UsageError(f"unknown neck {neck!r}, osnet neck option, expected 'osnet' or one of {', '.join(NECKS)}")
    config = {"width_mult": width_mult, "num_classes": num_classes, "neck": neck}
    return ReIDModel(backbone, head, "osnet", config)
