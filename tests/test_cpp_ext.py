"""The compiled extension hwnas._C against the eager reference: every candidate op, odd shapes, batch 1,
fp32, opcheck, argument checks, the ``cpp`` ops backend, the CUDA path (GPU only) and a CUDA
compile-only check (when nvcc is present)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from hwnas import ops
from hwnas.ops._cpp import cuda_status, extension_status, fold_bn, fold_branches
from hwnas.space.blocks import CBlock, CDBlock
from hwnas.space.candidates import CDNET_CANDIDATES, CNET_CANDIDATES

ROOT = Path(__file__).resolve().parents[1]
HAS_EXT, WHY_NOT = extension_status()
needs_ext = pytest.mark.skipif(not HAS_EXT, reason=f"hwnas._C not built: {WHY_NOT}")
PAIRS = sorted({(c.k1, c.k2) for c in CNET_CANDIDATES})
# (N, in, out, H, W): batch 1, odd sizes, 1x1 maps, widths that are not a multiple of the SIMD width.
SHAPES = [(1, 16, 16, 7, 5), (2, 12, 20, 5, 3), (3, 36, 36, 1, 1), (1, 8, 44, 9, 4)]
ATOL, RTOL = 1e-5, 1e-4  # fp32


def randomize_bn(module: torch.nn.Module, gen: torch.Generator) -> torch.nn.Module:
    """Non-trivial BN statistics so folding is really exercised."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return module.eval()


def detached(args: tuple) -> tuple:
    """Inference-op arguments: the ops have no autograd formula, so no argument requires grad."""
    return tuple([t.detach() for t in a] if isinstance(a, list) else a.detach() if isinstance(a, torch.Tensor) else a
                 for a in args)


def cblock_args(block: CBlock) -> tuple:
    """The folded arguments of torch.ops.hwnas.cblock after x."""
    sw, sb = fold_bn(block.squeeze[0].weight.flatten(1), block.squeeze[1])
    rw, rb = fold_bn(block.restore[0].weight.flatten(1), block.restore[1])
    scw = scb = None
    if not isinstance(block.shortcut, torch.nn.Identity):
        scw, scb = fold_bn(block.shortcut[0].weight.flatten(1), block.shortcut[1])
    return detached((sw, sb, *fold_branches(block.branches, block.gate).args(), rw, rb, scw, scb))


def make_block(cin: int, cout: int, k1: int, k2: int, seed: int = 0) -> CBlock:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return randomize_bn(CBlock(cin, cout, k1, k2), gen)


