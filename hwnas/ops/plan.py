"""Plans: typed descriptions of the computations that :mod:`hwnas.ops` backends fuse.

A model block describes itself to the backends by returning a plan from its ``ops_plan()`` method; the
backends read the plan and never the block's class, so a new runtime plugs in by reading plans, and a new
block takes a fused path by describing itself with the plans below. A plan holds the block's own
parameter tensors and its ``nn.BatchNorm2d`` modules (their running statistics and ``training`` flag are
state a backend must update exactly as eager does); it is rebuilt on every call, so it always sees the
module's current tensors.

Each plan's :meth:`reference` is its meaning in plain PyTorch ops, equal to the block's own ``forward``
(tested); backends fall back to it for parts they cannot batch.

| plan | computes (x: (N, C_in, H, W)) |
|---|---|
| :class:`LiteConvPlan` | ``relu(bn(depthwise3x3(pointwise1x1(x))))`` on C channels (CDNet/OSNet LiteConv) |
| :class:`BranchPlan` | its LiteConvs in sequence |
| :class:`GatePlan` | ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``, the squeeze-excitation gate |
| :class:`GatedBranchesPlan` | ``sum_b gate(branch_b(x))``, the inner part of a CBlock/OSBlock |
| :class:`ConvBNPlan` | ``[relu](bn(conv1x1(x)))``, no conv bias: squeeze, restore, projection shortcut |
| :class:`CBlockPlan` | ``relu(restore(inner(squeeze(x))) + shortcut(x))`` (CDNet's CBlock, seed section 3.1) |
| :class:`BlockChainPlan` | CBlocks in sequence (CDNet's CDBlock with repeat r) |
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.errors import UsageError


def _check_shape(tensor: torch.Tensor, expected: tuple[int, ...], what: str, where: str) -> None:
    if tuple(tensor.shape) != expected:
        raise UsageError(f"{what} has shape {tuple(tensor.shape)}, {where}, expected {expected}")


@dataclass(frozen=True, eq=False)
class LiteConvPlan:
    """1x1 conv (no bias) -> depthwise 3x3 (pad 1, no bias) -> BN -> ReLU on ``channels`` channels.

    pointwise: (C, C, 1, 1); depthwise: (C, 1, 3, 3); bn: ``nn.BatchNorm2d(C)``.
    """

    pointwise: torch.Tensor = field(repr=False)
    depthwise: torch.Tensor = field(repr=False)
    bn: nn.BatchNorm2d

    def __post_init__(self) -> None:
        c = self.bn.num_features
        _check_shape(self.pointwise, (c, c, 1, 1), "pointwise weight", "LiteConvPlan")
        _check_shape(self.depthwise, (c, 1, 3, 3), "depthwise weight", "LiteConvPlan")

    @property
    def channels(self) -> int:
        return self.bn.num_features

    def tensors(self) -> Iterator[torch.Tensor]:
        yield from (self.pointwise, self.depthwise)
        yield from (t for t in (self.bn.weight, self.bn.bias) if t is not None)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(F.conv2d(x, self.pointwise), self.depthwise, padding=1, groups=self.channels)
        return torch.relu(self.bn(z))


@dataclass(frozen=True, eq=False)
class BranchPlan:
    """``len(layers)`` LiteConvs of one width in sequence (a branch of kernel size ``2 * len(layers) + 1``)."""

    layers: tuple[LiteConvPlan, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise UsageError("a branch with no LiteConv, BranchPlan.layers, expected at least one LiteConvPlan")
        widths = {lc.channels for lc in self.layers}
        if len(widths) != 1:
            raise UsageError(f"LiteConvs of widths {sorted(widths)}, BranchPlan.layers, expected one width")

    @property
    def channels(self) -> int:
        return self.layers[0].channels

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, depth: int) -> LiteConvPlan:
        return self.layers[depth]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        for lc in self.layers:
            x = lc.reference(x)
        return x


@dataclass(frozen=True, eq=False)
class GatePlan:
    """Squeeze-excitation channel gate: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    fc1_weight: (hidden, C, 1, 1), fc1_bias: (hidden,), fc2_weight: (C, hidden, 1, 1), fc2_bias: (C,).
    """

    fc1_weight: torch.Tensor = field(repr=False)
    fc1_bias: torch.Tensor = field(repr=False)
    fc2_weight: torch.Tensor = field(repr=False)
    fc2_bias: torch.Tensor = field(repr=False)

    def __post_init__(self) -> None:
        hidden, c = self.fc1_weight.shape[:2]
        _check_shape(self.fc1_weight, (hidden, c, 1, 1), "fc1 weight", "GatePlan")
        _check_shape(self.fc1_bias, (hidden,), "fc1 bias", "GatePlan")
        _check_shape(self.fc2_weight, (c, hidden, 1, 1), "fc2 weight", "GatePlan")
        _check_shape(self.fc2_bias, (c,), "fc2 bias", "GatePlan")

    @property
    def channels(self) -> int:
        return self.fc1_weight.shape[1]

    def tensors(self) -> Iterator[torch.Tensor]:
        yield from (self.fc1_weight, self.fc1_bias, self.fc2_weight, self.fc2_bias)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gate values (N, C, 1, 1) of x (N, C, H, W)."""
        s = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(F.conv2d(torch.relu(F.conv2d(s, self.fc1_weight, self.fc1_bias)),
                                      self.fc2_weight, self.fc2_bias))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.values(x)


