"""ReID heads: BNNeck (Bag of Tricks), BLNeck and FBLNeck (the seed's), and OSNet's own head.

Each neck reads the backbone's feature maps ``feats = [mid, last]`` (``mid``: after the second
DownSample, ``last``: the final stage) and returns a :class:`ReIDOutput` in training mode or the
inference feature (N, D) in eval mode. Training-only parts (dropout, BL layers, classifiers) are not
run in eval mode and are left out of :meth:`inference_modules`.

As in the paper's public code (GitHub solicucu/ReID, ``model/head/bl_neck.py`` and ``fbl_neck.py``; DESIGN
2b items 3 and 4): BLNeck's and FBLNeck's dropout acts on the GAP feature itself, so the triplet loss sees the
dropped-out feature (the eval-mode feature has no dropout), and FBLNeck's two local parts are
``chunk(2, dim=height)``: the top part gets ceil(H/2) rows, which works (and exports to ONNX) at odd heights.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.errors import UsageError
from hwnas.models._output import ReIDOutput

NECKS: tuple[str, ...] = ("bnneck", "blneck", "fblneck")


def _gap(x: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class BLHead(nn.Module):
    """Dropout -> Linear(c, hidden) + BN1d + ReLU -> classifier: maps the triplet space to a softmax space.

    ``forward(f)`` returns ``(logits, h, f_dropped)``: the dropped-out input feature (N, c) is what the
    triplet loss sees, ``h`` (N, hidden) what the classifier reads.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.dropout(f)
        h = self.fc(f)
        return self.classifier(h), h, f


class BNNeck(nn.Module):
    """GAP -> f_t (triplet) -> BN (bias frozen at 0) -> f_i (inference) -> classifier without bias."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.out_features = in_channels
        self.bn = nn.BatchNorm1d(in_channels)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_channels, num_classes, bias=False)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor | ReIDOutput:
        f_t = _gap(feats[-1])
        f_i = self.bn(f_t)
        if not self.training:
            return f_i
        return ReIDOutput([self.classifier(f_i)], [f_t], [f_i])

    def inference_modules(self) -> list[nn.Module]:
        return [self.bn]


class BLNeck(nn.Module):
    """GAP -> f (inference feature) -> dropout -> f_t (triplet) -> Linear + BN1d + ReLU -> classifier.

    Everything after the GAP is training-only.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        self.out_features = in_channels
        self.head = BLHead(in_channels, num_classes, hidden, dropout)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor | ReIDOutput:
        f = _gap(feats[-1])
        if not self.training:
            return f
        logits, h, f_t = self.head(f)
        return ReIDOutput([logits], [f_t], [h])

    def inference_modules(self) -> list[nn.Module]:
        return []


class FBLNeck(nn.Module):
    """BLNeck on the last stage plus a fine-grained part branch on the mid features.

    Local branch: 1x1 conv mid -> 128 (no bias) -> ``chunk`` into ``parts`` horizontal stripes (the first
    ceil(H/2) rows, then the rest) -> GAP each -> 256-d feature -> own BLHead. Triplet losses on the dropped-out
    global and local features. Inference feature: concat(global, local), e.g. 512 + 256 = 768 at width 1.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, local_channels: int = 128,
                 parts: int = 2, hidden: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        self.parts = parts
        self.local_conv = nn.Conv2d(mid_channels, local_channels, 1, bias=False)
        self.out_features = in_channels + local_channels * parts
        self.global_head = BLHead(in_channels, num_classes, hidden, dropout)
        self.local_head = BLHead(local_channels * parts, num_classes, hidden, dropout)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor | ReIDOutput:
        f_g = _gap(feats[-1])
        local = self.local_conv(feats[0])
        if not torch.jit.is_tracing() and local.shape[2] < self.parts:  # (a traced export has fixed shapes)
            raise UsageError(f"stage-2 feature map of height {local.shape[2]}, FBLNeck input, expected at least "
                             f"{self.parts} rows (one per part; input images at least {16 * self.parts} pixels tall)")
        f_l = torch.cat([_gap(p) for p in local.chunk(self.parts, dim=2)], dim=1)  # [top part's C, bottom's C]
        if not self.training:
            return torch.cat([f_g, f_l], dim=1)
        logits_g, h_g, t_g = self.global_head(f_g)
        logits_l, h_l, t_l = self.local_head(f_l)
        return ReIDOutput([logits_g, logits_l], [t_g, t_l], [h_g, h_l])

    def inference_modules(self) -> list[nn.Module]:
        return [self.local_conv]


class OSNetHead(nn.Module):
    """OSNet's own head (torchreid): conv5 1x1 + BN + ReLU, GAP, Linear(c, 512) + BN1d + ReLU, classifier.

    The 512-d fc output is both the triplet and the inference feature.
    """

    def __init__(self, in_channels: int, num_classes: int, feature_dim: int = 512) -> None:
        super().__init__()
        self.out_features = feature_dim
        self.conv5 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(in_channels, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor | ReIDOutput:
        v = self.fc(_gap(self.conv5(feats[-1])))
        if not self.training:
            return v
        return ReIDOutput([self.classifier(v)], [v], [v])

    def inference_modules(self) -> list[nn.Module]:
        return [self.conv5, self.fc]


def build_neck(name: str, feature_channels: tuple[int, int], num_classes: int) -> nn.Module:
    """``bnneck`` | ``blneck`` | ``fblneck`` on backbone features with (mid, last) channels."""
    mid, last = feature_channels
    if name == "bnneck":
        return BNNeck(last, num_classes)
    if name == "blneck":
        return BLNeck(last, num_classes)
    if name == "fblneck":
        return FBLNeck(last, mid, num_classes)
    raise UsageError(f"unknown neck {name!r}, neck option, expected one of {', '.join(NECKS)}")
