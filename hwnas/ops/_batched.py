"""The ``batched`` backend: CBlock branches and supernet candidates as one grouped launch per depth.

BatchNorm is per channel, so every branch (of one CBlock, or of all selected candidates of a supernet
layer) at the same depth runs exactly as one grouped 1x1 conv, one depthwise 3x3 conv and one BN over the
concatenated channels. This is a second reference for the Triton kernels and a fast path on CPU (fewer,
larger kernels). The structure here (planning groups by depth, BN bookkeeping, batching the squeeze and
shortcut convs of candidates that share an input) is reused by the ``triton`` backend, which swaps in
fused kernels through :class:`BranchRunner`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.ops import _eager
from hwnas.ops._dispatch import Backend, register_backend

if TYPE_CHECKING:
    from hwnas.space.blocks import CBlock, ChannelGate


def _blocks():
    """hwnas.space.blocks, imported late: it imports hwnas.ops itself."""
    from hwnas.space import blocks
    return blocks


@dataclass(frozen=True)
class BranchPlan:
    """Branches of ``n_blocks`` CBlocks as groups sorted by depth, deepest first.

    With that order the groups still active at depth d are a prefix, so depth d reads a channel prefix of
    depth d-1's output without a copy. ``groups[g] = (block, branch)``; ``depths[g]`` = LiteConv count.
    """

    groups: tuple[tuple[int, int], ...]
    depths: tuple[int, ...]
    n_blocks: int
    branches: int

    def active(self, depth: int) -> int:
        """Number of groups that have a LiteConv at ``depth`` (0-based)."""
        return sum(1 for d in self.depths if d > depth)

    def finishing(self, depth: int) -> list[int]:
        """Groups whose last LiteConv is at ``depth``."""
        return [g for g, d in enumerate(self.depths) if d == depth + 1]

    def block_major(self) -> list[int]:
        """Group indices in (block, branch) order: the channel order the gate kernels expect."""
        return sorted(range(len(self.groups)), key=lambda g: self.groups[g])


def plan_branches(branch_lists: Sequence[Sequence[nn.Module]]) -> Optional[BranchPlan]:
    """Plan for batching; None when the modules are not same-width Branches of LiteConvs (eager then)."""
    counts = {len(bl) for bl in branch_lists}
    if len(counts) != 1 or not all(isinstance(b, _blocks().Branch) for bl in branch_lists for b in bl):
        return None
    widths = {lc.pointwise.in_channels for bl in branch_lists for b in bl for lc in b}
    if len(widths) != 1:
        return None
    entries = [((i, j), len(b)) for i, bl in enumerate(branch_lists) for j, b in enumerate(bl)]
    entries.sort(key=lambda e: -e[1])  # stable: ties keep (block, branch) order
    return BranchPlan(tuple(e[0] for e in entries), tuple(e[1] for e in entries), len(branch_lists), counts.pop())


def bn_compatible(bns: Sequence[nn.BatchNorm2d]) -> bool:
    """BNs can share one batched normalisation only with the same mode and hyper-parameters."""
    first = bns[0]
    key = (first.training, first.eps, first.momentum, first.track_running_stats, first.affine)
    same = all((b.training, b.eps, b.momentum, b.track_running_stats, b.affine) == key for b in bns)
    if same and first.momentum is None and first.num_batches_tracked is not None:  # cumulative averages
        same = all(int(b.num_batches_tracked) == int(first.num_batches_tracked) for b in bns)
    return same


def _momentum(bn: nn.BatchNorm2d) -> float:
    """Like nn.BatchNorm2d.forward: count the batch, then the running-average factor."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _uses_batch_stats(bn: nn.BatchNorm2d) -> bool:
    return bn.training or bn.running_mean is None


@torch.no_grad()
def update_running_stats(bns: Sequence[nn.BatchNorm2d], mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """Exponential running averages of every BN from the batched (GC,) mean and biased variance."""
    if not (bns[0].training and bns[0].track_running_stats):
        return
    unbiased = var * (count / (count - 1))
    sizes = [bn.num_features for bn in bns]
    for bn, m, v in zip(bns, mean.split(sizes), unbiased.split(sizes)):
        f = _momentum(bn)
        bn.running_mean.mul_(1 - f).add_(m.to(bn.running_mean.dtype), alpha=f)
        bn.running_var.mul_(1 - f).add_(v.to(bn.running_var.dtype), alpha=f)


def check_batch(bns: Sequence[nn.BatchNorm2d], count: int) -> None:
    if _uses_batch_stats(bns[0]) and count <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got {count} "
                         f"(batch x height x width) values per channel")


