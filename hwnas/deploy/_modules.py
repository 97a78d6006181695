"""BN-folded inference modules of CNet/CDNet; each runs compiled (``hwnas._C``) or with plain torch ops.

The plain-torch form (``backend="eager"``) computes the same folded network with standard ops: it is
the form that exports to ONNX and the reference the compiled form is tested against.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.errors import UsageError
from hwnas.ops._cpp import fold_bn, fold_branches
from hwnas.space.blocks import CBlock

BACKENDS: tuple[str, ...] = ("cpp", "cuda", "eager")


class FusedConv(nn.Module):
    """A conv with its BN folded in (weight, bias buffers) and optional ReLU."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu: bool) -> None:
        super().__init__()
        weight, bias = fold_bn(conv.weight, bn, conv.bias)
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.stride, self.padding, self.relu = conv.stride, conv.padding, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return torch.relu(y) if self.relu else y


class FusedCBlock(nn.Module):
    """One CBlock with every BN folded; ``backend`` ``cpp``/``cuda`` runs ``torch.ops.hwnas.cblock``.

    Buffers: squeeze (mid, in) + (mid,), LiteConv pw{i} (mid, mid), dw{i} (mid, 1, 3, 3), db{i} (mid,)
    (first ``split`` of branch k1), gate fc1/fc2, restore (out, mid) + (out,), and a projection shortcut
    (out, in) + (out,) when in != out.
    """

    def __init__(self, block: CBlock, backend: str) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise UsageError(f"unknown fused backend {backend!r}, FusedCBlock, expected one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.kernel_sizes = block.kernel_sizes
        folded = fold_branches(block.branches, block.gate)
        self.split, self.layers = folded.split, len(folded.pw_weight)
        tensors = {"fc1_weight": folded.fc1_weight, "fc1_bias": folded.fc1_bias,
                   "fc2_weight": folded.fc2_weight, "fc2_bias": folded.fc2_bias}
        for i in range(self.layers):
            tensors.update({f"pw{i}": folded.pw_weight[i], f"dw{i}": folded.dw_weight[i], f"db{i}": folded.dw_bias[i]})
        units = {"squeeze": block.squeeze, "restore": block.restore}
        self.projection = not isinstance(block.shortcut, nn.Identity)
        if self.projection:
            units["shortcut"] = block.shortcut
        for name, unit in units.items():  # conv_bn_relu units: [1x1 conv, BN(, ReLU)]
            tensors[f"{name}_weight"], tensors[f"{name}_bias"] = fold_bn(unit[0].weight.flatten(1), unit[1])
        for name, t in tensors.items():
            self.register_buffer(name, t.detach().clone().contiguous())

    def _branch_args(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        idx = range(self.layers)
        return ([getattr(self, f"pw{i}") for i in idx], [getattr(self, f"dw{i}") for i in idx],
                [getattr(self, f"db{i}") for i in idx])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "eager":
            return self._forward_eager(x)
        pw, dw, db = self._branch_args()
        sc_w = self.shortcut_weight if self.projection else None
        sc_b = self.shortcut_bias if self.projection else None
        return torch.ops.hwnas.cblock(x, self.squeeze_weight, self.squeeze_bias, pw, dw, db, self.split,
                                      self.fc1_weight, self.fc1_bias, self.fc2_weight, self.fc2_bias,
                                      self.restore_weight, self.restore_bias, sc_w, sc_b)

    def _forward_eager(self, x: torch.Tensor) -> torch.Tensor:
        """The folded block in standard ops (ONNX-exportable)."""
        s = torch.relu(_conv1x1(x, self.squeeze_weight, self.squeeze_bias))
        pw, dw, db = self._branch_args()
        mixed = None
        for begin, end in ((0, self.split), (self.split, self.layers)):
            t = s
            for i in range(begin, end):
                t = torch.relu(F.conv2d(F.conv2d(t, pw[i][:, :, None, None]), dw[i], db[i], padding=1,
                                        groups=dw[i].shape[0]))
            g = t.mean(dim=(2, 3))
            g = torch.sigmoid(F.linear(torch.relu(F.linear(g, self.fc1_weight, self.fc1_bias)),
                                       self.fc2_weight, self.fc2_bias))
            t = t * g[:, :, None, None]
            mixed = t if mixed is None else mixed + t
        shortcut = _conv1x1(x, self.shortcut_weight, self.shortcut_bias) if self.projection else x
        return torch.relu(_conv1x1(mixed, self.restore_weight, self.restore_bias) + shortcut)

    def extra_repr(self) -> str:
        return f"kernel_sizes={self.kernel_sizes}, backend={self.backend!r}, projection={self.projection}"


def _conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight[:, :, None, None], bias)
