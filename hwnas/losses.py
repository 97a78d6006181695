"""ReID losses: cross-entropy (optional label smoothing), batch-hard triplet, and their sum per neck output."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.errors import UsageError
from hwnas.models._output import ReIDOutput


class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy on (N, C) logits and (N,) labels; ``label_smoothing`` epsilon (0 = plain CE)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise UsageError(f"label_smoothing {label_smoothing}, CrossEntropyLoss, expected a number in [0, 1)")
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances (N, M) between rows of x (N, D) and y (M, D); clamped so sqrt has a gradient."""
    y = x if y is None else y
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2.0 * x @ y.t()
    return d2.clamp_min(1e-12).sqrt()


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al. 2017): for each anchor the farthest positive and the closest
    negative in the batch, ``relu(d_ap - d_an + margin)`` averaged; margin 0.3 as in the seed.
    Anchors without a positive or a negative in the batch are left out (0 if none remain).
    """

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        dist = pairwise_distance(features.float())
        same = targets.view(-1, 1) == targets.view(1, -1)
        eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
        pos = same & ~eye
        neg = ~same
        d_ap = dist.masked_fill(~pos, float("-inf")).amax(1)
        d_an = dist.masked_fill(~neg, float("inf")).amin(1)
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return features.sum() * 0.0
        return F.relu(d_ap[valid] - d_an[valid] + self.margin).mean()


class ReIDLoss(nn.Module):
    """Sum of the losses of every neck output: ``ce_weight`` x CE on each logits tensor and ``triplet_weight`` x
    triplet on each triplet feature of a :class:`ReIDOutput` (FBLNeck: global and local).

    Returns ``(total, parts)`` with parts ``{"ce": ..., "triplet": ..., "ce/0": ..., "triplet/1": ..., ...}``
    as detached scalars for logging, plus ``acc`` (top-1 accuracy of the first classifier).
    """

    def __init__(self, label_smoothing: float = 0.0, margin: float = 0.3, ce_weight: float = 1.0,
                 triplet_weight: float = 1.0) -> None:
        super().__init__()
        self.ce = CrossEntropyLoss(label_smoothing)
        self.triplet = TripletLoss(margin)
        self.ce_weight, self.triplet_weight = ce_weight, triplet_weight

    def forward(self, output: ReIDOutput, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(output, ReIDOutput):
            raise UsageError(f"model output is a {type(output).__name__}, ReIDLoss, expected the ReIDOutput of a model "
                             "in training mode")
        parts: dict[str, torch.Tensor] = {}
        ce = sum(self._part(parts, f"ce/{i}", self.ce(lg, pids)) for i, lg in enumerate(output.logits))
        tri = sum(self._part(parts, f"triplet/{i}", self.triplet(f, pids)) for i, f in enumerate(output.features))
        total = self.ce_weight * ce + self.triplet_weight * tri
        parts["ce"] = torch.as_tensor(ce).detach()
        parts["triplet"] = torch.as_tensor(tri).detach()
        if output.logits:
            parts["acc"] = (output.logits[0].argmax(1) == pids).float().mean().detach()
        return total, parts

    @staticmethod
    def _part(parts: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> torch.Tensor:
        parts[name] = value.detach()
        return value
