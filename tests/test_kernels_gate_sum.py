"""hwnas.kernels.gate_sum (branch_pool, gated_sum) against PyTorch: outputs and gradients."""
from __future__ import annotations

import pytest
import torch

from hwnas.ops import _triton

pytest.importorskip("triton", reason="triton is not installed (pip install 'hwnas[triton]'); the Triton "
                                     "kernel tests need it")
with _triton.cpu_interpreter():  # without a GPU the kernels are imported as interpreted functions
    gs = _triton.kernels().gate_sum


pytestmark = pytest.mark.usefixtures("triton_cpu")  # see tests/conftest.py


# N, n_blocks, branches, C, H, W
CASES = [(2, 1, 2, 6, 3, 7), (1, 2, 2, 5, 7, 1), (2, 3, 2, 4, 1, 1), (1, 1, 3, 17, 3, 3)]


def _inputs(n, blocks, branches, c, h, w, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    ct = blocks * branches * c
    z = torch.randn(n, ct, h, w, generator=g)
    affine = torch.stack([0.3 * torch.randn(ct, generator=g), torch.rand(ct, generator=g) + 0.5,
                          0.3 * torch.randn(ct, generator=g)])  # BN rows (mean, scale, shift)
    gate = torch.rand(n, ct, generator=g)
    return [t.to(dtype).requires_grad_() for t in (z, affine, gate)]


def _bn_relu(z, affine):
    return torch.relu((z - affine[0].view(1, -1, 1, 1)) * affine[1].view(1, -1, 1, 1) + affine[2].view(1, -1, 1, 1))


def ref_pool(z, affine):
    return _bn_relu(z, affine).float().mean((2, 3))


def ref_sum(z, affine, gate, blocks, branches):
    a = _bn_relu(z, affine) * gate[:, :, None, None]
    n, ct, h, w = a.shape
    return a.view(n, blocks, branches, ct // (blocks * branches), h, w).sum(2).reshape(n, -1, h, w)


def _check(out, out_ref, leaves, cot, tol):
    torch.testing.assert_close(out, out_ref, atol=tol, rtol=tol)
    got = torch.autograd.grad((out.float() * cot).sum(), leaves)
    want = torch.autograd.grad((out_ref.float() * cot).sum(), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}B{}J{}C{}H{}W{}".format(*c))
def test_branch_pool(case):
    z, affine, _ = _inputs(*case)
    out = gs.branch_pool(z, affine)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    _check(out, ref_pool(z, affine), [z, affine], cot, 1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}B{}J{}C{}H{}W{}".format(*c))
def test_gated_sum(case):
    z, affine, gate = _inputs(*case)
    blocks, branches = case[1], case[2]
    out = gs.gated_sum(z, affine, gate, blocks, branches)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    _check(out, ref_sum(z, affine, gate, blocks, branches), [z, affine, gate], cot, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gated_sum_half(dtype):
    z, affine, gate = _inputs(2, 2, 2, 8, 3, 5, dtype)
    out = gs.gated_sum(z, affine, gate, 2, 2)
    assert out.dtype == dtype
    want = ref_sum(*(t.float() for t in (z, affine, gate)), 2, 2)
    torch_err = (ref_sum(z, affine, gate, 2, 2).float() - want).abs().max().item()
    assert (out.float() - want).abs().max().item() <= 2 * torch_err + 1e-3


def test_opcheck():
    z, affine, gate = _inputs(2, 2, 2, 4, 3, 3)
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(torch.ops.hwnas.branch_pool.default, (z, affine), test_utils=utils)
    torch.library.opcheck(torch.ops.hwnas.gated_sum.default, (z, affine, gate, 2, 2), test_utils=utils)


def test_channels_must_split_into_blocks():
    z, affine, gate = (t.detach() for t in _inputs(1, 1, 2, 3, 2, 2))
    with pytest.raises(ValueError, match="do not split into 4 blocks x 2 branches"):
        gs.gated_sum_fwd(z, affine, gate, 4, 2)
    with pytest.raises(ValueError, match=r"expected \(3, 6\) rows"):
        gs.branch_pool_fwd(z, affine[:2])
