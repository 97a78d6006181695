"""hwnas.kernels.lite_conv against a PyTorch reference: outputs, BN statistics and gradients.

Without a GPU the kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1 while the kernels are
imported and while this module runs); shapes are tiny because every program instance costs tens of milliseconds there.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from hwnas.ops import _triton

pytest.importorskip("triton", reason="triton is not installed (pip install 'hwnas[triton]'); the Triton "
                                     "kernel tests need it")
with _triton.cpu_interpreter():  # without a GPU the kernels are imported as interpreted functions
    lc = _triton.kernels().lite_conv
PixelTiling, channel_block = _triton.kernels()._config.PixelTiling, _triton.kernels()._config.channel_block


pytestmark = pytest.mark.usefixtures("triton_cpu")  # see tests/conftest.py


# N, C, H, W, groups, shared input, prologue (normalise + ReLU of the previous BN)
CASES = [
    (2, 6, 3, 7, 2, True, False),
    (1, 5, 7, 3, 3, False, True),
    (2, 4, 1, 1, 2, False, True),
    (1, 16, 1, 7, 1, True, True),
]


def _inputs(n, c, h, w, groups, shared, prologue, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    c_in = c if shared else groups * c + 3  # extra channels: groups read a slice of a wider tensor
    x = torch.randn(n, c_in, h, w, generator=g)
    base = [0] * groups if shared else [3 + i * c for i in reversed(range(groups))]
    in_map = torch.tensor(base, dtype=torch.int32)
    pre = None
    if prologue:  # previous BN as rows (mean, scale, shift)
        pre = torch.stack([0.3 * torch.randn(c_in, generator=g), torch.rand(c_in, generator=g) + 0.5,
                           0.3 * torch.randn(c_in, generator=g)])
    w_pw = torch.randn(groups, c, c, generator=g) / c ** 0.5
    w_dw = torch.randn(groups, c, 9, generator=g) / 3

    def cast(t):
        return None if t is None else t.to(dtype).requires_grad_()

    return cast(x), in_map, cast(pre), cast(w_pw), cast(w_dw)


def reference(x, in_map, pre, w_pw, w_dw):
    """The definition: per group, optional relu(x * scale + shift), 1x1 conv, depthwise 3x3; BN batch mean and
    biased variance of the result."""
    a = x if pre is None else torch.relu((x - pre[0].view(1, -1, 1, 1)) * pre[1].view(1, -1, 1, 1)
                                         + pre[2].view(1, -1, 1, 1))
    groups, c = w_pw.shape[:2]
    outs = []
    for g in range(groups):
        base = int(in_map[g])
        u = F.conv2d(a[:, base:base + c], w_pw[g].view(c, c, 1, 1))
        outs.append(F.conv2d(u, w_dw[g].view(c, 1, 3, 3), padding=1, groups=c))
    z = torch.cat(outs, dim=1)
    zf = z.float()
    return z, torch.stack([zf.mean((0, 2, 3)), zf.var((0, 2, 3), unbiased=False)])


def _grads(fn, args, cot_z, cot_s):
    z, stats = fn(*args)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    loss = (z.float() * cot_z).sum() + (stats * cot_s).sum()
    return (z, stats), torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}C{}H{}W{}G{}{}{}".format(*c[:5], "s" * c[5], "p" * c[6]))
def test_forward_backward_fp32(case):
    args = _inputs(*case)
    n, c, h, w, groups = case[:5]
    g = torch.Generator().manual_seed(1)
    cot_z = torch.randn(n, groups * c, h, w, generator=g)
    cot_s = torch.randn(2, groups * c, generator=g)
    (z, stats), grads = _grads(lc.lite_conv, args, cot_z, cot_s)
    (z_ref, stats_ref), grads_ref = _grads(reference, args, cot_z, cot_s)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats, stats_ref, atol=1e-4, rtol=1e-5)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_many_small_tiles(monkeypatch):
    """GPU-sized tiles (16 positions): several programs per group, a ragged last tile, merged BN stats."""
    monkeypatch.setattr(lc, "pixel_tiling", lambda pixels, channels: PixelTiling(16, channel_block(channels), 4))
    args = _inputs(2, 6, 7, 5, 2, False, True)  # 70 positions -> 5 tiles
    g = torch.Generator().manual_seed(1)
    cot_z, cot_s = torch.randn(2, 12, 7, 5, generator=g), torch.randn(2, 12, generator=g)
    (z, stats), grads = _grads(lc.lite_conv, args, cot_z, cot_s)
    (z_ref, stats_ref), grads_ref = _grads(reference, args, cot_z, cot_s)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats, stats_ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_within_2x_of_pytorch(dtype):
    """Error against an fp32 reference at most ~2x PyTorch's own error in the same half dtype."""
    case = (2, 8, 3, 5, 2, False, True)
    args32 = _inputs(*case)
    args_lo = _inputs(*case, dtype=dtype)
    g = torch.Generator().manual_seed(2)
    cot_z = torch.randn(2, 16, 3, 5, generator=g)
    cot_s = torch.zeros(2, 16)
    (z32, _), g32 = _grads(reference, args32, cot_z, cot_s)
    (z_k, _), g_k = _grads(lc.lite_conv, args_lo, cot_z, cot_s)
    (z_t, _), g_t = _grads(reference, args_lo, cot_z, cot_s)
    assert z_k.dtype == dtype
    for got, torch_lo, want in zip((z_k,) + g_k, (z_t,) + g_t, (z32,) + g32):
        err = (got.float() - want).abs().max().item()
        torch_err = (torch_lo.float() - want).abs().max().item()
        assert err <= 2 * torch_err + 1e-3 * want.abs().max().item(), (err, torch_err)


