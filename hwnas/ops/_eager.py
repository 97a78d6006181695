"""The eager PyTorch reference backend: plain module calls, the definition every fused path must match."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hwnas.ops._dispatch import Backend, register_backend


def gated_branch_sum(x: torch.Tensor, branches: Sequence[nn.Module], gate: nn.Module) -> torch.Tensor:
    out = None
    for branch in branches:
        y = gate(branch(x))
        out = y if out is None else out + y
    assert out is not None, "gated_branch_sum needs at least one branch"
    return out


def mixed_op(x: torch.Tensor, candidates: Sequence[nn.Module], weights: torch.Tensor,
             selected: Sequence[int]) -> torch.Tensor:
    chosen = set(selected)
    out = sum(weights[i] * candidates[i](x) for i in selected)
    rest = [weights[i] for i in range(len(candidates)) if i not in chosen]
    return out + torch.stack(rest).sum() if rest else out


register_backend(Backend("eager", {"gated_branch_sum": gated_branch_sum, "mixed_op": mixed_op}, priority=0))
