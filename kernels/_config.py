"""Shared launch configuration for the hwnas Triton kernels: block sizes, dot precision, dtypes.

Block sizes are compile-time parameters chosen here, never at call sites. Under ``TRITON_INTERPRET=1``
(the CPU interpreter, ~tens of ms per program instance) the helpers pick the largest tiles so a launch
has only a few programs; on a GPU they pick tiles that keep a few hundred programs in flight.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton

from hwnas.errors import UsageError

#: tl.dot needs every tile dimension >= 16.
MIN_DOT = 16


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class PixelTiling:
    """Tile of a (pixels x channels) launch: ``block_p`` flattened N*H*W positions, ``block_c`` channels."""

    block_p: int
    block_c: int
    num_warps: int


def channel_block(channels: int) -> int:
    """One tile covers every channel of a group (mid <= 128 in CNet/CDNet); at least 16 for tl.dot."""
    return max(MIN_DOT, triton.next_power_of_2(channels))


def pixel_tiling(pixels: int, channels: int) -> PixelTiling:
    """Tile for kernels whose program owns ``block_p`` pixels and all ``channels`` of one group.

    GPU: keep the per-program register tile (block_p x block_c fp32) near 8K elements.
    Interpreter: one tile as large as the problem (capped), so tests launch a handful of programs.
    """
    block_c = channel_block(channels)
    if interpreting():
        block_p = min(max(MIN_DOT, triton.next_power_of_2(pixels)), 1024)
        return PixelTiling(block_p, block_c, 4)
    block_p = max(MIN_DOT, min(128, 8192 // block_c))
    return PixelTiling(block_p, block_c, 4 if block_c <= 64 else 8)


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: exact fp32 unless PyTorch itself allows TF32 for matmuls."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 and not interpreting():
        return "tf32"
    return "ieee"


def dot_upcast(dtype: torch.dtype) -> bool:
    """Run tl.dot in fp32: Triton's CPU interpreter computes bf16 tl.dot wrongly (numpy has no bf16)."""
    return interpreting() and dtype == torch.bfloat16


SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_tensor(name: str, t: torch.Tensor, ndim: int) -> None:
    """Boundary validation with messages that name the argument and what was expected."""
    if t.dim() != ndim:
        raise UsageError(f"{name} of shape {tuple(t.shape)}, hwnas.kernels, expected a {ndim}-D tensor")
    if t.dtype not in SUPPORTED_DTYPES:
        raise UsageError(f"{name} of dtype {t.dtype}, hwnas.kernels, expected float32, float16 or bfloat16")