def test_folded_inference_matches_eval_batchnorm():
    """lite_conv_folded = relu(BN_eval(dw(pw(x)))) with BN folded into the depthwise weights and a bias."""
    x, in_map, _, w_pw, w_dw = (t.detach() if isinstance(t, torch.Tensor) else t
                                   for t in _inputs(1, 6, 7, 3, 2, True, False))
    g = torch.Generator().manual_seed(3)
    mean, var = torch.randn(12, generator=g), torch.rand(12, generator=g) + 0.5
    weight, bias = torch.randn(12, generator=g), torch.randn(12, generator=g)
    z, _ = reference(x, in_map, None, w_pw, w_dw)
    want = torch.relu(F.batch_norm(z, mean, var, weight, bias, False, 0.0, 1e-5))
    scale = weight / torch.sqrt(var + 1e-5)
    got = lc.lite_conv_folded(x, in_map, w_pw, w_dw * scale.view(2, 6, 1), bias - mean * scale)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_opcheck():
    args = _inputs(2, 4, 3, 3, 2, False, True)
    torch.library.opcheck(torch.ops.hwnas.lite_conv.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_bad_shapes_name_the_argument():
    x, in_map, _, w_pw, w_dw = (t.detach() if t is not None else t for t in _inputs(1, 4, 3, 3, 2, True, False))
    with pytest.raises(ValueError, match="w_pw .G, C, C. and w_dw .G, C, 9."):
        lc.lite_conv_fwd(x, in_map, None, w_pw, w_dw[:, :, :4])
    with pytest.raises(ValueError, match="expected in_map int32"):
        lc.lite_conv_fwd(x, in_map.long(), None, w_pw, w_dw)
    with pytest.raises(ValueError, match=r"expected pre \(3, C_in=4\)"):
        lc.lite_conv_fwd(x, in_map, torch.ones(2, 4), w_pw, w_dw)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: compiles the kernels for the GPU")
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
def test_gpu_matches_reference(dtype, tol):
    args = tuple(t.cuda() if isinstance(t, torch.Tensor) else t for t in _inputs(4, 64, 17, 9, 2, False, True))
    args = tuple(t.detach().to(dtype) if t is not None and t.is_floating_point() else t for t in args)
    z, stats = lc.lite_conv(*args)
    z_ref, stats_ref = reference(*(t.float() if t is not None and t.is_floating_point() else t for t in args))
    torch.testing.assert_close(z.float(), z_ref, atol=tol, rtol=tol)
    torch.testing.assert_close(stats, stats_ref, atol=tol * stats_ref.abs().max().item(), rtol=tol)
