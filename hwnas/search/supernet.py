"""The search supernet (DESIGN section 2): the CNet/CDNet macro with one mixed op per searchable layer.

Each searchable layer holds every candidate of the space as a :class:`~hwnas.space.blocks.CDBlock`
(CNet's candidates have r = 1, i.e. a single CBlock) and is computed through
:func:`hwnas.ops.mixed_op`, so fused backends plug in without touching this file. The architecture
parameters ``alphas`` (6 x n_candidates) live in the module, so DDP synchronises them like weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hwnas import ops
from hwnas.errors import UsageError
from hwnas.models._output import ReIDOutput
from hwnas.models.init import init_weights_
from hwnas.search.config import SHARE_MODES
from hwnas.search.topk import path_weights, topk_weights
from hwnas.space.blocks import CDBlock, DownSample, Stem, conv_bn_relu
from hwnas.space.candidates import Candidate, candidates
from hwnas.space.macro import macro_spec


class MixedLayer(nn.Module):
    """All candidates of one searchable layer; only the selected ones run."""

    def __init__(self, in_channels: int, out_channels: int, choices: tuple[Candidate, ...]) -> None:
        super().__init__()
        self.choices = choices
        self.candidates = nn.ModuleList(CDBlock(in_channels, out_channels, c.k1, c.k2, c.r) for c in choices)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, selected: list[int]) -> torch.Tensor:
        """x: (N, in, H, W); weights: (n_candidates,) straight-through weights; returns (N, out, H, W)."""
        return ops.mixed_op(x, self.candidates, weights, selected)


def share_io_(layer: MixedLayer) -> MixedLayer:
    """Make the candidates of ``layer`` share their 1x1 convolutions (an hwnas option, not the paper's supernet).

    Every candidate's first CBlock uses the first candidate's projection shortcut, squeeze and restore
    (conv + BN), and every r = 2 candidate's second CBlock the squeeze and restore of the first r = 2 candidate;
    the branches (kernel sizes), gates and depth stay each candidate's own. The candidates then write into one
    feature space, so mixing them from step to step no longer stalls the supernet's training
    (``python -m benchmarks.supernet_warmup``; docs/search.md). Stand-alone networks are unchanged.
    """
    first = layer.candidates[0][0]
    deep = next((c for c in layer.candidates if len(c) == 2), None)
    for cand in layer.candidates:
        cand[0].shortcut, cand[0].squeeze, cand[0].restore = first.shortcut, first.squeeze, first.restore
        if len(cand) == 2 and deep is not None:
            cand[1].squeeze, cand[1].restore = deep[1].squeeze, deep[1].restore
    return layer


class SearchHead(nn.Module):
    """1x1 conv + BN + ReLU, GAP, dropout 0.2, Linear(c, 512) + BN1d + ReLU, classifier.

    As in the paper's public code (DESIGN 2b.3) the dropout acts on the GAP feature itself: the dropped-out
    feature (N, c) feeds the triplet loss and the fc; the 512-d one (N, 512) the classifier.
    """

    def __init__(self, channels: int, num_classes: int, hidden: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = conv_bn_relu(channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        f = self.dropout(F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1))
        h = self.fc(f)
        return ReIDOutput([self.classifier(h)], [f], [h])


class SuperNet(nn.Module):
    """Supernet over ``space`` ('cnet' | 'cdnet') with Top-k Sample Search weights.

    ``forward`` returns a :class:`ReIDOutput` in both train and eval mode (the search needs logits for
    validation accuracy); only dropout and BatchNorm behave differently.
    """

    def __init__(self, space: str = "cdnet", num_classes: int = 751, width_mult: float = 1.0, topk: int = 2,
                 alpha_init: float = 1e-3, share_weights: str = "none") -> None:
        super().__init__()
        if share_weights not in SHARE_MODES:
            raise UsageError(f"share_weights={share_weights!r}, SuperNet, expected one of {', '.join(SHARE_MODES)}")
        choices = candidates(space)
        if not 1 <= topk <= len(choices):
            raise UsageError(f"topk={topk}, SuperNet ({space} space), expected 1..{len(choices)}")
        spec = macro_spec(width_mult)
        self.space, self.topk, self.spec, self.choices = space, topk, spec, choices
        self.stem = Stem(spec.planes[0])
        self.layers = nn.ModuleList(MixedLayer(ls.in_channels, ls.out_channels, choices) for ls in spec.layers)
        self.share_weights = share_weights
        if share_weights == "io":
            for layer in self.layers:
                share_io_(layer)
        self.downsamples = nn.ModuleList(DownSample(spec.planes[s]) for s in (1, 2))
        self.head = SearchHead(spec.planes[3], num_classes)
        self.alphas = nn.Parameter(torch.full((len(spec.layers), len(choices)), float(alpha_init)))
        init_weights_(self)  # the official code's initialisation (DESIGN 2b.1); alphas are not touched

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def probs(self) -> torch.Tensor:
        """softmax(alpha) per layer, (layers, n_candidates); differentiable."""
        return torch.softmax(self.alphas, dim=-1)

    def forward(self, x: torch.Tensor, arch_grad: bool = True,
                path: Sequence[Sequence[int]] | None = None) -> ReIDOutput:
        """x: (N, 3, H, W). ``arch_grad=False`` (the weight step) keeps gradients away from the alphas.

        ``path``: candidate indices to run per layer instead of the top-k of alpha (e.g. ``[[3], [7], ...]`` for
        one genotype, or k random ones in the weight warm-up); they run with weight 1, as selected candidates
        do, and the alphas get no gradient.
        """
        if path is None:
            alphas = self.alphas if arch_grad else self.alphas.detach()
            weights, selected = topk_weights(alphas, self.topk)
        else:
            weights = path_weights(path, self.alphas.shape).to(self.alphas.device)
            selected = [list(p) for p in path]
        x = self.stem(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, weights[i], selected[i])
            if i in self.spec.downsample_after:
                x = self.downsamples[self.spec.downsample_after.index(i)](x)
        return self.head(x)
