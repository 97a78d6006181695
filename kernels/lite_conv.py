"""Fused LiteConv: 1x1 conv -> depthwise 3x3 (pad 1) in one kernel, for G branch groups at once.

Training-mode BatchNorm is split across kernels so no pass exists only for BN:
- the producer (this kernel) reduces the per-channel batch statistics (sum, sum of squares) of its
  pre-BN output ``z`` in its epilogue;
- the consumer (the next LiteConv, or the gate kernels of :mod:`.gate_sum`) applies the normalise +
  ReLU ``relu(z * scale + shift)`` in its prologue while loading ``z``.

Horizontal fusion: ``G`` groups (the branches of a CBlock, or of all selected candidates of a supernet
layer) run in one launch. Group ``g`` has its own (C x C) pointwise and (C x 3 x 3) depthwise weights and
reads the C input channels starting at ``in_map[g]`` (a shared input maps every group to channel 0).

The halo of the depthwise conv is handled by recomputing the pointwise conv at the nine shifted pixel
positions of the tile (nine small tl.dot's): the 1x1 intermediate never touches global memory.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from hwnas.errors import UsageError

from ._config import check_tensor, dot_precision, dot_upcast, pixel_tiling


@triton.jit
def _lite_conv_fwd_kernel(
    x_ptr, in_map_ptr, pre_ptr, wpw_ptr, wdw_ptr, bias_ptr, z_ptr, stats_ptr,
    N, C, H, W, C_in, stride_xn, stride_xc,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, HAS_PROLOGUE: tl.constexpr, COMPUTE_STATS: tl.constexpr,
    EPI_BIAS_RELU: tl.constexpr, PRECISION: tl.constexpr, DOT_F32: tl.constexpr,
):
    """One program: BLOCK_P flattened (n, h, w) positions x all C channels of group ``program_id(1)``.

    x: (N, C_in, H, W), strides (stride_xn, stride_xc, W, 1); in_map: (G,) int32 first input channel;
    pre: (3, C_in) prologue BN rows (mean, scale, shift): relu((x - mean) * scale + shift);
    wpw: (G, C, C) [g, co, ci] contiguous;
    wdw: (G, C, 9) contiguous; bias: (G*C,) (EPI_BIAS_RELU, BN folded into wdw); z: (N, G*C, H, W)
    contiguous; stats: (num_programs(0), 2, G*C) fp32 per-tile sum and centred sum of squares of z.
    """
    pid_p = tl.program_id(0)
    g = tl.program_id(1)
    GC = tl.num_programs(1) * C
    HW = H * W
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = offs_p < N * HW
    n = offs_p // HW
    hw = offs_p % HW
    h = hw // W
    w = hw % W
    offs_c = tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    in_base = tl.load(in_map_ptr + g)

    # pointwise weight as the (ci, co) right operand of tl.dot
    wt = tl.load(wpw_ptr + g * C * C + offs_c[None, :] * C + offs_c[:, None],
                 mask=c_mask[:, None] & c_mask[None, :], other=0.0)
    if DOT_F32:
        wt = wt.to(tl.float32)
    if HAS_PROLOGUE:
        mu = tl.load(pre_ptr + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        sc = tl.load(pre_ptr + C_in + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        sh = tl.load(pre_ptr + 2 * C_in + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for t in tl.static_range(9):
        hh = h + (t // 3 - 1)
        ww = w + (t % 3 - 1)
        valid = p_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        m2 = valid[:, None] & c_mask[None, :]
        ptrs = x_ptr + n[:, None] * stride_xn + (in_base + offs_c[None, :]) * stride_xc + (hh * W + ww)[:, None]
        a = tl.load(ptrs, mask=m2, other=0.0)
        if HAS_PROLOGUE:
            a = tl.maximum((a.to(tl.float32) - mu[None, :]) * sc[None, :] + sh[None, :], 0.0)
            a = tl.where(m2, a, 0.0)  # the depthwise conv zero-pads the *activated* map
        u = tl.dot(a.to(wt.dtype), wt, input_precision=PRECISION)
        wd = tl.load(wdw_ptr + g * C * 9 + offs_c * 9 + t, mask=c_mask, other=0.0).to(tl.float32)
        acc += u * wd[None, :]

    out_mask = p_mask[:, None] & c_mask[None, :]
    if COMPUTE_STATS:  # tile sum and centred sum of squares, merged by Chan's formula (no E[z^2]-E[z]^2)
        s1 = tl.sum(tl.where(out_mask, acc, 0.0), axis=0)
        t_mean = s1 / tl.maximum(tl.sum(p_mask.to(tl.float32), axis=0), 1.0)
        d = tl.where(out_mask, acc - t_mean[None, :], 0.0)
        tl.store(stats_ptr + pid_p * 2 * GC + g * C + offs_c, s1, mask=c_mask)
        tl.store(stats_ptr + pid_p * 2 * GC + GC + g * C + offs_c, tl.sum(d * d, axis=0), mask=c_mask)
    if EPI_BIAS_RELU:
        b = tl.load(bias_ptr + g * C + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        acc = tl.maximum(acc + b[None, :], 0.0)
    z_ptrs = z_ptr + n[:, None] * (GC * HW) + (g * C + offs_c[None, :]) * HW + hw[:, None]
    tl.store(z_ptrs, acc.to(z_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _lite_conv_bwd_kernel(
    x_ptr, in_map_ptr, pre_ptr, wpw_ptr, wdw_ptr, gz_ptr,
    gx_ptr, gpre_ptr, gwpw_ptr, gwdw_ptr,
    N, C, H, W, C_in, stride_xn, stride_xc,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, HAS_PROLOGUE: tl.constexpr, PRECISION: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Backward of :func:`_lite_conv_fwd_kernel` (training variant) for one tile of positions ``q``.

    gz: (N, G*C, H, W) contiguous, gradient of z (BN-statistics terms already folded in);
    gx: (N, G*C, H, W) contiguous, per-group gradient of the (activated) input, before the prologue;
    gpre: (3, C_in) fp32 atomics, gradients of the prologue's (mean, scale, shift);
    gwpw: (G, C, C) and gwdw: (G, C, 9) fp32 atomics. Uses
    ``du[q] = sum_t wdw[t] gz[q - off_t]``, ``dwdw[t] = sum_q gz[q - off_t] u[q]``, ``u = a @ wpw^T``.
    """
    pid_p = tl.program_id(0)
    g = tl.program_id(1)
    GC = tl.num_programs(1) * C
    HW = H * W
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = offs_p < N * HW
    n = offs_p // HW
    hw = offs_p % HW
    h = hw // W
    w = hw % W
    offs_c = tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    m2 = p_mask[:, None] & c_mask[None, :]
    in_base = tl.load(in_map_ptr + g)

    wt = tl.load(wpw_ptr + g * C * C + offs_c[None, :] * C + offs_c[:, None],
                 mask=c_mask[:, None] & c_mask[None, :], other=0.0)
    if DOT_F32:
        wt = wt.to(tl.float32)
    x_ptrs = x_ptr + n[:, None] * stride_xn + (in_base + offs_c[None, :]) * stride_xc + hw[:, None]
    xr = tl.load(x_ptrs, mask=m2, other=0.0).to(tl.float32)
    if HAS_PROLOGUE:
        mu = tl.load(pre_ptr + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        sc = tl.load(pre_ptr + C_in + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        sh = tl.load(pre_ptr + 2 * C_in + in_base + offs_c, mask=c_mask, other=0.0).to(tl.float32)
        xr = xr - mu[None, :]
        pos = ((xr * sc[None, :] + sh[None, :]) > 0.0) & m2
        a = tl.where(pos, xr * sc[None, :] + sh[None, :], 0.0)
    else:
        a = xr
    a_lo = a.to(wt.dtype)
    u = tl.dot(a_lo, wt, input_precision=PRECISION)  # (P, co): pointwise output at q

    gu = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for t in tl.static_range(9):
        hh = h - (t // 3 - 1)
        ww = w - (t % 3 - 1)
        valid = p_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        gz_ptrs = gz_ptr + n[:, None] * (GC * HW) + (g * C + offs_c[None, :]) * HW + (hh * W + ww)[:, None]
        gzt = tl.load(gz_ptrs, mask=valid[:, None] & c_mask[None, :], other=0.0).to(tl.float32)
        wd = tl.load(wdw_ptr + g * C * 9 + offs_c * 9 + t, mask=c_mask, other=0.0).to(tl.float32)
        gu += gzt * wd[None, :]
        tl.atomic_add(gwdw_ptr + g * C * 9 + offs_c * 9 + t, tl.sum(gzt * u, axis=0), mask=c_mask)

    gu_lo = gu.to(wt.dtype)
    ga = tl.dot(gu_lo, tl.trans(wt), input_precision=PRECISION)  # (P, ci)
    gw = tl.dot(tl.trans(gu_lo), a_lo, input_precision=PRECISION)  # (co, ci)
    tl.atomic_add(gwpw_ptr + g * C * C + offs_c[:, None] * C + offs_c[None, :], gw,
                  mask=c_mask[:, None] & c_mask[None, :])
    if HAS_PROLOGUE:
        gpre = tl.where(pos, ga, 0.0)
        gsum = tl.sum(gpre, axis=0)
        tl.atomic_add(gpre_ptr + in_base + offs_c, -sc * gsum, mask=c_mask)
        tl.atomic_add(gpre_ptr + C_in + in_base + offs_c, tl.sum(gpre * xr, axis=0), mask=c_mask)
        tl.atomic_add(gpre_ptr + 2 * C_in + in_base + offs_c, gsum, mask=c_mask)
        ga = gpre * sc[None, :]
    gx_ptrs = gx_ptr + n[:, None] * (GC * HW) + (g * C + offs_c[None, :]) * HW + hw[:, None]
    tl.store(gx_ptrs, ga.to(gx_ptr.dtype.element_ty), mask=m2)


def _prepare(x: torch.Tensor, in_map: torch.Tensor, w_pw: torch.Tensor, w_dw: torch.Tensor) -> torch.Tensor:
    check_tensor("x", x, 4)
    check_tensor("w_pw", w_pw, 3)
    groups, c = w_pw.shape[0], w_pw.shape[1]
    if w_pw.shape != (groups, c, c) or w_dw.shape != (groups, c, 9):
        raise UsageError(f"weights of shapes {tuple(w_pw.shape)} and {tuple(w_dw.shape)}, hwnas.kernels.lite_conv, "
                         "expected w_pw (G, C, C) and w_dw (G, C, 9)")
    if in_map.shape != (groups,) or in_map.dtype != torch.int32:
        raise UsageError(f"in_map of {in_map.dtype} {tuple(in_map.shape)}, hwnas.kernels.lite_conv, expected "
                         f"in_map int32 of shape ({groups},)")
    if x.stride(3) != 1 or x.stride(2) != x.shape[3] or x.stride(1) != x.shape[2] * x.shape[3]:
        x = x.contiguous()  # the kernels index (h, w) planes densely; n and c strides may be anything
    return x


def lite_conv_fwd(x: torch.Tensor, in_map: torch.Tensor, pre: Optional[torch.Tensor], w_pw: torch.Tensor,
                  w_dw: torch.Tensor,
                  bias: Optional[torch.Tensor] = None, compute_stats: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel; returns z (N, G*C, H, W) in x's dtype and stats (2, G*C) fp32:
    the batch mean and biased variance of z per channel (zeros for the inference variant).

    ``bias`` selects the inference variant: BN folded into ``w_dw`` and ``bias``, ReLU in the epilogue.
    """
    x = _prepare(x, in_map, w_pw, w_dw)
    n, c_in, h, w = x.shape
    groups, c = w_pw.shape[0], w_pw.shape[1]
    z = torch.empty((n, groups * c, h, w), device=x.device, dtype=x.dtype)
    tiling = pixel_tiling(n * h * w, c)
    has_pro = pre is not None
    grid = (triton.cdiv(n * h * w, tiling.block_p), groups)
    partial = torch.empty((grid[0], 2, groups * c), device=x.device, dtype=torch.float32)
    _lite_conv_fwd_kernel[grid](
        x, in_map, _check_pre(pre, c_in) if has_pro else x,
        w_pw.to(x.dtype).contiguous(), w_dw.contiguous(), bias if bias is not None else x, z, partial,
        n, c, h, w, c_in, x.stride(0), x.stride(1),
        BLOCK_P=tiling.block_p, BLOCK_C=tiling.block_c, HAS_PROLOGUE=has_pro,
        COMPUTE_STATS=compute_stats and bias is None, EPI_BIAS_RELU=bias is not None,
        PRECISION=dot_precision(x.dtype), DOT_F32=dot_upcast(x.dtype), num_warps=tiling.num_warps,
    )
    if bias is not None or not compute_stats:
        return z, partial.new_zeros((2, groups * c))
    return z, merge_tile_stats(partial, n * h * w, tiling.block_p)


def merge_tile_stats(partial: torch.Tensor, count: int, block_p: int) -> torch.Tensor:
    """(2, GC) batch mean and biased variance from per-tile (sum, centred sum of squares) (Chan et al.)."""
    tiles = partial.shape[0]
    n_tile = (count - torch.arange(tiles, device=partial.device) * block_p).clamp(max=block_p).float()[:, None]
    mean = partial[:, 0].sum(0) / count
    m2 = partial[:, 1].sum(0) + (n_tile * (partial[:, 0] / n_tile - mean) ** 2).sum(0)
    return torch.stack([mean, m2 / count])


def lite_conv_bwd(x: torch.Tensor, in_map: torch.Tensor, pre: Optional[torch.Tensor], w_pw: torch.Tensor,
                  w_dw: torch.Tensor, grad_z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Launch the backward kernel; returns (grad_x, grad_pre, grad_w_pw, grad_w_dw).

    grad_x has x's shape: groups that share input channels have their gradients summed.
    grad_pre (3, C_in) is None without a prologue; the weight gradients are in the weights' dtype.
    """
    x = _prepare(x, in_map, w_pw, w_dw)
    n, c_in, h, w = x.shape
    groups, c = w_pw.shape[0], w_pw.shape[1]
    grad_z = grad_z.contiguous()
    gx_groups = torch.empty((n, groups * c, h, w), device=x.device, dtype=torch.float32)
    gpre = torch.zeros((3, c_in), device=x.device, dtype=torch.float32)
    gwpw = torch.zeros((groups, c, c), device=x.device, dtype=torch.float32)
    gwdw = torch.zeros((groups, c, 9), device=x.device, dtype=torch.float32)
    tiling = pixel_tiling(n * h * w, c)
    has_pro = pre is not None
    grid = (triton.cdiv(n * h * w, tiling.block_p), groups)
    _lite_conv_bwd_kernel[grid](
        x, in_map, _check_pre(pre, c_in) if has_pro else x,
        w_pw.to(x.dtype).contiguous(), w_dw.contiguous(), grad_z, gx_groups, gpre, gwpw, gwdw,
        n, c, h, w, c_in, x.stride(0), x.stride(1),
        BLOCK_P=tiling.block_p, BLOCK_C=tiling.block_c, HAS_PROLOGUE=has_pro,
        PRECISION=dot_precision(x.dtype), DOT_F32=dot_upcast(x.dtype), num_warps=tiling.num_warps,
    )
    index = (in_map.long()[:, None] + torch.arange(c, device=x.device)[None, :]).reshape(-1)
    if groups * c == c_in and bool((index == torch.arange(c_in, device=x.device)).all()):
        gx = gx_groups
    else:
        gx = torch.zeros((n, c_in, h, w), device=x.device, dtype=torch.float32).index_add_(1, index, gx_groups)
    return gx.to(x.dtype), gpre.to(pre.dtype) if has_pro else None, gwpw.to(w_pw.dtype), gwdw.to(w_dw.dtype)


def _check_pre(pre: torch.Tensor, c_in: int) -> torch.Tensor:
    if pre.shape != (3, c_in):
        raise UsageError(f"pre of shape {tuple(pre.shape)}, hwnas.kernels.lite_conv, expected pre (3, C_in={c_in}) "
                         "rows (mean, scale, shift)")
    return pre.contiguous()


# ---- torch.library registration: autograd + fake (meta) kernels so torch.compile can trace -----------------

@torch.library.custom_op("hwnas::lite_conv", mutates_args=())
def lite_conv(x: torch.Tensor, in_map: torch.Tensor, pre: Optional[torch.Tensor], w_pw: torch.Tensor,
              w_dw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training LiteConv for G groups: ``z = dw3x3(pw1x1(relu((x - pre[0]) * pre[1] + pre[2])))`` and BN stats.

    ``pre`` (3, C_in) is the previous BN as (mean, scale, shift); without it the input is used as is.
    Returns z (N, G*C, H, W) and stats (2, G*C) fp32 = (mean, biased variance) of z over N, H, W, the BN
    batch statistics; both are differentiable.
    """
    return lite_conv_fwd(x, in_map, pre, w_pw, w_dw)


@lite_conv.register_fake
def _lite_conv_fake(x, in_map, pre, w_pw, w_dw):
    n, _, h, w = x.shape
    gc = w_pw.shape[0] * w_pw.shape[1]
    return x.new_empty((n, gc, h, w)), x.new_empty((2, gc), dtype=torch.float32)


@torch.library.custom_op("hwnas::lite_conv_backward", mutates_args=())
def lite_conv_backward(x: torch.Tensor, in_map: torch.Tensor, pre: Optional[torch.Tensor], w_pw: torch.Tensor,
                       w_dw: torch.Tensor, grad_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                         torch.Tensor]:
    """Gradients (x, pre, w_pw, w_dw); the pre gradient is empty without a prologue."""
    gx, gpre, gwpw, gwdw = lite_conv_bwd(x, in_map, pre, w_pw, w_dw, grad_z)
    return gx, x.new_empty((0,)) if gpre is None else gpre, gwpw, gwdw


@lite_conv_backward.register_fake
def _lite_conv_backward_fake(x, in_map, pre, w_pw, w_dw, grad_z):
    gpre = x.new_empty((0,)) if pre is None else torch.empty_like(pre)
    return torch.empty_like(x), gpre, torch.empty_like(w_pw), torch.empty_like(w_dw)


def _lite_conv_setup(ctx, inputs, output) -> None:
    x, in_map, pre, w_pw, w_dw = inputs
    ctx.has_prologue = pre is not None
    ctx.save_for_backward(x, in_map, pre, w_pw, w_dw, output[0], output[1])


def _lite_conv_grad(ctx, grad_z, grad_stats):
    x, in_map, pre, w_pw, w_dw, z, stats = ctx.saved_tensors
    if grad_stats is not None:  # d mean / dz = 1 / M, d var / dz = 2 (z - mean) / M
        count = z.numel() // z.shape[1]
        g_mean, g_var = (grad_stats / count).view(2, 1, -1, 1, 1)
        grad_z = grad_z + g_mean + 2.0 * (z - stats[0].view(1, -1, 1, 1)) * g_var
    gx, gpre, gwpw, gwdw = lite_conv_backward(x, in_map, pre, w_pw, w_dw, grad_z.to(x.dtype))
    return gx, None, gpre if ctx.has_prologue else None, gwpw, gwdw


lite_conv.register_autograd(_lite_conv_grad, setup_context=_lite_conv_setup)


@torch.library.custom_op("hwnas::lite_conv_folded", mutates_args=())
def lite_conv_folded(x: torch.Tensor, in_map: torch.Tensor, w_pw: torch.Tensor, w_dw: torch.Tensor,
                     bias: torch.Tensor) -> torch.Tensor:
    """Inference LiteConv with BN folded: ``relu(dw3x3(pw1x1(x); w_dw * bn_scale) + bias)``, (N, G*C, H, W)."""
    return lite_conv_fwd(x, in_map, None, w_pw, w_dw, bias=bias.contiguous(), compute_stats=False)[0]


@lite_conv_folded.register_fake
def _lite_conv_folded_fake(x, in_map, w_pw, w_dw, bias):
    n, _, h, w = x.shape
    return x.new_empty((n, w_pw.shape[0] * w_pw.shape[1], h, w))
