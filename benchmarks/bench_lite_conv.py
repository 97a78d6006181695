"""pytest-benchmark runs of one horizontally fused LiteConv depth (two CBlock branches, 1x1 + dw 3x3 + BN stats).

    pytest benchmarks/bench_lite_conv.py --benchmark-columns=median,iqr,ops

Implementations: ``eager`` (1x1 conv, depthwise conv and BN per branch, as nn.Modules run it), ``batched``
(one grouped conv chain + one BN over both branches) and ``triton`` (hwnas::lite_conv; needs CUDA, or
TRITON_INTERPRET=1 with --benchmark-disable for a correctness smoke run). GPU shape: stage 1 of CDNet at
256x128 (64x32, mid 64) at batch 128; CPU shape: batch 4. ``extra_info`` records the device and, for
triton, the achieved bandwidth against the device peak (minimal traffic: input read + z written once).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks._device import describe, lite_conv_min_bytes, peak_gbps

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
N, C, H, W, G = (128 if DEVICE.type == "cuda" else 4), 64, 64, 32, 2
DTYPES = [torch.float32, torch.float16] if DEVICE.type == "cuda" else [torch.float32]


def _setup(dtype):
    torch.manual_seed(0)
    x = torch.randn(N, C, H, W, device=DEVICE, dtype=dtype)
    w_pw = torch.randn(G, C, C, device=DEVICE, dtype=dtype) / C ** 0.5
    w_dw = torch.randn(G, C, 9, device=DEVICE, dtype=dtype) / 3
    bns = [nn.BatchNorm2d(C).to(DEVICE, dtype) for _ in range(G)]
    return x, w_pw, w_dw, bns


def _eager(x, w_pw, w_dw, bns):
    return [torch.relu(bn(F.conv2d(F.conv2d(x, w_pw[g].view(C, C, 1, 1)), w_dw[g].view(C, 1, 3, 3), padding=1,
                                   groups=C))) for g, bn in enumerate(bns)]


def _batched(x, w_pw, w_dw, bns):
    z = F.conv2d(F.conv2d(x, w_pw.reshape(G * C, C, 1, 1)), w_dw.reshape(G * C, 1, 3, 3), padding=1, groups=G * C)
    return torch.relu(F.batch_norm(z, None, None, None, None, True))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("impl", ["eager", "batched", "triton"])
def test_lite_conv(benchmark, impl, dtype):
    x, w_pw, w_dw, bns = _setup(dtype)
    benchmark.extra_info["device"] = describe(DEVICE)
    benchmark.extra_info["shape"] = f"N{N} C{C} {H}x{W} G{G}"
    if impl == "eager":
        benchmark(_eager, x, w_pw, w_dw, bns)
        return
    if impl == "batched":
        benchmark(_batched, x, w_pw, w_dw, bns)
        return
    from hwnas.ops import _triton
    ok, why = _triton.availability()
    if not ok:
        pytest.skip(why)
    op = _triton.kernels().lite_conv.lite_conv
    in_map = torch.zeros(G, dtype=torch.int32, device=DEVICE)
    benchmark(op, x, in_map, None, w_pw, w_dw)
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None and stats.median > 0:
        gbps = lite_conv_min_bytes(N, G, C, H, W, x.element_size(), True) / stats.median / 1e9
        peak = peak_gbps(DEVICE)
        benchmark.extra_info["achieved_GBps"] = round(gbps, 1)
        benchmark.extra_info["peak_fraction"] = round(gbps / peak, 3) if peak else "unknown peak"
