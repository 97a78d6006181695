"""Plans (hwnas.ops.plan): the blocks' descriptions equal their forward, the fused backends take their fused
path from plans alone (also for a block hwnas does not define), and hwnas.ops never imports hwnas.space."""
from __future__ import annotations

import ast
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from hwnas import ops
from hwnas.errors import UsageError
from hwnas.ops import _batched, _eager, _triton
from hwnas.ops.plan import (
    BlockChainPlan,
    BranchPlan,
    CBlockPlan,
    GatedBranchesPlan,
    GatePlan,
    LiteConvPlan,
    block_chain,
    gated_branches_plan,
    plan_of,
)
from hwnas.space.blocks import Branch, CBlock, CDBlock, ChannelGate, LiteConv

pytestmark = pytest.mark.usefixtures("triton_cpu")  # see tests/conftest.py
OPS_DIR = Path(__file__).resolve().parents[1] / "hwnas" / "ops"

with _triton.cpu_interpreter():
    _TRITON = _triton.availability()
FUSED = ["batched", pytest.param("triton", marks=pytest.mark.skipif(
    not _TRITON[0], reason=f"triton backend unavailable: {_TRITON[1]}"))]


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return module


BLOCKS = {
    "liteconv": (lambda: LiteConv(6), 6),
    "branch-k7": (lambda: Branch(6, 7), 6),
    "gate": (lambda: ChannelGate(8), 8),
    "cblock-identity": (lambda: CBlock(16, 16, 3, 9), 16),
    "cblock-projection": (lambda: CBlock(12, 20, 5, 7), 12),
    "cdblock-r2": (lambda: CDBlock(8, 16, 3, 5, r=2), 8),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", BLOCKS)
def test_plan_reference_equals_block_forward(name: str, mode: str) -> None:
    """The plan describes the block exactly: same output bits and the same BN running statistics."""
    torch.manual_seed(0)
    make, channels = BLOCKS[name]
    block = getattr(_randomize(make()), mode)()
    x = torch.randn(2, channels, 5, 3)
    mine, theirs = copy.deepcopy(block), copy.deepcopy(block)
    with ops.use_backend("eager"):
        want = theirs(x)
    got = mine.ops_plan().reference(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for (n, a), (_, b) in zip(mine.named_buffers(), theirs.named_buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=n)


def test_plans_hold_the_blocks_own_tensors() -> None:
    """Plans are views of the module (so gradients and BN updates reach it), rebuilt per call."""
    block = CDBlock(8, 16, 3, 7, r=2)
    chain = block.ops_plan()
    assert isinstance(chain, BlockChainPlan) and len(chain.blocks) == 2
    first = chain.blocks[0]
    assert isinstance(first, CBlockPlan) and first.shortcut is not None and chain.blocks[1].shortcut is None
    assert first.inner.branches[1][2].pointwise is block[0].branches[1][2].pointwise.weight
    assert first.inner.branches[0][0].bn is block[0].branches[0][0].bn
    assert [len(b) for b in first.inner.branches] == [1, 3]
    assert len(block_chain(block)) == 2 and block_chain(block[1])[0].squeeze.weight is block[1].squeeze[0].weight
    assert block_chain(nn.Conv2d(2, 2, 1)) is None and plan_of(nn.ReLU()) is None


def test_plan_shape_errors_name_the_field() -> None:
    bn = nn.BatchNorm2d(4)
    with pytest.raises(UsageError, match=r"pointwise weight has shape \(4, 3, 1, 1\), LiteConvPlan, expected"):
        LiteConvPlan(torch.zeros(4, 3, 1, 1), torch.zeros(4, 1, 3, 3), bn)
    with pytest.raises(UsageError, match="BranchPlan.layers, expected at least one"):
        BranchPlan(())
    gate = ChannelGate(8).ops_plan()
    with pytest.raises(UsageError, match=r"widths \[4, 8\], GatedBranchesPlan"):
        GatedBranchesPlan((Branch(4, 3).ops_plan(),), gate)
    with pytest.raises(UsageError, match="fc2 bias has shape"):
        GatePlan(gate.fc1_weight, gate.fc1_bias, gate.fc2_weight, torch.zeros(3))
    # modules of mixed widths have no joint plan: the backends run them eagerly
    assert gated_branches_plan([Branch(4, 3)], ChannelGate(8)) is None


class PlainGate(nn.Module):
    """A squeeze-excitation gate written without hwnas.space: it plugs in by describing itself."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(2, channels, 1, 1) / 3), nn.Parameter(torch.randn(2) / 3)
        self.w2, self.b2 = nn.Parameter(torch.randn(channels, 2, 1, 1) / 3), nn.Parameter(torch.randn(channels) / 3)

    def ops_plan(self) -> GatePlan:
        return GatePlan(self.w1, self.b1, self.w2, self.b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops_plan().reference(x)


class PlainBranch(nn.Module):
    """LiteConvs as bare parameters and BNs (no LiteConv/Branch class)."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        self.pw = nn.ParameterList(nn.Parameter(torch.randn(channels, channels, 1, 1) / 3) for _ in range(depth))
        self.dw = nn.ParameterList(nn.Parameter(torch.randn(channels, 1, 3, 3) / 3) for _ in range(depth))
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(depth))

    def ops_plan(self) -> BranchPlan:
        return BranchPlan(tuple(LiteConvPlan(p, d, bn) for p, d, bn in zip(self.pw, self.dw, self.bns)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops_plan().reference(x)


class ThreeBranchBlock(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.branches = nn.ModuleList(PlainBranch(channels, d) for d in (2, 1, 3))
        self.gate = PlainGate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.gated_branch_sum(x, self.branches, self.gate)


@pytest.fixture
def no_eager_fallback(monkeypatch):
    """Make the eager fallbacks fail, so a test passes only if the fused path ran."""
    def refuse(*args, **kwargs):
        raise AssertionError("the backend fell back to eager")
    monkeypatch.setattr(_eager, "gated_branch_sum", refuse)
    monkeypatch.setattr(_eager, "mixed_op", refuse)


@pytest.mark.parametrize("backend", FUSED)
def test_fused_backend_runs_a_block_it_does_not_know(backend: str, no_eager_fallback) -> None:
    """A block from outside hwnas.space, described only by plans, runs fused and matches its own forward."""
    torch.manual_seed(0)
    block = ThreeBranchBlock().train()
    x = torch.randn(2, 8, 5, 4)
    ref, fused = copy.deepcopy(block), copy.deepcopy(block)
    want = sum(ref.gate(b(x)) for b in ref.branches)
    xr = x.clone().requires_grad_()
    with ops.use_backend(backend):
        got = fused(xr)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    cot = torch.randn_like(want)
    got.backward(cot)
    grads_want = torch.autograd.grad(want, list(ref.parameters()), cot)
    for (name, p), g in zip(fused.named_parameters(), grads_want):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5, msg=name)
    for (name, a), (_, b) in zip(fused.named_buffers(), ref.named_buffers()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("backend", FUSED)
def test_fused_backend_takes_the_fused_path_for_hwnas_blocks(backend: str, no_eager_fallback) -> None:
    """CBlocks (gated_branch_sum) and CDBlock candidates (mixed_op) never reach the eager fallback."""
    torch.manual_seed(0)
    block = CBlock(8, 16, 3, 7).train()
    candidates = nn.ModuleList([CDBlock(8, 16, 3, 5, 1), CDBlock(8, 16, 5, 9, 2), CDBlock(8, 16, 3, 7, 2)])
    x = torch.randn(2, 8, 3, 5)
    with ops.use_backend(backend):
        block(x)
        ops.mixed_op(x, candidates, torch.tensor([0.0, 1.0, 1.0]), [1, 2])


def test_schedule_refuses_bns_that_cannot_share_a_normalisation() -> None:
    a, b = CBlock(8, 8, 3, 5).ops_plan(), CBlock(8, 8, 3, 5).ops_plan()
    assert _batched.schedule_branches([a.inner, b.inner]) is not None
    b.inner.branches[0][0].bn.momentum = 0.3
    assert _batched.schedule_branches([a.inner, b.inner]) is None


def test_importing_ops_does_not_import_the_space() -> None:
    """The import cycle is gone: a fresh interpreter imports hwnas.ops without hwnas.space or hwnas.models."""
    code = ("import sys, hwnas.ops; bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['hwnas', 'space'], ['hwnas', 'models'])); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ops_sources_never_import_the_model_classes() -> None:
    """Also no late (function-level) import: every import statement of hwnas/ops/*.py is checked."""
    offenders = []
    for path in sorted(OPS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.startswith(("hwnas.space", "hwnas.models", "hwnas.search"))]
    assert not offenders
