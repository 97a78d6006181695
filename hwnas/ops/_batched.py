"""The ``batched`` backend: CBlock branches and supernet candidates as one grouped launch per depth.

BatchNorm is per channel, so every branch (of one CBlock, or of all selected candidates of a supernet
layer) at the same depth runs exactly as one grouped 1x1 conv, one depthwise 3x3 conv and one BN over the
concatenated channels. This is a second reference for the Triton kernels and a fast path on CPU (fewer,
larger kernels). The structure here (scheduling branches by depth, BN bookkeeping, batching the squeeze
and shortcut convs of candidates that share an input) is reused by the ``triton`` backend, which swaps in
fused kernels through :data:`BranchRunner`.

The blocks are read through their plans (:mod:`hwnas.ops.plan`), never their classes: any module whose
``ops_plan()`` describes gated LiteConv branches or CBlocks runs batched; anything else runs eagerly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.ops import _eager
from hwnas.ops._dispatch import Backend, register_backend
from hwnas.ops.plan import CBlockPlan, ConvBNPlan, GatedBranchesPlan, LiteConvPlan, block_chain, gated_branches_plan


@dataclass(frozen=True)
class DepthSchedule:
    """Branches of ``n_blocks`` gated-branch plans as groups sorted by depth, deepest first.

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

    def lite_convs(self, inners: Sequence[GatedBranchesPlan], depth: int) -> list[LiteConvPlan]:
        """The LiteConv plans of the groups active at ``depth``, in group order."""
        return [inners[b].branches[j][depth] for b, j in self.groups[:self.active(depth)]]


def schedule_branches(inners: Sequence[GatedBranchesPlan]) -> Optional[DepthSchedule]:
    """Schedule for batching; None when the plans differ in branch count or width, or the BNs of one depth
    cannot share a normalisation (the caller then runs them one by one)."""
    counts = {len(p.branches) for p in inners}
    if len(counts) != 1 or len({p.channels for p in inners}) != 1:
        return None
    entries = [((i, j), len(b)) for i, p in enumerate(inners) for j, b in enumerate(p.branches)]
    entries.sort(key=lambda e: -e[1])  # stable: ties keep (block, branch) order
    schedule = DepthSchedule(tuple(e[0] for e in entries), tuple(e[1] for e in entries), len(inners), counts.pop())
    for depth in range(schedule.depths[0]):
        if not bn_compatible([lc.bn for lc in schedule.lite_convs(inners, depth)]):
            return None
    return schedule


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


def conv_bn_multi(x: torch.Tensor, units: Sequence[ConvBNPlan]) -> Optional[list[torch.Tensor]]:
    """Several 1x1 conv + BN (+ReLU) units on the same input as one conv and one BN; None if the BNs differ."""
    bns = [u.bn for u in units]
    if not bn_compatible(bns):
        return None
    y = batch_norm_multi(F.conv2d(x, torch.cat([u.weight for u in units])), bns)
    outs = list(y.split([u.out_channels for u in units], dim=1))
    return [torch.relu(o) if u.relu else o for o, u in zip(outs, units)]


BranchRunner = Callable[[Sequence[torch.Tensor], DepthSchedule, Sequence[GatedBranchesPlan]], list[torch.Tensor]]
"""``runner(inputs, schedule, inners) -> [inners[b](inputs[b]) for b]``: a backend's batched gated branches."""


def _depth_inputs(inputs: Sequence[torch.Tensor], schedule: DepthSchedule) -> tuple[torch.Tensor, bool]:
    """Depth-0 input: the shared tensor itself, or each group's block input concatenated (groups order)."""
    if all(t is inputs[0] for t in inputs):
        return inputs[0], True
    return torch.cat([inputs[b] for b, _ in schedule.groups], dim=1), False


