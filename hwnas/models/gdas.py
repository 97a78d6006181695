"""The GDAS-searched ReID network of the seed's Table 5 (listed there as 4.0M params, 1109.2 MFLOPs at 256x128).

GDAS (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019) searches
DARTS-style cells. The CDNet authors ran it on Market-1501 with one cell genotype per layer (six layers,
three stages) and trained the result with their FBLNeck. Source of the genotype and the macro structure:
the authors' public code, github.com/solicucu/ReID at commit f35c7fb2, files
``FasterReID/model/backbone/genotypes.py`` (``genotype_model``, the "best_genotype"),
``FasterReID/model/backbone/gdas_model.py`` (the network) and ``FasterReID/configs/gdasnet.yml``
(``NECK_TYPE: fblneck``, ``FC_DIMS: [512]``). Facts read from there and written anew here:

- stem: 3x3 s2 conv 3 -> 32 + BN + ReLU, 3x3 conv 32 -> 64 + BN (``s0``, H/2); then ReLU, 3x3 s2 conv
  64 -> 64 + BN (``s1``, H/4).
- six cells with C = 64, 64, 128, 128, 256, 256; cells 2 and 4 are reduction cells (the ops reading the
  two cell inputs have stride 2); a cell after a reduction, and cell 0 (whose ``s0`` is the H/2 stem
  map), preprocesses its first input with FactorizedReduce. Preprocessing BNs have no affine parameters,
  the ops' BNs do. Each cell has 4 nodes, concatenated: output 4C channels.
- FBLNeck: mid = output of cell 4 (1024 ch, 16x8), last = output of cell 5 (1024 ch, 16x8); inference
  feature = 1024 (global) + 2 x 128 (local) = 1280-d.

Counted as DESIGN section 4 counts (fvcore conv + linear MACs, eval, batch 1) this network gives
1109.2 MFLOPs at 256x128, Table 5's number to the digit. Its inference path has 2.98M parameters, not
Table 5's 4.0M: the authors' backbone also builds a 1x1 conv + BN head (``conv1x1``, 1024 -> 1024,
1.05M parameters) that its forward skips when the FBLNeck is used, and their count (all backbone
parameters + the FBLNeck's squeeze conv, which gives CDNet's 1.797M too) includes it:
2.98M + 1.05M = 4.04M -> "4.0M". We do not build a module that never runs; :func:`authors_param_count`
reproduces their count.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from hwnas.errors import UsageError
from hwnas.models._registry import register_model
from hwnas.models.necks import NECKS, build_neck
from hwnas.models.reid import ReIDModel

GDAS_PRIMITIVES: tuple[str, ...] = (
    "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)


class CellGenotype(NamedTuple):
    """A DARTS cell: node i (i = 0..3) sums ``edges[2i]`` and ``edges[2i+1]``; each edge is (op, input state).

    Input states 0 and 1 are the two cell inputs, 2.. the earlier nodes; ``concat`` lists the states
    concatenated into the output.
    """

    edges: tuple[tuple[str, int], ...]
    concat: tuple[int, ...] = (2, 3, 4, 5)


def _cell(*edges: tuple[str, int]) -> CellGenotype:
    return CellGenotype(tuple(edges))


# GDAS on Market-1501, one cell per layer (solicucu/ReID, FasterReID/model/backbone/genotypes.py).
GDAS_REID_GENOTYPE: tuple[CellGenotype, ...] = (
    _cell(("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 0),
          ("sep_conv_3x3", 0), ("dil_conv_3x3", 2), ("max_pool_3x3", 3), ("sep_conv_3x3", 2)),
    _cell(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_5x5", 1), ("dil_conv_5x5", 2),
          ("max_pool_3x3", 3), ("dil_conv_3x3", 2), ("sep_conv_5x5", 4), ("avg_pool_3x3", 3)),
    _cell(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 2),
          ("max_pool_3x3", 3), ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("avg_pool_3x3", 3)),
    _cell(("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_5x5", 0), ("max_pool_3x3", 1),
          ("sep_conv_5x5", 1), ("avg_pool_3x3", 2), ("skip_connect", 4), ("avg_pool_3x3", 1)),
    _cell(("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
          ("dil_conv_5x5", 0), ("dil_conv_5x5", 3), ("dil_conv_5x5", 0), ("sep_conv_3x3", 4)),
    _cell(("sep_conv_5x5", 0), ("sep_conv_5x5", 1), ("avg_pool_3x3", 0), ("sep_conv_5x5", 2),
          ("sep_conv_3x3", 2), ("sep_conv_3x3", 3), ("avg_pool_3x3", 2), ("sep_conv_3x3", 4)),
)
REDUCTION_CELLS: tuple[int, ...] = (2, 4)


def _relu_conv_bn(cin: int, cout: int, kernel_size: int = 1, stride: int = 1, affine: bool = True) -> nn.Sequential:
    """ReLU, conv ('same' padding), BN: the cells' input preprocessing (``affine=False``) and stem1."""
    return nn.Sequential(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
                         nn.BatchNorm2d(cout, affine=affine))


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs to C/2 each, concat, BN: halves H and W.

    As in the authors' ReID code both convs read the same pixels (DARTS shifts the second by one pixel);
    FLOPs and parameters are the same either way, and we keep theirs so that timings compare.
    """

    def __init__(self, cin: int, cout: int, affine: bool = True) -> None:
        super().__init__()
        if cout % 2:
            raise UsageError(f"odd output width {cout}, FactorizedReduce, expected an even number of channels")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(cout, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x)], dim=1))


def _relu_dw_pw_bn(c: int, k: int, stride: int, dilation: int = 1) -> list[nn.Module]:
    """ReLU, depthwise k x k ('same' padding for stride 1), pointwise 1x1, BN — the unit of sep/dil convs."""
    return [nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride, dilation * (k // 2), dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)]


def _sep_conv(c: int, k: int, stride: int) -> nn.Module:
    """Two ReLU-depthwise-pointwise-BN units; only the first has the stride."""
    return nn.Sequential(*_relu_dw_pw_bn(c, k, stride), *_relu_dw_pw_bn(c, k, 1))


def _dil_conv(c: int, k: int, stride: int) -> nn.Module:
    """One ReLU-depthwise-pointwise-BN unit with dilation 2 (receptive field 2k - 1)."""
    return nn.Sequential(*_relu_dw_pw_bn(c, k, stride, dilation=2))


_OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, stride=s, padding=1),
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: _sep_conv(c, 3, s),
    "sep_conv_5x5": lambda c, s: _sep_conv(c, 5, s),
    "dil_conv_3x3": lambda c, s: _dil_conv(c, 3, s),
    "dil_conv_5x5": lambda c, s: _dil_conv(c, 5, s),
}


class Cell(nn.Module):
    """A DARTS cell on C channels: preprocess both inputs to C, four nodes, concat (4C channels out)."""

    def __init__(self, genotype: CellGenotype, c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        for op, index in genotype.edges:
            if op not in _OPS:
                raise UsageError(f"unknown GDAS op {op!r}, cell genotype, expected one of {', '.join(GDAS_PRIMITIVES)}")
        self.preprocess0: nn.Module = (FactorizedReduce(c_prev_prev, c, affine=False) if reduction_prev
                                       else _relu_conv_bn(c_prev_prev, c, affine=False))
        self.preprocess1 = _relu_conv_bn(c_prev, c, affine=False)
        self.indices = tuple(index for _, index in genotype.edges)
        self.concat = genotype.concat
        self.ops = nn.ModuleList(_OPS[op](c, 2 if reduction and index < 2 else 1) for op, index in genotype.edges)
        self.out_channels = c * len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.indices[a]]) + self.ops[b](states[self.indices[b]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class GDASBackbone(nn.Module):
    """Two-part stem and six cells; returns ``[mid, last]`` = outputs of the last two cells (4C channels each)."""

    def __init__(self, genotype: Sequence[CellGenotype] = GDAS_REID_GENOTYPE, stem_channels: int = 64) -> None:
        super().__init__()
        c = stem_channels
        self.stem0 = nn.Sequential(nn.Conv2d(3, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2),
                                   nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c))
        self.stem1 = _relu_conv_bn(c, c, 3, 2)
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction = c, c, True  # the stem's s0 -> s1 step halves H, W like a reduction
        for i, cell_genotype in enumerate(genotype):
            reduction_prev, reduction = reduction, i in REDUCTION_CELLS
            c = c * 2 if reduction else c
            cell = Cell(cell_genotype, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p = c_p, cell.out_channels
        self.feature_channels = (self.cells[-2].out_channels, self.cells[-1].out_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return [s0, s1]


@register_model
def gdas(*, num_classes: int = 751, neck: str = "fblneck") -> ReIDModel:
    """The GDAS ReID network of the seed's Table 5 with the FBLNeck it was trained with (or bnneck/blneck)."""
    if neck not in NECKS:
        raise UsageError(f"unknown neck {neck!r}, gdas neck option, expected one of {', '.join(NECKS)}")
    backbone = GDASBackbone()
    config = {"num_classes": num_classes, "neck": neck}
    return ReIDModel(backbone, build_neck(neck, backbone.feature_channels, num_classes), "gdas", config)


def authors_param_count(model: ReIDModel) -> int:
    """Parameters as the seed's Table 5 counts GDAS: the inference path plus the never-run conv1x1 head.

    The authors' GDAS backbone builds ``conv1x1`` (1x1 conv + BN + ReLU on the last cell's channels) and
    skips it under the FBLNeck; their count includes it. For other models this is just the inference count.
    """
    count = sum(p.numel() for m in model.inference_modules() for p in m.parameters())
    if isinstance(model.backbone, GDASBackbone):
        c = model.backbone.feature_channels[1]
        unused_head = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        count += sum(p.numel() for p in unused_head.parameters())
    return count
