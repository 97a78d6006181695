"""A ReID model = backbone (feature maps) + neck (losses' features / inference feature)."""
from __future__ import annotations

import torch
from torch import nn

from hwnas.models._output import ReIDOutput


class ReIDModel(nn.Module):
    """Backbone + neck.

    ``forward`` returns a :class:`ReIDOutput` in training mode and the inference feature (N, D) in eval
    mode; ``forward_features`` gives the backbone maps ``[mid, last]``; ``forward_head`` applies the neck.
    ``inference_modules`` lists the modules the eval-mode forward runs (for parameter counts and export).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, name: str, config: dict[str, object]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.model_name = name
        self.config = dict(config)
        self.num_features = int(neck.out_features)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(x)

    def forward_head(self, feats: list[torch.Tensor]) -> torch.Tensor | ReIDOutput:
        return self.neck(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor | ReIDOutput:
        return self.forward_head(self.forward_features(x))

    def inference_modules(self) -> list[nn.Module]:
        return [self.backbone, *self.neck.inference_modules()]

    def extra_repr(self) -> str:
        return f"name={self.model_name!r}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())