@needs_ext
@pytest.mark.parametrize("k1,k2", PAIRS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cblock_matches_eager(k1: int, k2: int, shape: tuple[int, ...]) -> None:
    n, cin, cout, h, w = shape
    block = make_block(cin, cout, k1, k2)
    x = torch.randn(n, cin, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = block(x)
        got = torch.ops.hwnas.cblock(x, *cblock_args(block))
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


@needs_ext
@pytest.mark.parametrize("k1,k2", PAIRS)
def test_gated_branch_sum_matches_eager(k1: int, k2: int) -> None:
    block = make_block(24, 28, k1, k2)  # mid = 7: an odd channel count
    x = torch.randn(1, 7, 6, 5, generator=torch.Generator().manual_seed(2)).relu()
    with torch.no_grad():
        want = ops._eager.gated_branch_sum(x, block.branches, block.gate)
        got = torch.ops.hwnas.gated_branch_sum(x, *fold_branches(block.branches, block.gate).args())
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


@needs_ext
@pytest.mark.parametrize("cand", CDNET_CANDIDATES, ids=str)
def test_cdblock_every_cdnet_candidate(cand) -> None:
    """CDBlock = r CBlocks: the compiled blocks in sequence match the eval CDBlock (projection first)."""
    torch.manual_seed(3)
    block = randomize_bn(CDBlock(12, 16, cand.k1, cand.k2, cand.r), torch.Generator().manual_seed(3))
    x = torch.randn(2, 12, 5, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = block(x)
        got = x
        for sub in block:
            got = torch.ops.hwnas.cblock(got, *cblock_args(sub))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


@needs_ext
def test_non_contiguous_input() -> None:
    block = make_block(16, 16, 3, 5)
    x = torch.randn(2, 5, 16, 3, generator=torch.Generator().manual_seed(5)).transpose(1, 2)  # (2, 16, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(torch.ops.hwnas.cblock(x, *cblock_args(block)), block(x), atol=ATOL, rtol=RTOL)


@needs_ext
@pytest.mark.parametrize("projection", [False, True])
def test_opcheck(projection: bool) -> None:
    block = make_block(12 if projection else 16, 16, 3, 7)
    x = torch.randn(2, block.in_channels, 5, 3)
    torch.library.opcheck(torch.ops.hwnas.cblock.default, (x, *cblock_args(block)))
    s = torch.randn(1, 4, 3, 5)
    torch.library.opcheck(torch.ops.hwnas.gated_branch_sum.default,
                          (s, *detached(fold_branches(block.branches, block.gate).args())))


@needs_ext
def test_bad_arguments_name_the_field() -> None:
    block = make_block(16, 16, 3, 5)
    args = list(cblock_args(block))
    x = torch.randn(1, 16, 4, 4)
    args[2] = [args[2][0][:, :3], *args[2][1:]]  # pw_weight[0] (4, 3) instead of (4, 4)
    with pytest.raises(RuntimeError, match=r"pw_weight\[0\] must have shape \[4, 4\]"):
        torch.ops.hwnas.cblock(x, *args)
    with pytest.raises(RuntimeError, match="x must have 16 channels"):
        torch.ops.hwnas.cblock(torch.randn(1, 8, 4, 4), *cblock_args(block))
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.hwnas.cblock(x.double(), *cblock_args(block))
    bad = list(cblock_args(block))
    bad[5] = 0  # split
    with pytest.raises(RuntimeError, match="split must be in"):
        torch.ops.hwnas.cblock(x, *bad)


@needs_ext
def test_cpp_backend_inference_and_fallback() -> None:
    """Eval + no_grad runs the compiled op; training mode or grad-enabled calls use the eager reference."""
    block = make_block(16, 32, 5, 9)
    x = torch.randn(2, 16, 6, 4)
    with torch.no_grad():
        want = block(x)
        with ops.use_backend("cpp"):
            got = block(x)
    assert got.is_contiguous(memory_format=torch.channels_last) and not want.is_contiguous(
        memory_format=torch.channels_last)  # the compiled op returns channels_last: it really ran
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)
    with ops.use_backend("cpp"):
        out = block(x)  # grad enabled: eager path, so gradients flow
        out.sum().backward()
    assert block.squeeze[0].weight.grad is not None


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_status()[0], reason=f"CUDA path unavailable: {cuda_status()[1]}")
@pytest.mark.parametrize("k1,k2", PAIRS)
def test_cuda_matches_eager(k1: int, k2: int) -> None:
    block = make_block(12, 20, k1, k2).cuda()
    x = torch.randn(3, 12, 7, 5, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(torch.ops.hwnas.cblock(x, *cblock_args(block)), block(x), atol=1e-4, rtol=1e-4)


def _torch_includes(tmp_path: Path) -> list[str]:
    from torch.utils.cpp_extension import include_paths

    flags = [f"-I{p}" for p in include_paths()]
    generated = Path(include_paths()[0]) / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    if not generated.exists():  # a CPU wheel ships c10/cuda headers but not this CMake-generated one
        shim = tmp_path / "c10" / "cuda" / "impl"
        shim.mkdir(parents=True)
        (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        flags.insert(0, f"-I{tmp_path}")
    return flags


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_cuda_sources_compile(tmp_path: Path) -> None:
    """Compile-only check of the CUDA implementation (it runs only where a CUDA torch and a GPU exist):
    nvcc compiles the kernels, the host compiler checks the registration file against torch's headers."""
    cuda_dir = ROOT / "csrc" / "ops" / "cuda"
    nvcc = ["nvcc", "-c", "-std=c++17", "-O3", str(cuda_dir / "cblock_cuda.cu"), "-o", str(tmp_path / "k.o")]
    proc = subprocess.run(nvcc, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "k.o").stat().st_size > 0
    homes = [os.environ.get("CUDA_HOME", ""), str(Path(shutil.which("nvcc")).resolve().parents[1]), "/usr/local/cuda"]
    cuda_include = next((Path(h) / "include" for h in homes if h and (Path(h) / "include" / "cuda_runtime.h").exists()),
                        None)
    if cuda_include is None:
        pytest.skip(f"kernels compiled; no cuda_runtime.h under {homes} for the host-file check")
    cxx = os.environ.get("CXX", "c++")
    host = [cxx, "-fsyntax-only", "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
            *_torch_includes(tmp_path), f"-I{cuda_include}", str(cuda_dir / "cblock_cuda_host.cpp")]
    proc = subprocess.run(host, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
