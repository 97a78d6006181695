"""pytest-benchmark runs of the CBlock epilogue: last BN + ReLU, channel gate and branch sum.

    pytest benchmarks/bench_gate_sum.py --benchmark-columns=median,iqr,ops

``eager``: ChannelGate applied to each branch's relu(bn(z)) and summed (as CBlock does); ``triton``:
hwnas::branch_pool + gate MLP + hwnas::gated_sum (two passes over z). Stage 1 of CDNet at 256x128.
"""
from __future__ import annotations

import pytest
import torch

from benchmarks._device import describe
from hwnas.space.blocks import ChannelGate

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
N, C, H, W, BRANCHES = (128 if DEVICE.type == "cuda" else 4), 64, 64, 32, 2


def _setup():
    torch.manual_seed(0)
    z = torch.randn(N, BRANCHES * C, H, W, device=DEVICE)
    affine = torch.stack([torch.zeros(BRANCHES * C), torch.ones(BRANCHES * C), torch.zeros(BRANCHES * C)]).to(DEVICE)
    return z, affine, ChannelGate(C).to(DEVICE)


def _eager(z, affine, gate):
    a = torch.relu((z - affine[0].view(1, -1, 1, 1)) * affine[1].view(1, -1, 1, 1) + affine[2].view(1, -1, 1, 1))
    return sum(gate(t) for t in a.chunk(BRANCHES, dim=1))


@pytest.mark.parametrize("impl", ["eager", "triton"])
def test_gate_sum(benchmark, impl):
    z, affine, gate = _setup()
    benchmark.extra_info["device"] = describe(DEVICE)
    if impl == "eager":
        benchmark(_eager, z, affine, gate)
        return
    from hwnas.ops import _triton
    ok, why = _triton.availability()
    if not ok:
        pytest.skip(why)
    gs = _triton.kernels().gate_sum

    def fused():
        pooled = gs.branch_pool(z, affine)
        values = _triton._gate_values(pooled, [gate], BRANCHES)
        return gs.gated_sum(z, affine, values, 1, BRANCHES)

    benchmark(fused)
