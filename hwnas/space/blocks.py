"""Building blocks of the CNet/CDNet search space (DESIGN section 1).

Every block keeps the exact layer structure of the seed so that FLOPs and parameter counts reproduce
the paper. The compute-heavy part of a CBlock (its two LiteConv branches and the shared gate) goes
through :mod:`hwnas.ops`, so fused kernels replace it without touching this file. Each block describes
its computation to the ops backends with ``ops_plan()`` (a :mod:`hwnas.ops.plan` plan holding the block's
own tensors and BN modules); the backends read plans, never these classes.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from hwnas import ops
from hwnas._limits import MAX_WIDTH_MULT
from hwnas.errors import UsageError
from hwnas.ops import plan


def conv_bn_relu(cin: int, cout: int, kernel_size: int = 1, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU): the unit the stem, squeeze, restore and shortcuts share."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_bn_plan(unit: nn.Sequential) -> plan.ConvBNPlan:
    """The plan of a 1x1 :func:`conv_bn_relu` unit: [conv, BN(, ReLU)]."""
    return plan.ConvBNPlan(unit[0].weight, unit[1], relu=len(unit) > 2)


class Stem(nn.Sequential):
    """7x7 stride-2 conv + BN + ReLU, then 3x3 stride-2 max-pool: H x W -> H/4 x W/4."""

    def __init__(self, out_channels: int, in_channels: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )


class DownSample(nn.Sequential):
    """1x1 conv + BN + ReLU (c -> c), then 2x2 stride-2 average pool."""

    def __init__(self, channels: int) -> None:
        super().__init__(conv_bn_relu(channels, channels), nn.AvgPool2d(2, stride=2))


class LiteConv(nn.Module):
    """1x1 conv (no bias) -> depthwise 3x3 (pad 1, no bias) -> BN -> ReLU, on ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.depthwise(self.pointwise(x))))

    def ops_plan(self) -> plan.LiteConvPlan:
        return plan.LiteConvPlan(self.pointwise.weight, self.depthwise.weight, self.bn)


class Branch(nn.Sequential):
    """``kernel_size // 2`` stacked LiteConvs: the receptive field of the stack is ``kernel_size``."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        if kernel_size not in (3, 5, 7, 9):
            raise UsageError(f"branch kernel size {kernel_size}, Branch, expected 3, 5, 7 or 9")
        super().__init__(*(LiteConv(channels) for _ in range(kernel_size // 2)))
        self.kernel_size = kernel_size

    def ops_plan(self) -> plan.BranchPlan:
        return plan.BranchPlan(tuple(lc.ops_plan() for lc in self))


class ChannelGate(nn.Module):
    """Squeeze-excitation gate shared by both branches of a CBlock.

    GAP -> 1x1 conv c -> c // reduction (bias) -> ReLU -> 1x1 conv -> c (bias) -> sigmoid -> multiply.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gate values, shape (N, C, 1, 1)."""
        s = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)

    def ops_plan(self) -> plan.GatePlan:
        return plan.GatePlan(self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)


class CBlock(nn.Module):
    """The combined two-branch block: squeeze, two LiteConv stacks, shared gate, restore, residual.

    ``out = relu(restore(gate(branch_k1(s)) + gate(branch_k2(s))) + shortcut(x))`` with
    ``s = squeeze(x)`` and ``mid = out_channels // 4``.
    """

    def __init__(self, in_channels: int, out_channels: int, k1: int, k2: int) -> None:
        super().__init__()
        mid = out_channels // 4
        self.in_channels, self.out_channels, self.mid_channels = in_channels, out_channels, mid
        self.kernel_sizes = (k1, k2)
        self.squeeze = conv_bn_relu(in_channels, mid)
        self.branches = nn.ModuleList([Branch(mid, k1), Branch(mid, k2)])
        self.gate = ChannelGate(mid)
        self.restore = conv_bn_relu(mid, out_channels, relu=False)
        self.shortcut: nn.Module = (
            nn.Identity() if in_channels == out_channels else conv_bn_relu(in_channels, out_channels, relu=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = ops.gated_branch_sum(self.squeeze(x), self.branches, self.gate)
        return torch.relu(self.restore(mixed) + self.shortcut(x))

    def ops_plan(self) -> plan.CBlockPlan:
        inner = plan.GatedBranchesPlan(tuple(b.ops_plan() for b in self.branches), self.gate.ops_plan())
        shortcut = None if isinstance(self.shortcut, nn.Identity) else _conv_bn_plan(self.shortcut)
        return plan.CBlockPlan(_conv_bn_plan(self.squeeze), inner, _conv_bn_plan(self.restore), shortcut)


class CDBlock(nn.Sequential):
    """``r`` CBlocks in sequence (CDNet's searchable layer); the first maps in -> out."""

    def __init__(self, in_channels: int, out_channels: int, k1: int, k2: int, r: int = 1) -> None:
        if r not in (1, 2):
            raise UsageError(f"repeat r={r}, CDBlock, expected 1 or 2")
        super().__init__(*(CBlock(in_channels if i == 0 else out_channels, out_channels, k1, k2) for i in range(r)))
        self.in_channels, self.out_channels = in_channels, out_channels

    def ops_plan(self) -> plan.BlockChainPlan:
        return plan.BlockChainPlan(tuple(block.ops_plan() for block in self))


def scaled_planes(width_mult: float, base: Sequence[int] = (64, 256, 384, 512)) -> list[int]:
    """Channel widths under width multiplier beta: ``floor(p * beta / 4) * 4``."""
    if not (isinstance(width_mult, (int, float)) and not isinstance(width_mult, bool) and math.isfinite(width_mult)
            and width_mult > 0):
        raise UsageError(f"width multiplier {width_mult!r}, width_mult, expected a finite number > 0")
    if width_mult > MAX_WIDTH_MULT:
        raise UsageError(f"width multiplier {width_mult:g}, width_mult, expected at most {MAX_WIDTH_MULT:g} "
                         f"({int(max(base) * MAX_WIDTH_MULT)} channels in the widest stage)")
    planes = [int(p * width_mult / 4) * 4 for p in base]
    if min(planes) < 4:  # every CBlock's gate needs mid // 4 >= 1 channel, i.e. out >= 16 (planes[0] >= 4)
        raise UsageError(f"width multiplier {width_mult:g} gives {planes} channels, width_mult, expected at least "
                         f"{4 / min(base):g} (4 channels in the narrowest stage)")
    return planes