def bn_affine(bns: Sequence[nn.BatchNorm2d], mean: Optional[torch.Tensor], var: Optional[torch.Tensor],
              count: int) -> torch.Tensor:
    """(3, GC) rows (mean, scale, shift) of the batched BN: ``bn(z) = (z - mean) * scale + shift``.

    mean/var: (GC,) batch statistics (biased var), used in training; eval uses the running buffers.
    Centring before scaling keeps eager's rounding (``z * scale + (shift - mean * scale)`` cancels when
    |mean| >> std). Updates the running statistics like nn.BatchNorm2d; differentiable in mean, var and
    the BN weights.
    """
    check_batch(bns, count)
    if _uses_batch_stats(bns[0]):
        update_running_stats(bns, mean.detach(), var.detach(), count)
    else:
        mean = torch.cat([b.running_mean for b in bns])
        var = torch.cat([b.running_var for b in bns])
    inv = torch.rsqrt(var + bns[0].eps)
    if bns[0].affine:
        weight, bias = torch.cat([b.weight for b in bns]), torch.cat([b.bias for b in bns])
        return torch.stack([mean, weight * inv, bias])
    return torch.stack([mean, inv, torch.zeros_like(inv)])


def batch_norm_multi(z: torch.Tensor, bns: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """``cat_i bns[i](z_i)`` over channel groups of z, as one F.batch_norm (running stats copied back)."""
    check_batch(bns, z.numel() // z.shape[1])
    batch = _uses_batch_stats(bns[0])
    track = bns[0].training and bns[0].track_running_stats
    rm = torch.cat([b.running_mean for b in bns]) if bns[0].running_mean is not None else None
    rv = torch.cat([b.running_var for b in bns]) if bns[0].running_var is not None else None
    factor = [_momentum(b) for b in bns][0] if track else 0.0
    weight = torch.cat([b.weight for b in bns]) if bns[0].affine else None
    bias = torch.cat([b.bias for b in bns]) if bns[0].affine else None
    out = F.batch_norm(z, rm if not batch or track else None, rv if not batch or track else None,
                       weight, bias, batch, factor, bns[0].eps)
    if track:
        sizes = [b.num_features for b in bns]
        with torch.no_grad():
            for b, m, v in zip(bns, rm.split(sizes), rv.split(sizes)):
                b.running_mean.copy_(m)
                b.running_var.copy_(v)
    return out


def conv_bn_multi(x: torch.Tensor, units: Sequence[nn.Sequential]) -> Optional[list[torch.Tensor]]:
    """Several conv(no bias)+BN(+ReLU) units on the same input as one conv and one BN; None if not batchable."""
    convs = [u[0] for u in units]
    bns = [u[1] for u in units]
    relus = [len(u) > 2 for u in units]
    if not all(isinstance(c, nn.Conv2d) and c.bias is None and c.groups == 1 and c.stride == convs[0].stride
               and c.kernel_size == convs[0].kernel_size and c.padding == convs[0].padding for c in convs):
        return None
    if not (all(isinstance(b, nn.BatchNorm2d) for b in bns) and bn_compatible(bns)):
        return None
    c0 = convs[0]
    y = batch_norm_multi(F.conv2d(x, torch.cat([c.weight for c in convs]), None, c0.stride, c0.padding), bns)
    outs = list(y.split([c.out_channels for c in convs], dim=1))
    return [torch.relu(o) if r else o for o, r in zip(outs, relus)]


BranchRunner = Callable[[Sequence[torch.Tensor], BranchPlan, Sequence[Sequence[nn.Module]],
                         Sequence[nn.Module]], list[torch.Tensor]]


def _depth_inputs(inputs: Sequence[torch.Tensor], plan: BranchPlan) -> tuple[torch.Tensor, bool]:
    """Depth-0 input: the shared tensor itself, or each group's block input concatenated (groups order)."""
    if all(t is inputs[0] for t in inputs):
        return inputs[0], True
    return torch.cat([inputs[b] for b, _ in plan.groups], dim=1), False


def torch_branch_runner(inputs: Sequence[torch.Tensor], plan: BranchPlan,
                        branch_lists: Sequence[Sequence[nn.Module]],
                        gates: Sequence[ChannelGate]) -> list[torch.Tensor]:
    """PyTorch grouped-conv implementation of ``[sum_j gate_b(branch_bj(x_b)) for b]``."""
    x, shared = _depth_inputs(inputs, plan)
    finals: dict[int, torch.Tensor] = {}
    for depth in range(plan.depths[0]):
        g_active = plan.active(depth)
        lcs = [branch_lists[b][j][depth] for b, j in plan.groups[:g_active]]
        c = lcs[0].pointwise.in_channels
        w_pw = torch.cat([lc.pointwise.weight for lc in lcs])
        w_dw = torch.cat([lc.depthwise.weight for lc in lcs])
        groups = 1 if (depth == 0 and shared) else g_active
        if depth > 0 and x.shape[1] != g_active * c:
            x = x[:, :g_active * c]  # the groups still active are a channel prefix
        z = F.conv2d(F.conv2d(x, w_pw, groups=groups), w_dw, padding=1, groups=g_active * c)
        x = torch.relu(batch_norm_multi(z, [lc.bn for lc in lcs]))
        for g in plan.finishing(depth):
            finals[g] = x[:, g * c:(g + 1) * c]
    outs = []
    for b in range(plan.n_blocks):
        branch_out = [finals[g] for g in plan.block_major() if plan.groups[g][0] == b]
        gated = gates[b](torch.cat(branch_out, dim=0)).chunk(len(branch_out), dim=0)
        out = gated[0]
        for y in gated[1:]:
            out = out + y
        outs.append(out)
    return outs


def _batchable(branch_lists: Sequence[Sequence[nn.Module]], gates: Sequence[nn.Module]) -> Optional[BranchPlan]:
    plan = plan_branches(branch_lists)
    if plan is None or not all(isinstance(g, _blocks().ChannelGate) for g in gates):
        return None
    for depth in range(plan.depths[0]):
        bns = [branch_lists[b][j][depth].bn for b, j in plan.groups[:plan.active(depth)]]
        if not bn_compatible(bns):
            return None
    return plan


def make_gated_branch_sum(runner: BranchRunner) -> Callable:
    """The ``gated_branch_sum`` op of a backend built on ``runner`` (eager fallback if not batchable)."""
    def gated_branch_sum(x: torch.Tensor, branches: Sequence[nn.Module], gate: nn.Module) -> torch.Tensor:
        plan = _batchable([branches], [gate])
        if plan is None:
            return _eager.gated_branch_sum(x, branches, gate)
        return runner([x], plan, [branches], [gate])[0]
    return gated_branch_sum


def cblocks_forward(blocks: Sequence[CBlock], inputs: Sequence[torch.Tensor],
                    runner: BranchRunner) -> list[torch.Tensor]:
    """Several CBlocks at once; squeeze and shortcut convs of blocks that share an input form one conv."""
    shared = len(blocks) > 1 and all(t is inputs[0] for t in inputs)
    projections = [b.shortcut for b in blocks if not isinstance(b.shortcut, nn.Identity)]
    batched = conv_bn_multi(inputs[0], [b.squeeze for b in blocks] + projections) if shared else None
    if batched is not None:
        squeezed, proj = batched[:len(blocks)], iter(batched[len(blocks):])
        shortcuts = [x if isinstance(b.shortcut, nn.Identity) else next(proj) for b, x in zip(blocks, inputs)]
    else:
        squeezed = [b.squeeze(x) for b, x in zip(blocks, inputs)]
        shortcuts = [b.shortcut(x) for b, x in zip(blocks, inputs)]
    branch_lists, gates = [b.branches for b in blocks], [b.gate for b in blocks]
    plan = _batchable(branch_lists, gates)
    mixed = (runner(squeezed, plan, branch_lists, gates) if plan is not None else
             [_eager.gated_branch_sum(s, bl, g) for s, bl, g in zip(squeezed, branch_lists, gates)])
    return [torch.relu(b.restore(m) + s) for b, m, s in zip(blocks, mixed, shortcuts)]


def make_mixed_op(runner: BranchRunner) -> Callable:
    """The ``mixed_op`` op of a backend: the selected candidates' CBlocks batched level by level."""
    def mixed_op(x: torch.Tensor, candidates: Sequence[nn.Module], weights: torch.Tensor,
                 selected: Sequence[int]) -> torch.Tensor:
        blocks = _blocks()
        chains = {i: list(candidates[i]) if isinstance(candidates[i], blocks.CDBlock) else [candidates[i]]
                  for i in selected}
        if not all(isinstance(m, blocks.CBlock) for ch in chains.values() for m in ch):
            return _eager.mixed_op(x, candidates, weights, selected)
        current = {i: x for i in selected}
        for level in range(max(len(ch) for ch in chains.values())):
            idx = [i for i in selected if len(chains[i]) > level]
            outs = cblocks_forward([chains[i][level] for i in idx], [current[i] for i in idx], runner)
            current.update(zip(idx, outs))
        chosen = set(selected)
        out = sum(weights[i] * current[i] for i in selected)
        rest = [weights[i] for i in range(len(candidates)) if i not in chosen]
        return out + torch.stack(rest).sum() if rest else out
    return mixed_op


register_backend(Backend("batched", {"gated_branch_sum": make_gated_branch_sum(torch_branch_runner),
                                     "mixed_op": make_mixed_op(torch_branch_runner)}, priority=-1))
