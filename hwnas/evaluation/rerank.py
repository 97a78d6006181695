"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), written from the paper's description with sparse matrices so Market-1501 size fits in memory.

Steps: squared Euclidean distances over query + gallery, each row divided by its maximum; k1-reciprocal
neighbour sets expanded with the k1/2-reciprocal sets of their members that overlap them by more than 2/3;
Gaussian-weighted encodings V (rows sum to 1); local query expansion over the k2 nearest neighbours; Jaccard
distance from sum(min(V_q, V_g)); final distance = (1 - lambda) * Jaccard + lambda * original.

Non-finite features (an overflowed or NaN feature vector) follow the ranking rule of :mod:`hwnas.evaluation.rank`:
their distances are +inf, so they are nobody's neighbour, and every re-ranked distance to or from them is +inf
(ranked last). Distances are float64 throughout. Features whose largest finite entry is so large that squared
distances would overflow, or so small that they would fall under the 1e-12 floor of a row's maximum, are first
divided by one common power of two: exact, and the result does not depend on it (every distance is divided by
its row's maximum).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse

from hwnas.evaluation._range import finite_max_abs, safe_max_abs, scale_pow2

_MIN_SCALE = 2.0 ** -10  # smaller features are scaled up: squared distances stay far above the 1e-12 floor


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances; NaN or infinite ones (from non-finite features) become +inf."""
    d = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.t()).clamp_min(0)
    return torch.where(torch.isfinite(d), d, torch.full_like(d, float("inf")))


def _neighbours(feats: torch.Tensor, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) nearest-neighbour indices (self usually first) and each row's maximum distance (N,)."""
    idx, row_max = [], []
    for s in range(0, len(feats), chunk):
        d = _sq_dist(feats[s:s + chunk], feats)
        idx.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
        row_max.append(torch.where(torch.isfinite(d), d, torch.zeros_like(d)).amax(1))
    return torch.cat(idx).numpy(), torch.cat(row_max).clamp_min(1e-12).numpy()


def _reciprocal(ranks: np.ndarray, k: int) -> list[np.ndarray]:
    """For every node, its k-reciprocal neighbours: j in top-(k+1)(i) with i in top-(k+1)(j)."""
    fwd = ranks[:, : k + 1]
    mutual = (fwd[fwd] == np.arange(len(ranks))[:, None, None]).any(2)
    return [fwd[i][mutual[i]] for i in range(len(ranks))]


def re_ranking(qf: torch.Tensor, gf: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               chunk: int = 1024) -> np.ndarray:
    """Re-ranked (Q, G) distance matrix for query features qf (Q, D) and gallery features gf (G, D)."""
    feats = _in_range(torch.cat([qf, gf]).double())
    n, nq = len(feats), len(qf)
    k1 = max(1, min(k1, n - 1))
    k2 = max(1, min(k2, n))
    half = max(1, round(k1 / 2))
    ranks, row_max = _neighbours(feats, k1 + 1, chunk)
    recip, recip_half = _reciprocal(ranks, k1), _reciprocal(ranks, half)
    rows, cols, vals = [], [], []
    for i in range(n):
        expansion = [recip[i]]
        for c in recip[i]:
            cand = recip_half[c]
            if len(np.intersect1d(cand, recip[i])) > 2 / 3 * len(cand):
                expansion.append(cand)
        members = np.unique(np.concatenate(expansion))
        d = _sq_dist(feats[i:i + 1], feats[torch.from_numpy(members)])[0].numpy() / row_max[i]
        w = np.exp(-d)
        total = w.sum()
        rows.append(np.full(len(members), i))
        cols.append(members)
        vals.append(w / total if total > 0 else w)
    v = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    if k2 > 1:
        qe = sparse.csr_matrix((np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2), ranks[:, :k2].ravel())),
                               shape=(n, n))
        v = (qe @ v).tocsr()
    jaccard = _jaccard(v, nq)
    original = _sq_dist(feats[:nq], feats[nq:]).numpy() / row_max[:nq, None]
    final = (1 - lambda_value) * jaccard + lambda_value * original
    finite = torch.isfinite(feats).all(1).numpy()
    final[~finite[:nq], :] = np.inf
    final[:, ~finite[nq:]] = np.inf
    return final


def _in_range(feats: torch.Tensor) -> torch.Tensor:
    """``feats`` divided by a power of two near its largest finite entry when that lies outside
    [_MIN_SCALE, the float64 overflow bound]; else unchanged (every ordinary feature)."""
    m = float(finite_max_abs(feats))
    hi = safe_max_abs(torch.float64, feats.shape[1] if feats.dim() == 2 else 1)[1]
    if m == 0 or _MIN_SCALE <= m <= hi:
        return feats
    return scale_pow2(feats, torch.tensor(math.frexp(m)[1], dtype=torch.int64))


def _jaccard(v: sparse.csr_matrix, nq: int) -> np.ndarray:
    """1 - m / (2 - m) with m = sum_k min(V[q, k], V[g, k]) for each query row q and gallery row g."""
    vg = v[nq:].tocsc()
    out = np.empty((nq, vg.shape[0]), dtype=np.float64)
    for i in range(nq):
        row = v.getrow(i)
        sub = vg[:, row.indices]
        col = np.repeat(np.arange(len(row.indices)), np.diff(sub.indptr))
        m = np.bincount(sub.indices, weights=np.minimum(sub.data, row.data[col]), minlength=vg.shape[0])
        out[i] = 1 - m / (2 - m)
    return out
