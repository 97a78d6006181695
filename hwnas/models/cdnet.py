"""CNet and CDNet: the searched networks of the seed (DESIGN section 1)."""
from __future__ import annotations

import os
from typing import Union

import torch
from torch import nn

from hwnas.models._registry import register_model
from hwnas.models.init import init_weights_
from hwnas.models.necks import build_neck
from hwnas.models.reid import ReIDModel
from hwnas.space.blocks import CDBlock, DownSample, Stem
from hwnas.space.genotype import Genotype
from hwnas.space.macro import macro_spec
from hwnas.space.presets import resolve_genotype

GenotypeLike = Union[str, os.PathLike, Genotype, None]


class CDNetBackbone(nn.Module):
    """Stem, six CDBlocks (one per genotype entry) and two DownSamples; returns ``[mid, last]`` maps."""

    def __init__(self, genotype: Genotype, width_mult: float = 1.0) -> None:
        super().__init__()
        spec = macro_spec(width_mult)
        self.genotype = genotype
        self.spec = spec
        self.feature_channels = spec.feature_channels
        self.stem = Stem(spec.planes[0])
        self.layers = nn.ModuleList(
            CDBlock(ls.in_channels, ls.out_channels, c.k1, c.k2, c.r) for ls, c in zip(spec.layers, genotype.layers)
        )
        self.downsamples = nn.ModuleList(DownSample(spec.planes[s]) for s in (1, 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        mid = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.spec.downsample_after:
                x = self.downsamples[self.spec.downsample_after.index(i)](x)
                mid = x
        return [mid, x]


def _build(space: str, genotype: GenotypeLike, width_mult: float, num_classes: int, neck: str) -> ReIDModel:
    geno = resolve_genotype(genotype, space)
    backbone = CDNetBackbone(geno, width_mult)
    config = {"genotype": geno.tostr(), "width_mult": width_mult, "num_classes": num_classes, "neck": neck}
    model = ReIDModel(backbone, build_neck(neck, backbone.feature_channels, num_classes), space, config)
    return init_weights_(model)  # the official code's initialisation (DESIGN 2b.1)


@register_model
def cnet(*, genotype: GenotypeLike = "cnet-top2", width_mult: float = 1.0, num_classes: int = 751,
         neck: str = "fblneck") -> ReIDModel:
    """CNet: six CBlocks; ``genotype`` is a preset name, genotype string, JSON path or Genotype."""
    return _build("cnet", genotype, width_mult, num_classes, neck)


@register_model
def cdnet(*, genotype: GenotypeLike = "cdnet-top2", width_mult: float = 1.0, num_classes: int = 751,
          neck: str = "fblneck") -> ReIDModel:
    """CDNet: six CDBlocks (1 or 2 CBlocks each); the seed's best is ``cdnet-top2``."""
    return _build("cdnet", genotype, width_mult, num_classes, neck)
