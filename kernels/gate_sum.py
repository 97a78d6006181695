"""Channel gate and branch sum of a CBlock, with the last LiteConv's BN + ReLU in the prologue.

A CBlock computes ``sum_j gate(relu(bn_j(z_j)))`` over its branches, where the gate (shared by the
branches) scales each channel by ``sigmoid(mlp(mean_hw(.)))``. Two ops, each one pass over ``z``:
- ``branch_pool``: per (n, channel) spatial mean of ``relu(bn(z))`` (the gate's squeeze);
- ``gated_sum``: ``out[:, b] = sum_j relu(bn(z[:, b, j])) * gate[:, b, j]``,
with ``bn(z) = (z - mean) * scale + shift`` given as ``affine`` (3, C) rows (mean, scale, shift).
The tiny gate MLP (N x C values) runs in PyTorch between them. Channels of ``z`` are block-major:
(block b, branch j, channel c) -> ``(b * branches + j) * C + c``; several CBlocks (the selected
candidates of a supernet layer) go through one launch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from hwnas.errors import UsageError

from ._config import check_tensor, pixel_tiling


@triton.jit
def _affine_grad(gaff_ptr, row, offs_c, c_mask, g, zc, sc):
    """Accumulate gradients of bn(z) = zc * scale + shift (zc = z - mean) given g = d/d bn(z) (ReLU applied).

    gaff rows (stride ``row``): mean, scale, shift."""
    gsum = tl.sum(g, axis=0)
    tl.atomic_add(gaff_ptr + offs_c, -sc * gsum, mask=c_mask)
    tl.atomic_add(gaff_ptr + row + offs_c, tl.sum(g * zc, axis=0), mask=c_mask)
    tl.atomic_add(gaff_ptr + 2 * row + offs_c, gsum, mask=c_mask)


@triton.jit
def _branch_pool_fwd_kernel(z_ptr, aff_ptr, pooled_ptr, C_total, HW, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Program (n, hw tile, channel tile). z: (N, C_total, H, W) contiguous; aff: (3, C_total) BN rows;
    pooled: (N, C_total) fp32, accumulates ``sum relu(bn(z)) / HW`` atomically."""
    n = tl.program_id(0)
    offs_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C_total
    m2 = (offs_p < HW)[:, None] & c_mask[None, :]
    mu = tl.load(aff_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    sc = tl.load(aff_ptr + C_total + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    sh = tl.load(aff_ptr + 2 * C_total + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + n * C_total * HW + offs_c[None, :] * HW + offs_p[:, None], mask=m2, other=0.0)
    a = tl.where(m2, tl.maximum((z.to(tl.float32) - mu[None, :]) * sc[None, :] + sh[None, :], 0.0), 0.0)
    tl.atomic_add(pooled_ptr + n * C_total + offs_c, tl.sum(a, axis=0) / HW, mask=c_mask)


@triton.jit
def _branch_pool_bwd_kernel(z_ptr, aff_ptr, gpooled_ptr, gz_ptr, gaff_ptr, C_total, HW,
                            BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Backward of :func:`_branch_pool_fwd_kernel`. gpooled: (N, C_total); gz: like z;
    gaff: (3, C_total) fp32 atomics (gradients of mean, scale, shift)."""
    n = tl.program_id(0)
    offs_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C_total
    m2 = (offs_p < HW)[:, None] & c_mask[None, :]
    mu = tl.load(aff_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    sc = tl.load(aff_ptr + C_total + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    sh = tl.load(aff_ptr + 2 * C_total + offs_c, mask=c_mask, other=0.0).to(tl.float32)
    gp = tl.load(gpooled_ptr + n * C_total + offs_c, mask=c_mask, other=0.0).to(tl.float32) / HW
    ptrs = n * C_total * HW + offs_c[None, :] * HW + offs_p[:, None]
    zc = tl.load(z_ptr + ptrs, mask=m2, other=0.0).to(tl.float32) - mu[None, :]
    g = tl.where(m2 & ((zc * sc[None, :] + sh[None, :]) > 0.0), gp[None, :], 0.0)
    tl.store(gz_ptr + ptrs, (g * sc[None, :]).to(gz_ptr.dtype.element_ty), mask=m2)
    _affine_grad(gaff_ptr, C_total, offs_c, c_mask, g, zc, sc)


@triton.jit
def _gated_sum_fwd_kernel(z_ptr, aff_ptr, gate_ptr, out_ptr, C, HW,
                          BRANCHES: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Program (n, hw tile, block b). z: (N, NB*BRANCHES*C, H, W) contiguous, block-major channels;
    aff: (3, NB*BRANCHES*C) BN rows (mean, scale, shift); gate: (N, NB*BRANCHES*C); out: (N, NB*C, H, W) contiguous."""
    n = tl.program_id(0)
    offs_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    b = tl.program_id(2)
    NB = tl.num_programs(2)
    offs_c = tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    m2 = (offs_p < HW)[:, None] & c_mask[None, :]
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(BRANCHES):
        ch = (b * BRANCHES + j) * C + offs_c
        mu = tl.load(aff_ptr + ch, mask=c_mask, other=0.0).to(tl.float32)
        sc = tl.load(aff_ptr + NB * BRANCHES * C + ch, mask=c_mask, other=0.0).to(tl.float32)
        sh = tl.load(aff_ptr + 2 * NB * BRANCHES * C + ch, mask=c_mask, other=0.0).to(tl.float32)
        gt = tl.load(gate_ptr + n * NB * BRANCHES * C + ch, mask=c_mask, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + n * NB * BRANCHES * C * HW + ch[None, :] * HW + offs_p[:, None], mask=m2, other=0.0)
        acc += tl.maximum((z.to(tl.float32) - mu[None, :]) * sc[None, :] + sh[None, :], 0.0) * gt[None, :]
    tl.store(out_ptr + n * NB * C * HW + (b * C + offs_c[None, :]) * HW + offs_p[:, None],
             acc.to(out_ptr.dtype.element_ty), mask=m2)


@triton.jit
def _gated_sum_bwd_kernel(z_ptr, aff_ptr, gate_ptr, gout_ptr, gz_ptr, ggate_ptr, gaff_ptr, C, HW,
                          BRANCHES: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Backward of :func:`_gated_sum_fwd_kernel`. gout: like out; gz: like z; ggate: (N, NB*BRANCHES*C)
    fp32 atomics; gaff: (3, NB*BRANCHES*C) fp32 atomics (gradients of mean, scale, shift)."""
    n = tl.program_id(0)
    offs_p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    b = tl.program_id(2)
    NB = tl.num_programs(2)
    GC = NB * BRANCHES * C
    offs_c = tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    m2 = (offs_p < HW)[:, None] & c_mask[None, :]
    go = tl.load(gout_ptr + n * NB * C * HW + (b * C + offs_c[None, :]) * HW + offs_p[:, None], mask=m2, other=0.0)
    go = go.to(tl.float32)
    for j in tl.static_range(BRANCHES):
        ch = (b * BRANCHES + j) * C + offs_c
        mu = tl.load(aff_ptr + ch, mask=c_mask, other=0.0).to(tl.float32)
        sc = tl.load(aff_ptr + GC + ch, mask=c_mask, other=0.0).to(tl.float32)
        sh = tl.load(aff_ptr + 2 * GC + ch, mask=c_mask, other=0.0).to(tl.float32)
        gt = tl.load(gate_ptr + n * GC + ch, mask=c_mask, other=0.0).to(tl.float32)
        ptrs = n * GC * HW + ch[None, :] * HW + offs_p[:, None]
        zc = tl.load(z_ptr + ptrs, mask=m2, other=0.0).to(tl.float32) - mu[None, :]
        pre = zc * sc[None, :] + sh[None, :]
        a = tl.where(m2, tl.maximum(pre, 0.0), 0.0)
        tl.atomic_add(ggate_ptr + n * GC + ch, tl.sum(go * a, axis=0), mask=c_mask)
        g = tl.where(m2 & (pre > 0.0), go * gt[None, :], 0.0)
        tl.store(gz_ptr + ptrs, (g * sc[None, :]).to(gz_ptr.dtype.element_ty), mask=m2)
        _affine_grad(gaff_ptr + (b * BRANCHES + j) * C, GC, offs_c, c_mask, g, zc, sc)


def _pool_grid(z: torch.Tensor) -> tuple[tuple[int, int, int], int, int]:
    n, c_total, h, w = z.shape
    tiling = pixel_tiling(h * w, c_total)
    block_c = min(tiling.block_c, 128)
    return (n, triton.cdiv(h * w, tiling.block_p), triton.cdiv(c_total, block_c)), tiling.block_p, block_c


def _check_affine(affine: torch.Tensor, channels: int) -> torch.Tensor:
    if affine.shape != (3, channels):
        raise UsageError(f"affine of shape {tuple(affine.shape)}, hwnas.kernels.gate_sum, expected (3, {channels}) "
                         "rows (mean, scale, shift)")
    return affine.contiguous()


def branch_pool_fwd(z: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """(N, C_total) fp32 spatial means of ``relu((z - mean) * scale + shift)``."""
    check_tensor("z", z, 4)
    z = z.contiguous()
    pooled = torch.zeros(z.shape[:2], device=z.device, dtype=torch.float32)
    grid, block_p, block_c = _pool_grid(z)
    _branch_pool_fwd_kernel[grid](z, _check_affine(affine, z.shape[1]), pooled, z.shape[1], z.shape[2] * z.shape[3],
                                  BLOCK_P=block_p, BLOCK_C=block_c)
    return pooled


def branch_pool_bwd(z: torch.Tensor, affine: torch.Tensor,
                    grad_pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (z, affine) of :func:`branch_pool_fwd`."""
    z = z.contiguous()
    gz = torch.empty_like(z)
    gaff = torch.zeros((3, z.shape[1]), device=z.device, dtype=torch.float32)
    grid, block_p, block_c = _pool_grid(z)
    _branch_pool_bwd_kernel[grid](z, _check_affine(affine, z.shape[1]), grad_pooled.contiguous(), gz, gaff,
                                  z.shape[1], z.shape[2] * z.shape[3], BLOCK_P=block_p, BLOCK_C=block_c)
    return gz, gaff.to(affine.dtype)


def _split(z: torch.Tensor, n_blocks: int, branches: int) -> int:
    c_total = z.shape[1]
    if n_blocks < 1 or branches < 1 or c_total % (n_blocks * branches):
        raise UsageError(f"{c_total} channels do not split into {n_blocks} blocks x {branches} branches, "
                         "hwnas.kernels.gate_sum, expected a multiple of blocks x branches")
    return c_total // (n_blocks * branches)


def gated_sum_fwd(z: torch.Tensor, affine: torch.Tensor, gate: torch.Tensor, n_blocks: int,
                  branches: int) -> torch.Tensor:
    """``out`` (N, n_blocks*C, H, W) = per block, sum over its branches of ``relu(bn(z)) * gate``."""
    check_tensor("z", z, 4)
    n, c_total, h, w = z.shape
    c = _split(z, n_blocks, branches)
    z = z.contiguous()
    out = torch.empty((n, n_blocks * c, h, w), device=z.device, dtype=z.dtype)
    tiling = pixel_tiling(h * w, c)
    grid = (n, triton.cdiv(h * w, tiling.block_p), n_blocks)
    _gated_sum_fwd_kernel[grid](z, _check_affine(affine, c_total), gate.contiguous(), out, c, h * w,
                                BRANCHES=branches, BLOCK_P=tiling.block_p, BLOCK_C=tiling.block_c)
    return out


def gated_sum_bwd(z: torch.Tensor, affine: torch.Tensor, gate: torch.Tensor, grad_out: torch.Tensor,
                  n_blocks: int, branches: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (z, affine, gate) of :func:`gated_sum_fwd`."""
    n, c_total, h, w = z.shape
    c = _split(z, n_blocks, branches)
    z = z.contiguous()
    gz = torch.empty_like(z)
    ggate = torch.zeros((n, c_total), device=z.device, dtype=torch.float32)
    gaff = torch.zeros((3, c_total), device=z.device, dtype=torch.float32)
    tiling = pixel_tiling(h * w, c)
    grid = (n, triton.cdiv(h * w, tiling.block_p), n_blocks)
    _gated_sum_bwd_kernel[grid](z, _check_affine(affine, c_total), gate.contiguous(), grad_out.contiguous(), gz,
                                ggate, gaff, c, h * w, BRANCHES=branches, BLOCK_P=tiling.block_p,
                                BLOCK_C=tiling.block_c)
    return gz, gaff.to(affine.dtype), ggate.to(gate.dtype)


# ---- torch.library registration -----------------------------------------------------------------------------

@torch.library.custom_op("hwnas::branch_pool", mutates_args=())
def branch_pool(z: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """(N, C_total) fp32: spatial mean of ``relu((z - mean) * scale + shift)``, the channel gate's squeeze.

    affine: (3, C_total) rows (mean, scale, shift) of the BN that precedes the ReLU.
    """
    return branch_pool_fwd(z, affine)


@branch_pool.register_fake
def _branch_pool_fake(z, affine):
    return z.new_empty(z.shape[:2], dtype=torch.float32)


@torch.library.custom_op("hwnas::branch_pool_backward", mutates_args=())
def branch_pool_backward(z: torch.Tensor, affine: torch.Tensor,
                         grad_pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return branch_pool_bwd(z, affine, grad_pooled)


@branch_pool_backward.register_fake
def _branch_pool_backward_fake(z, affine, grad_pooled):
    return torch.empty_like(z), torch.empty_like(affine)


def _pool_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _pool_grad(ctx, grad_pooled):
    z, affine = ctx.saved_tensors
    return branch_pool_backward(z, affine, grad_pooled.float())


branch_pool.register_autograd(_pool_grad, setup_context=_pool_setup)


@torch.library.custom_op("hwnas::gated_sum", mutates_args=())
def gated_sum(z: torch.Tensor, affine: torch.Tensor, gate: torch.Tensor, n_blocks: int, branches: int) -> torch.Tensor:
    """(N, n_blocks*C, H, W): per block, ``sum_j relu(bn_j(z_j)) * gate_j`` over block-major channels of z.

    affine: (3, C_total) BN rows (mean, scale, shift); gate: (N, C_total) per-sample channel gate values.
    """
    return gated_sum_fwd(z, affine, gate, n_blocks, branches)


@gated_sum.register_fake
def _gated_sum_fake(z, affine, gate, n_blocks, branches):
    n, c_total, h, w = z.shape
    return z.new_empty((n, c_total // branches, h, w))


@torch.library.custom_op("hwnas::gated_sum_backward", mutates_args=())
def gated_sum_backward(z: torch.Tensor, affine: torch.Tensor, gate: torch.Tensor, grad_out: torch.Tensor,
                       n_blocks: int, branches: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return gated_sum_bwd(z, affine, gate, grad_out, n_blocks, branches)


@gated_sum_backward.register_fake
def _gated_sum_backward_fake(z, affine, gate, grad_out, n_blocks, branches):
    return torch.empty_like(z), torch.empty_like(affine), torch.empty_like(gate)


def _sum_setup(ctx, inputs, output) -> None:
    z, affine, gate, ctx.n_blocks, ctx.branches = inputs
    ctx.save_for_backward(z, affine, gate)


def _sum_grad(ctx, grad_out):
    z, affine, gate = ctx.saved_tensors
    gz, gaff, gg = gated_sum_backward(z, affine, gate, grad_out, ctx.n_blocks, ctx.branches)
    return gz, gaff, gg, None, None


gated_sum.register_autograd(_sum_grad, setup_context=_sum_setup)
