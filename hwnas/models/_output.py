"""What a ReID model returns in training mode."""
from __future__ import annotations

from typing import NamedTuple

import torch


class ReIDOutput(NamedTuple):
    """Training-mode output of every hwnas model (eval mode returns the inference feature tensor).

    logits: one (N, num_classes) tensor per classifier (softmax / cross-entropy loss on each).
    features: one (N, D) tensor per triplet-loss feature.
    softmax_features: the (N, D') features each classifier reads (the seed's ``feats_fc``, for t-SNE).
    """

    logits: list[torch.Tensor]
    features: list[torch.Tensor]
    softmax_features: list[torch.Tensor]
