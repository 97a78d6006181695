"""Top-k Sample Search weights (DESIGN section 2): a straight-through top-k mask over softmax(alpha).

Forward: the 0/1 mask of the k most probable candidates of each layer. Backward: the gradient of
``softmax(alpha)``, so every alpha (selected or not) learns. Ties (all alphas start equal) are broken by
the lower candidate index, the same on every process, so DDP ranks select identical candidates.
No randomness is involved.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from hwnas.errors import UsageError


def topk_select(probs: torch.Tensor, k: int) -> list[list[int]]:
    """Indices of the ``k`` largest probabilities per row, in descending order (ties: lower index first).

    probs: (layers, n_candidates). Returns one list of ``k`` candidate indices per layer.
    """
    if probs.dim() != 2:
        raise UsageError(f"probabilities of shape {tuple(probs.shape)}, topk_select, expected shape "
                         "(layers, n_candidates)")
    n = probs.shape[1]
    if not 1 <= k <= n:
        raise UsageError(f"k={k}, topk_select, expected 1 <= k <= {n} (candidates per layer)")
    order = torch.sort(probs.detach(), dim=1, descending=True, stable=True).indices[:, :k]
    return [row.tolist() for row in order]


def topk_weights(alphas: torch.Tensor, k: int) -> tuple[torch.Tensor, list[list[int]]]:
    """Straight-through weights ``onehot_topk - p.detach() + p`` with ``p = softmax(alphas)`` per layer.

    alphas: (layers, n_candidates). Returns (weights of the same shape, whose forward values are exactly
    0 or 1, and the selected indices per layer).
    """
    probs = torch.softmax(alphas, dim=-1)
    selected = topk_select(probs, k)
    mask = torch.zeros_like(probs)
    for layer, idx in enumerate(selected):
        mask[layer, idx] = 1.0
    weights = mask - probs.detach() + probs
    # mask - p + p is not bit-exact in floating point; force the forward value to the mask exactly
    weights = weights + (mask - weights).detach()
    return weights, selected


def path_weights(path: Sequence[Sequence[int]], shape: torch.Size | tuple[int, int]) -> torch.Tensor:
    """The constant 0/1 weights (layers, n_candidates) of a fixed ``path`` (candidate indices per layer)."""
    layers, n = shape
    if len(path) != layers or any(not row or not all(0 <= i < n for i in row) for row in path):
        raise UsageError(f"bad path {[list(r) for r in path]}, fixed-path forward, expected one non-empty list of "
                         f"candidate indices in 0..{n - 1} for each of the {layers} layers")
    mask = torch.zeros(layers, n)
    for layer, idx in enumerate(path):
        mask[layer, list(idx)] = 1.0
    return mask


def sample_paths(layers: int, n: int, k: int, generator: torch.Generator) -> list[list[int]]:
    """``k`` distinct candidates per layer drawn uniformly from ``n`` with ``generator`` (the weight warm-up's paths)."""
    return [torch.randperm(n, generator=generator)[:k].tolist() for _ in range(layers)]
