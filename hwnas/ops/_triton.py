"""The ``triton`` backend: CBlock branches and supernet candidates through the fused kernels of hwnas.kernels.

Per depth of the (horizontally fused) branch stacks one ``lite_conv`` launch computes 1x1 + depthwise 3x3
for every group, reducing the BN batch statistics in its epilogue; the next depth applies that BN + ReLU
in its prologue. After the last depth, ``branch_pool`` and ``gated_sum`` apply the last BN + ReLU, the
shared channel gate and the branch sum. In eval mode without autograd the BN is folded into the depthwise
weights (``lite_conv_folded``). Squeeze, restore and shortcut convs stay cuDNN/PyTorch convs.

Available when triton imports and either a CUDA device is present or ``TRITON_INTERPRET=1`` (the CPU
interpreter: correct but slow, for tests). ``auto`` picks it only on CUDA.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional, Sequence

import torch
from torch.nn import functional as F

from hwnas.ops._batched import DepthSchedule, bn_affine, make_gated_branch_sum, make_mixed_op
from hwnas.ops._dispatch import Backend, register_backend
from hwnas.ops.plan import GatedBranchesPlan, GatePlan, LiteConvPlan

_KERNELS: Optional[ModuleType] = None


def kernels() -> ModuleType:
    """``hwnas.kernels``; in a source checkout (not installed) the top-level ``kernels/`` folder is loaded under
    that name, so the package and the checkout run the same code."""
    global _KERNELS
    if _KERNELS is None:
        try:
            _KERNELS = importlib.import_module("hwnas.kernels")
        except ModuleNotFoundError:
            root = Path(__file__).resolve().parents[2] / "kernels"
            spec = importlib.util.spec_from_file_location("hwnas.kernels", root / "__init__.py",
                                                          submodule_search_locations=[str(root)])
            if spec is None or spec.loader is None:
                raise
            module = importlib.util.module_from_spec(spec)
            sys.modules["hwnas.kernels"] = module
            spec.loader.exec_module(module)
            _KERNELS = module
    return _KERNELS


@contextlib.contextmanager
def cpu_interpreter() -> Iterator[bool]:
    """Within the block, ``TRITON_INTERPRET=1`` when there is no CUDA device (tests, CPU smoke runs); yields
    whether the interpreter is on. Triton and the kernels first imported inside stay interpreted (triton's
    own ``@jit`` library is built at its import, so triton must not have been imported before outside such
    a block); the variable is restored afterwards, so code outside sees the real environment."""
    previous = os.environ.get("TRITON_INTERPRET")
    interpret = not torch.cuda.is_available()
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
        if importlib.util.find_spec("triton") is not None:
            importlib.import_module("triton.language")
    try:
        yield interpret
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous


def availability() -> tuple[bool, str]:
    """(available, reason): needs triton and a CUDA device, or TRITON_INTERPRET=1 for the CPU interpreter."""
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed (pip install 'hwnas[triton]')"
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return False, "no CUDA device (set TRITON_INTERPRET=1 to run the kernels in Triton's CPU interpreter)"
    try:
        kernels()
    except Exception as exc:  # a broken triton install must not break hwnas.ops
        return False, f"hwnas.kernels failed to import: {exc}"
    if not torch.cuda.is_available() and not _stdlib_interpreted():
        return False, ("triton was imported before TRITON_INTERPRET=1 was set, so its library is compiled-mode; "
                       "set the variable before anything imports triton")
    return True, ""


def _stdlib_interpreted() -> bool:
    """Whether triton.language's own @jit functions (tl.zeros, ...) were built for the interpreter."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.zeros, InterpretedFunction)


def _stack_weights(lcs: Sequence[LiteConvPlan]) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, C, C) pointwise and (G, C, 9) depthwise weights of G LiteConvs (differentiable)."""
    c = lcs[0].channels
    w_pw = torch.stack([lc.pointwise.view(c, c) for lc in lcs])
    w_dw = torch.stack([lc.depthwise.view(c, 9) for lc in lcs])
    return w_pw, w_dw


def _group_map(n_groups: int, block_of: Sequence[int], channels: int, shared: bool, device) -> torch.Tensor:
    """int32 first input channel of each group: 0 for a shared input, else its block's slice."""
    base = [0] * n_groups if shared else [b * channels for b in block_of]
    return torch.tensor(base, dtype=torch.int32, device=device)


