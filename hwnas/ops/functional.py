"""Public op functions; each dispatches to the current backend (eager is the reference)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hwnas.ops import _eager  # noqa: F401  (registers the reference backend)
from hwnas.ops import _batched, _triton  # noqa: F401  (register the 'batched' and 'triton' backends)
from hwnas.ops._dispatch import lookup


def gated_branch_sum(x: torch.Tensor, branches: Sequence[nn.Module], gate: nn.Module) -> torch.Tensor:
    """``sum_b gate(branch_b(x))``: the inner part of a CBlock between squeeze and restore.

    x: (N, mid, H, W); every branch maps mid -> mid at the same resolution; returns (N, mid, H, W).
    """
    return lookup("gated_branch_sum")(x, branches, gate)


def mixed_op(x: torch.Tensor, candidates: Sequence[nn.Module], weights: torch.Tensor,
             selected: Sequence[int]) -> torch.Tensor:
    """One supernet layer: ``sum_{i in selected} weights[i] * candidates[i](x) + sum_{i not selected} weights[i]``.

    weights: (n_candidates,) straight-through weights (value 0 off the selection); only the selected
    candidates are computed; the unselected weights are added as scalars so their alphas get gradients.
    """
    return lookup("mixed_op")(x, candidates, weights, selected)