@dataclass(frozen=True, eq=False)
class GatedBranchesPlan:
    """``sum_b gate(branch_b(x))``: branches of one width sharing one gate (x and the result: (N, C, H, W))."""

    branches: tuple[BranchPlan, ...]
    gate: GatePlan

    def __post_init__(self) -> None:
        if not self.branches:
            raise UsageError("no branch, GatedBranchesPlan.branches, expected at least one BranchPlan")
        widths = {b.channels for b in self.branches} | {self.gate.channels}
        if len(widths) != 1:
            raise UsageError(f"branch and gate widths {sorted(widths)}, GatedBranchesPlan, expected one width")

    @property
    def channels(self) -> int:
        return self.gate.channels

    @property
    def training(self) -> bool:
        """Whether any BN normalises with batch statistics (nothing can be folded then)."""
        return any(lc.bn.training for b in self.branches for lc in b.layers)

    def tensors(self) -> Iterator[torch.Tensor]:
        for b in self.branches:
            for lc in b.layers:
                yield from lc.tensors()
        yield from self.gate.tensors()

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for branch in self.branches:
            y = self.gate.reference(branch.reference(x))
            out = y if out is None else out + y
        return out


@dataclass(frozen=True, eq=False)
class ConvBNPlan:
    """``bn(conv1x1(x))``, ReLU after it when ``relu``; weight: (C_out, C_in, 1, 1), no conv bias."""

    weight: torch.Tensor = field(repr=False)
    bn: nn.BatchNorm2d
    relu: bool

    def __post_init__(self) -> None:
        _check_shape(self.weight, (self.bn.num_features, self.weight.shape[1], 1, 1), "conv weight", "ConvBNPlan")

    @property
    def out_channels(self) -> int:
        return self.bn.num_features

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(F.conv2d(x, self.weight))
        return torch.relu(y) if self.relu else y


@dataclass(frozen=True, eq=False)
class CBlockPlan:
    """``relu(restore(inner(squeeze(x))) + shortcut(x))``; ``shortcut`` None is the identity (C_in = C_out)."""

    squeeze: ConvBNPlan
    inner: GatedBranchesPlan
    restore: ConvBNPlan
    shortcut: Optional[ConvBNPlan]

    def __post_init__(self) -> None:
        if self.squeeze.out_channels != self.inner.channels or self.restore.weight.shape[1] != self.inner.channels:
            raise UsageError(f"squeeze -> {self.squeeze.out_channels}, branches on {self.inner.channels} and restore "
                             f"from {self.restore.weight.shape[1]} channels, CBlockPlan, expected one width")

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut.reference(x)
        return torch.relu(self.restore.reference(self.inner.reference(self.squeeze.reference(x))) + shortcut)


@dataclass(frozen=True, eq=False)
class BlockChainPlan:
    """CBlocks applied in sequence (CDNet's CDBlock: r repeats of a CBlock)."""

    blocks: tuple[CBlockPlan, ...]

    def __post_init__(self) -> None:
        if not self.blocks:
            raise UsageError("no block, BlockChainPlan.blocks, expected at least one CBlockPlan")

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block.reference(x)
        return x


Plan = Union[LiteConvPlan, BranchPlan, GatePlan, GatedBranchesPlan, ConvBNPlan, CBlockPlan, BlockChainPlan]


@runtime_checkable
class DescribesPlan(Protocol):
    """A module that describes its computation to the backends."""

    def ops_plan(self) -> Plan: ...


def plan_of(module: object) -> Optional[Plan]:
    """``module.ops_plan()``, or None for a module that does not describe itself (backends then run it eagerly)."""
    describe = getattr(module, "ops_plan", None)
    return describe() if callable(describe) else None


def gated_branches_plan(branches: Sequence[object], gate: object) -> Optional[GatedBranchesPlan]:
    """The plan of ``sum_b gate(branch_b(x))`` when every branch describes a :class:`BranchPlan` and the gate a
    :class:`GatePlan` of one width; None otherwise (the caller then runs the modules eagerly)."""
    stacks = [plan_of(b) for b in branches]
    gate_plan = plan_of(gate)
    if not stacks or not isinstance(gate_plan, GatePlan) or not all(isinstance(s, BranchPlan) for s in stacks):
        return None
    if any(s.channels != gate_plan.channels for s in stacks):
        return None
    return GatedBranchesPlan(tuple(stacks), gate_plan)


def block_chain(module: object) -> Optional[tuple[CBlockPlan, ...]]:
    """The CBlocks a supernet candidate runs, in order (one CBlock, or a chain); None if it has no such plan."""
    plan = plan_of(module)
    if isinstance(plan, CBlockPlan):
        return (plan,)
    if isinstance(plan, BlockChainPlan):
        return plan.blocks
    return None


__all__ = ["BlockChainPlan", "BranchPlan", "CBlockPlan", "ConvBNPlan", "DescribesPlan", "GatePlan",
           "GatedBranchesPlan", "LiteConvPlan", "Plan", "block_chain", "gated_branches_plan", "plan_of"]
