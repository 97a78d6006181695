"""The macro skeleton shared by CNet, CDNet and their supernet: widths, searchable layers, stages.

stem (/4) -> stage 1: layer, layer, DownSample -> stage 2: layer, layer, DownSample -> stage 3: layer, layer.
"""
from __future__ import annotations

from dataclasses import dataclass

from hwnas.space.blocks import scaled_planes


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: its position, stage (1..3), channels and the input downscale factor."""

    index: int
    stage: int
    in_channels: int
    out_channels: int
    stride: int  # input resolution = image resolution / stride

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return image_size[0] // self.stride, image_size[1] // self.stride


@dataclass(frozen=True)
class MacroSpec:
    """Channel plan of the network at width multiplier ``width_mult``."""

    width_mult: float
    planes: tuple[int, int, int, int]
    layers: tuple[LayerSpec, ...]

    @property
    def downsample_after(self) -> tuple[int, ...]:
        """Indices of the searchable layers followed by a DownSample."""
        return (1, 3)

    @property
    def feature_channels(self) -> tuple[int, int]:
        """(channels after the second DownSample, channels of the last layer)."""
        return self.planes[2], self.planes[3]


def macro_spec(width_mult: float = 1.0) -> MacroSpec:
    p = scaled_planes(width_mult)
    layers = []
    cin = p[0]
    for stage in (1, 2, 3):
        cout = p[stage]
        for j in range(2):
            layers.append(LayerSpec(len(layers), stage, cin if j == 0 else cout, cout, 4 * 2 ** (stage - 1)))
        cin = cout
    return MacroSpec(width_mult, (p[0], p[1], p[2], p[3]), tuple(layers))
