"""Market-1501 ranking protocol: CMC, mAP and mINP, vectorised over queries.

For each query, gallery images with the query's pid *and* camera are excluded ("junk" for that query), as
are gallery images with pid -1; distractors (pid 0) stay. Queries without a valid match are skipped and
counted.

Ordering rule, the same in every ranking hwnas does (:func:`evaluate_rank`, :func:`rank_gallery`, re-ranked
distances, the visual results):
- smaller distance first, compared in the distances' own precision (float64 stays float64, never rounded to
  float32); ``-0.0`` and ``+0.0`` are equal;
- ties are broken by gallery order (a stable sort), so results are deterministic;
- **non-finite distances rank last**: NaN (of either sign), +Infinity and -Infinity all come after every finite
  distance, in gallery order among themselves. A NaN never ranks first: one overflowed gallery feature cannot
  push the true match down. Their count is returned as ``num_nonfinite`` and logged as a warning.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from hwnas.errors import UsageError

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | list
_TIE_CHUNK = 4096  # rows of the (tied elements x matches) comparison done at once


def _as_array(x: ArrayLike, dtype: type | None) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)


def _distances(distmat: ArrayLike) -> np.ndarray:
    """The distance matrix in its own float precision (float32 or float64); anything else as float64."""
    dist = _as_array(distmat, None)
    return dist if dist.dtype in (np.float32, np.float64) else dist.astype(np.float64)


def ranking_keys(dist: np.ndarray) -> np.ndarray:
    """Distances as sort keys under the ordering rule: non-finite -> +inf (last), -0.0 -> +0.0; float64."""
    keys = np.asarray(dist, dtype=np.float64) + 0.0  # -0.0 + 0.0 == +0.0
    keys[~np.isfinite(keys)] = np.inf
    return keys


def rank_gallery(distmat: ArrayLike) -> np.ndarray:
    """(Q, G) gallery indices of each query, best first, under the module's ordering rule (NaN last)."""
    keys = ranking_keys(_distances(distmat))
    return np.argsort(keys, axis=-1, kind="stable")


def evaluate_rank(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                  g_camids: ArrayLike, max_rank: int = 50, num_threads: int | None = None) -> dict[str, Any]:
    """Rank the gallery for each query by ``distmat`` (Q, G) (smaller = more similar) and score it.

    Returns ``{"cmc": float64 array (max_rank,), "mAP": float, "mINP": float, "num_skipped": int,
    "num_valid": int, "num_nonfinite": int}``, the scores as fractions in [0, 1] averaged over valid queries
    (``cmc[k-1]`` is rank-k). ``max_rank`` may exceed the gallery size (the curve stays at its last value). If no
    query has a valid match the scores are NaN (callers writing JSON must refuse or report that, see
    ``hwnas.evaluate``). Ordering: the module's rule (own precision, -0.0 == +0.0, ties by gallery order,
    non-finite distances last, counted in ``num_nonfinite``). Queries are split over ``num_threads`` threads
    (default: torch's intra-op thread count; numpy releases the GIL in the heavy parts).

    Raises :class:`hwnas.errors.UsageError` for mismatched shapes or ``max_rank`` < 1.
    """
    dist = _distances(distmat)
    qp, gp = _as_array(q_pids, np.int64), _as_array(g_pids, np.int64)
    qc, gc = _as_array(q_camids, np.int64), _as_array(g_camids, np.int64)
    if dist.ndim != 2 or dist.shape != (len(qp), len(gp)) or len(qc) != len(qp) or len(gc) != len(gp):
        raise UsageError(f"distance matrix of shape {dist.shape} with {len(qc)} query / {len(gc)} gallery camids, "
                         f"evaluate_rank, expected shape (len(q_pids), len(g_pids)) = ({len(qp)}, {len(gp)}) and "
                         "camids of the same lengths")
    if max_rank < 1:
        raise UsageError(f"max_rank {max_rank}, evaluate_rank, expected an integer >= 1")
    num_nonfinite = int(dist.size - np.count_nonzero(np.isfinite(dist)))
    if num_nonfinite:
        logger.warning("%d of %d distances are NaN or infinite: they rank after every finite distance",
                       num_nonfinite, dist.size)
    labelled = gp != -1
    first, ap, inp = np.zeros(len(qp), np.int64), np.zeros(len(qp)), np.zeros(len(qp))

    def work(rows: range) -> None:
        for i in rows:
            first[i], ap[i], inp[i] = _score_query(ranking_keys(dist[i]), gp == qp[i], gc == qc[i], labelled)

    threads = max(1, num_threads or torch.get_num_threads() or os.cpu_count() or 1)
    step = -(-len(qp) // threads) if len(qp) else 1
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [range(s, min(s + step, len(qp))) for s in range(0, len(qp), step)]))
    valid = first > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        logger.warning("no query has a valid gallery match: all %d skipped", len(qp))
        return {"cmc": np.full(max_rank, np.nan), "mAP": float("nan"), "mINP": float("nan"),
                "num_skipped": len(qp), "num_valid": 0, "num_nonfinite": num_nonfinite}
    cmc = (first[valid, None] <= np.arange(1, max_rank + 1)[None, :]).mean(0)
    return {"cmc": cmc, "mAP": float(ap[valid].mean()), "mINP": float(inp[valid].mean()),
            "num_skipped": len(qp) - n_valid, "num_valid": n_valid, "num_nonfinite": num_nonfinite}


def _score_query(keys: np.ndarray, same_pid: np.ndarray, same_cam: np.ndarray,
                 labelled: np.ndarray) -> tuple[int, float, float]:
    """One query: rank (1-based, 0 = no valid match) of its first valid match, AP and INP.

    ``keys`` (G,) come from :func:`ranking_keys`; the order is (key, gallery index). No full sort: the few valid
    matches are sorted, every kept gallery image is placed between them by binary search (ties in key resolved
    by gallery index), and counting images per slot gives each match's rank among the kept images.
    """
    keep = np.flatnonzero(~(same_pid & same_cam) & labelled)
    hit = keep[same_pid[keep]]
    n = len(hit)
    if n == 0:
        return 0, 0.0, 0.0
    order = np.lexsort((hit, keys[hit]))
    hit_keys, hit_index = keys[hit][order], hit[order]
    kept_keys = keys[keep]
    slot = np.searchsorted(hit_keys, kept_keys, side="left")  # matches with a smaller key
    tied = np.flatnonzero(slot < np.searchsorted(hit_keys, kept_keys, side="right"))
    for s in range(0, len(tied), _TIE_CHUNK):  # equal keys: matches at an earlier or the same gallery index
        t = tied[s:s + _TIE_CHUNK]
        same = (hit_keys[None, :] == kept_keys[t, None]) & (hit_index[None, :] <= keep[t, None])
        slot[t] += same.sum(1)
    pos = 1 + np.cumsum(np.bincount(slot, minlength=n + 1))[:n]  # rank of the j-th match
    return int(pos[0]), float((np.arange(1, n + 1) / pos).mean()), n / float(pos[-1])
