"""The ``cpp`` backend: the compiled extension ``hwnas._C`` (fused inference CBlock, C++ CPU / CUDA).

The compiled ops are inference-only (BN folded, no autograd), so this backend runs them only for
eval-mode modules when no gradient is needed (``torch.no_grad()`` / ``torch.inference_mode()``), on
float32 tensors of a device the extension was built for; every other call goes to the eager reference.
Schemas are declared in ``csrc/ops/cblock.cpp``; the fake (shape) functions below let ``torch.compile``
and ``torch.library.opcheck`` trace them.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

from hwnas.errors import UsageError
from hwnas.ops import _eager
from hwnas.ops._dispatch import Backend, register_backend
from hwnas.ops.plan import GatedBranchesPlan, gated_branches_plan

log = logging.getLogger(__name__)

_C: ModuleType | None
try:
    _C = importlib.import_module("hwnas._C")
    _IMPORT_ERROR = ""
except ImportError as exc:  # the optional build was skipped or failed at install time
    _C = None
    _IMPORT_ERROR = (f"the compiled extension hwnas._C is not built ({exc}); its optional build runs during "
                     "`pip install -e .` and needs cmake, a C++20 compiler and pybind11 (see docs/deployment.md)")


def extension_status() -> tuple[bool, str]:
    """(loaded, why-not) for ``hwnas._C``."""
    return (_C is not None, _IMPORT_ERROR)


def cuda_status() -> tuple[bool, str]:
    """(usable, why-not) for the CUDA implementation of the compiled ops."""
    if _C is None:
        return False, _IMPORT_ERROR
    if not _C.with_cuda:
        return False, ("hwnas._C was built without CUDA (the CUDA part builds only with nvcc and a CUDA build of "
                       f"PyTorch; this torch is {torch.__version__})")
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible"
    return True, ""


def device_supported(device: torch.device) -> bool:
    """Whether the compiled ops have a kernel for tensors on ``device``."""
    if _C is None:
        return False
    return device.type == "cpu" or (device.type == "cuda" and bool(_C.with_cuda))


@dataclass(frozen=True)
class FoldedBranches:
    """The two gated LiteConv branches of a CBlock with BN folded, as the compiled ops take them.

    pw_weight: (mid, mid) each; dw_weight: (mid, 1, 3, 3) each (times the BN scale); dw_bias: (mid,) each;
    the first ``split`` entries are branch k1. fc1: (hid, mid), (hid,); fc2: (mid, hid), (mid,).
    """

    pw_weight: tuple[torch.Tensor, ...]
    dw_weight: tuple[torch.Tensor, ...]
    dw_bias: tuple[torch.Tensor, ...]
    split: int
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor

    def args(self) -> tuple:
        """Positional arguments after ``x`` of ``torch.ops.hwnas.gated_branch_sum``."""
        return (list(self.pw_weight), list(self.dw_weight), list(self.dw_bias), self.split,
                self.fc1_weight, self.fc1_bias, self.fc2_weight, self.fc2_bias)


def fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d, bias: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BN into the conv before it: returns (weight * scale, shift (+ bias * scale))."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    if bias is not None:
        shift = shift + bias * scale
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


def fold_gated_branches(plan: GatedBranchesPlan) -> FoldedBranches:
    """Fold the BN of every LiteConv of a two-branch plan and flatten the shared gate's 1x1 convs."""
    if len(plan.branches) != 2:
        raise UsageError(f"{len(plan.branches)} branches, compiled gated_branch_sum, expected exactly 2")
    pw, dw, db = [], [], []
    for branch in plan.branches:
        for lite in branch.layers:
            w, b = fold_bn(lite.depthwise, lite.bn)
            pw.append(lite.pointwise.flatten(1))
            dw.append(w)
            db.append(b)
    g = plan.gate
    return FoldedBranches(tuple(pw), tuple(dw), tuple(db), len(plan.branches[0]),
                          g.fc1_weight.flatten(1), g.fc1_bias, g.fc2_weight.flatten(1), g.fc2_bias)


def fold_branches(branches: Sequence[nn.Module], gate: nn.Module) -> FoldedBranches:
    """:func:`fold_gated_branches` of the plan that ``branches`` and ``gate`` describe (``ops_plan()``)."""
    plan = gated_branches_plan(branches, gate)
    if plan is None:
        raise UsageError(f"branches {[type(b).__name__ for b in branches]} with gate {type(gate).__name__}, "
                         "fold_branches, expected modules whose ops_plan() describes LiteConv branches and a gate")
    return fold_gated_branches(plan)


def _use_compiled(x: torch.Tensor, plan: GatedBranchesPlan) -> bool:
    if x.dtype != torch.float32 or not device_supported(x.device):
        return False
    if plan.training:
        return False  # BN in training mode normalises with batch statistics: nothing to fold
    if torch.is_grad_enabled():
        return not (x.requires_grad or any(t.requires_grad for t in plan.tensors()))
    return True


def gated_branch_sum(x: torch.Tensor, branches: Sequence[nn.Module], gate: nn.Module) -> torch.Tensor:
    """Compiled ``sum_b gate(branch_b(x))`` for inference; otherwise the eager reference (see module doc)."""
    plan = gated_branches_plan(branches, gate)
    if plan is None or len(plan.branches) != 2 or not _use_compiled(x, plan):
        return _eager.gated_branch_sum(x, branches, gate)
    with torch.no_grad():
        return torch.ops.hwnas.gated_branch_sum(x, *fold_gated_branches(plan).args())


def _register_fakes() -> None:
    def channels_last(x: torch.Tensor, channels: int) -> torch.Tensor:
        n, _, h, w = x.shape
        return torch.empty((n, channels, h, w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)

    @torch.library.register_fake("hwnas::gated_branch_sum")
    def _gbs_fake(x, pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias, fc2_weight, fc2_bias):
        return channels_last(x, x.shape[1])

    @torch.library.register_fake("hwnas::cblock")
    def _cblock_fake(x, squeeze_weight, squeeze_bias, pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias,
                     fc2_weight, fc2_bias, restore_weight, restore_bias, shortcut_weight, shortcut_bias):
        return channels_last(x, restore_weight.shape[0])


if _C is not None:
    _register_fakes()

register_backend(Backend("cpp", {"gated_branch_sum": gated_branch_sum}, available=extension_status, priority=1))