def torch_branch_runner(inputs: Sequence[torch.Tensor], schedule: DepthSchedule,
                        inners: Sequence[GatedBranchesPlan]) -> list[torch.Tensor]:
    """PyTorch grouped-conv implementation of ``[sum_j gate_b(branch_bj(x_b)) for b]``."""
    x, shared = _depth_inputs(inputs, schedule)
    c = inners[0].channels
    finals: dict[int, torch.Tensor] = {}
    for depth in range(schedule.depths[0]):
        g_active = schedule.active(depth)
        lcs = schedule.lite_convs(inners, depth)
        w_pw = torch.cat([lc.pointwise for lc in lcs])
        w_dw = torch.cat([lc.depthwise for lc in lcs])
        groups = 1 if (depth == 0 and shared) else g_active
        if depth > 0 and x.shape[1] != g_active * c:
            x = x[:, :g_active * c]  # the groups still active are a channel prefix
        z = F.conv2d(F.conv2d(x, w_pw, groups=groups), w_dw, padding=1, groups=g_active * c)
        x = torch.relu(batch_norm_multi(z, [lc.bn for lc in lcs]))
        for g in schedule.finishing(depth):
            finals[g] = x[:, g * c:(g + 1) * c]
    outs = []
    for b in range(schedule.n_blocks):
        branch_out = [finals[g] for g in schedule.block_major() if schedule.groups[g][0] == b]
        gated = inners[b].gate.reference(torch.cat(branch_out, dim=0)).chunk(len(branch_out), dim=0)
        out = gated[0]
        for y in gated[1:]:
            out = out + y
        outs.append(out)
    return outs


def make_gated_branch_sum(runner: BranchRunner) -> Callable:
    """The ``gated_branch_sum`` op of a backend built on ``runner`` (eager when the modules have no plan)."""
    def gated_branch_sum(x: torch.Tensor, branches: Sequence[nn.Module], gate: nn.Module) -> torch.Tensor:
        plan = gated_branches_plan(branches, gate)
        schedule = schedule_branches([plan]) if plan is not None else None
        if schedule is None:
            return _eager.gated_branch_sum(x, branches, gate)
        return runner([x], schedule, [plan])[0]
    return gated_branch_sum


def cblocks_forward(blocks: Sequence[CBlockPlan], inputs: Sequence[torch.Tensor],
                    runner: BranchRunner) -> list[torch.Tensor]:
    """Several CBlocks at once; squeeze and shortcut convs of blocks that share an input form one conv."""
    shared = len(blocks) > 1 and all(t is inputs[0] for t in inputs)
    projections = [b.shortcut for b in blocks if b.shortcut is not None]
    batched = conv_bn_multi(inputs[0], [b.squeeze for b in blocks] + projections) if shared else None
    if batched is not None:
        squeezed, proj = batched[:len(blocks)], iter(batched[len(blocks):])
        shortcuts = [x if b.shortcut is None else next(proj) for b, x in zip(blocks, inputs)]
    else:
        squeezed = [b.squeeze.reference(x) for b, x in zip(blocks, inputs)]
        shortcuts = [x if b.shortcut is None else b.shortcut.reference(x) for b, x in zip(blocks, inputs)]
    inners = [b.inner for b in blocks]
    schedule = schedule_branches(inners)
    mixed = (runner(squeezed, schedule, inners) if schedule is not None else
             [inner.reference(s) for s, inner in zip(squeezed, inners)])
    return [torch.relu(b.restore.reference(m) + s) for b, m, s in zip(blocks, mixed, shortcuts)]


def make_mixed_op(runner: BranchRunner) -> Callable:
    """The ``mixed_op`` op of a backend: the selected candidates' CBlocks batched level by level."""
    def mixed_op(x: torch.Tensor, candidates: Sequence[nn.Module], weights: torch.Tensor,
                 selected: Sequence[int]) -> torch.Tensor:
        chains = {i: block_chain(candidates[i]) for i in selected}
        if any(chain is None for chain in chains.values()):
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
