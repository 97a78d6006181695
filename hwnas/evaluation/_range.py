"""Keep finite features finite through the distance arithmetic.

Squared Euclidean distances square the features: float32 features above about 1e17 (in 512 dimensions) overflow
to +inf, and features below about 1e-16 underflow to 0, so every pair ties and the ranking is silently wrong.
Cosine distances divide by the row norm, which over/underflows the same way (and ``F.normalize`` clamps norms
below 1e-12). Scaling by a power of two is exact in floating point (no rounding, unless a value becomes
subnormal), and neither ranking depends on it: Euclidean and cosine rankings are invariant to one common positive
factor, cosine distances to a positive factor per row.

Non-finite entries (NaN, +-inf) are left as they are: their distances stay non-finite and rank last
(:mod:`hwnas.evaluation.rank`).
"""
from __future__ import annotations

import math

import torch


def safe_max_abs(dtype: torch.dtype, dim: int) -> tuple[float, float]:
    """(lo, hi): largest-entry magnitudes for which ``|q|^2 + |g|^2 + 2 q.g`` in ``dtype`` over ``dim`` entries
    stays finite (hi) and the squares of the largest entries are normal numbers with full precision (lo)."""
    fi = torch.finfo(dtype)
    return math.sqrt(fi.tiny / fi.eps), math.sqrt(fi.max / (4 * max(dim, 1)))


def finite_max_abs(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Largest magnitude of the finite entries (0 where none), over everything or along ``dim``."""
    a = x.abs()
    a = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
    if dim is None:
        return a.max() if a.numel() else torch.zeros((), dtype=x.dtype)
    return a.amax(dim) if a.shape[dim] else torch.zeros(a.shape[:dim] + a.shape[dim + 1:], dtype=x.dtype)


def scale_pow2(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """``x * 2**-exponent`` exactly (``exponent`` an integer tensor broadcastable to ``x``), in two halves so no
    factor over- or underflows even for float64 subnormals (2**1074)."""
    first = torch.div(exponent, 2, rounding_mode="floor")
    second = exponent - first
    two = torch.tensor(2.0, dtype=x.dtype)
    return x * torch.pow(two, (-first).to(x.dtype)) * torch.pow(two, (-second).to(x.dtype))


def fit_common_range(*feats: torch.Tensor, widen: bool = True) -> tuple[torch.Tensor, ...]:
    """The feature matrices (same floating dtype, (N_i, D)) ready for squared Euclidean distances: unchanged when
    their largest finite entry lies in the safe range of their dtype (every ordinary feature); else widened from
    float32/float16 to float64 (``widen``: the distances then stay exact, float32's whole range fits float64's),
    and if that is still not enough, all divided by one common power of two near that largest entry."""
    dtype = feats[0].dtype
    dim = feats[0].shape[1] if feats[0].dim() == 2 else 1
    m = max(float(finite_max_abs(f)) for f in feats)
    lo, hi = safe_max_abs(dtype, dim)
    if m == 0 or lo <= m <= hi:
        return feats
    if widen and dtype != torch.float64:
        feats = tuple(f.double() for f in feats)
        lo, hi = safe_max_abs(torch.float64, dim)
        if lo <= m <= hi:
            return feats
    exponent = torch.tensor(math.frexp(m)[1], dtype=torch.int64)  # m = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return tuple(scale_pow2(f, exponent) for f in feats)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (``F.normalize``); rows whose largest finite entry lies outside the safe range
    are first divided by a power of two near it, so their norm neither overflows nor underflows (zero rows stay
    zero, rows with non-finite entries give NaN as before)."""
    from torch.nn import functional as F

    if x.dim() != 2 or not len(x):
        return F.normalize(x, dim=1)
    lo, hi = safe_max_abs(x.dtype, x.shape[1])
    lo = max(lo, 2.0 ** -20)  # F.normalize clamps norms below 1e-12: keep every norm far above it
    m = finite_max_abs(x, 1)
    bad = (m > 0) & ((m < lo) | (m > hi))
    if bool(bad.any()):
        exponent = torch.where(bad, torch.frexp(m).exponent.to(torch.int64), torch.zeros_like(m, dtype=torch.int64))
        x = scale_pow2(x, exponent[:, None])
    return F.normalize(x, dim=1)