def _folded(lcs: Sequence[LiteConvPlan]) -> bool:
    """Fold BN into the depthwise weights: eval-mode BN with running stats and no autograd."""
    return not torch.is_grad_enabled() and all(not lc.bn.training and lc.bn.running_mean is not None for lc in lcs)


def _run_depths(inputs: Sequence[torch.Tensor], schedule: DepthSchedule,
                inners: Sequence[GatedBranchesPlan]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """All LiteConv depths; returns per group its final (z, affine): ``bn(z) = (z - a[0]) * a[1] + a[2]``."""
    k = kernels()
    shared = all(t is inputs[0] for t in inputs)
    uniq = [inputs[0]] if shared else list(inputs)
    x = uniq[0] if shared else torch.cat(uniq, dim=1)
    c = inners[0].channels
    pre = None
    finals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for depth in range(schedule.depths[0]):
        g_active = schedule.active(depth)
        lcs = schedule.lite_convs(inners, depth)
        w_pw, w_dw = _stack_weights(lcs)
        if depth == 0:
            in_map = _group_map(g_active, [b for b, _ in schedule.groups], c, shared, x.device)
        else:
            in_map = torch.arange(0, g_active * c, c, dtype=torch.int32, device=x.device)
            x = x[:, :g_active * c]
            pre = None if pre is None else pre[:, :g_active * c]
        bns = [lc.bn for lc in lcs]
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if _folded(lcs):
            mean, scale, shift = bn_affine(bns, None, None, count)
            x = k.lite_conv.lite_conv_folded(x, in_map, w_pw, w_dw * scale.view(g_active, c, 1), shift - mean * scale)
            pre = None
            out_aff = torch.stack([torch.zeros_like(scale), torch.ones_like(scale), torch.zeros_like(scale)])
        else:
            x, stats = k.lite_conv.lite_conv(x, in_map, pre, w_pw, w_dw)
            pre = out_aff = bn_affine(bns, stats[0], stats[1], count)
        for g in schedule.finishing(depth):
            finals[g] = (x[:, g * c:(g + 1) * c], out_aff[:, g * c:(g + 1) * c])
    return finals


def _gate_values(pooled: torch.Tensor, gates: Sequence[GatePlan], branches: int) -> torch.Tensor:
    """(N, NB*branches*C) sigmoid gate values from (N, NB*branches*C) pooled means, each block's own MLP."""
    n = pooled.shape[0]
    per_block = pooled.view(n, len(gates), branches, -1)
    values = []
    for b, gate in enumerate(gates):
        s = per_block[:, b].reshape(n * branches, -1, 1, 1).to(gate.fc1_weight.dtype)
        hidden = torch.relu(F.conv2d(s, gate.fc1_weight, gate.fc1_bias))
        values.append(torch.sigmoid(F.conv2d(hidden, gate.fc2_weight, gate.fc2_bias)).view(n, -1))
    return torch.cat(values, dim=1)


def triton_branch_runner(inputs: Sequence[torch.Tensor], schedule: DepthSchedule,
                         inners: Sequence[GatedBranchesPlan]) -> list[torch.Tensor]:
    """Fused-kernel implementation of ``[sum_j gate_b(branch_bj(x_b)) for b]`` (see the module docstring)."""
    k = kernels()
    finals = _run_depths(inputs, schedule, inners)
    order = schedule.block_major()
    z = torch.cat([finals[g][0] for g in order], dim=1)
    affine = torch.cat([finals[g][1] for g in order], dim=1)
    pooled = k.gate_sum.branch_pool(z, affine)
    gate = _gate_values(pooled, [p.gate for p in inners], schedule.branches)
    out = k.gate_sum.gated_sum(z, affine, gate, schedule.n_blocks, schedule.branches)
    return list(out.chunk(schedule.n_blocks, dim=1))


register_backend(Backend("triton", {"gated_branch_sum": make_gated_branch_sum(triton_branch_runner),
                                    "mixed_op": make_mixed_op(triton_branch_runner)},
                         available=availability, priority=10 if torch.cuda.is_available() else -2))
