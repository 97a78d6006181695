"""Market-1501 ranking protocol: CMC, mAP and mINP, vectorised over queries.

For each query, gallery images with the query's pid *and* camera are excluded ("junk" for that query), as
are gallery images with pid -1; distractors (pid 0) stay. Queries without a valid match are skipped and
counted. Ties in distance are broken by gallery order (a stable sort), so results are deterministic.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | list


def _as_array(x: ArrayLike, dtype: type) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=dtype)


def evaluate_rank(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                  g_camids: ArrayLike, max_rank: int = 50, num_threads: int | None = None) -> dict[str, Any]:
    """Rank the gallery for each query by ``distmat`` (Q, G) (smaller = more similar) and score it.

    Returns ``{"cmc": float64 array (max_rank,), "mAP": float, "mINP": float, "num_skipped": int,
    "num_valid": int}``, all as fractions in [0, 1] averaged over valid queries (``cmc[k-1]`` is rank-k).
    ``max_rank`` may exceed the gallery size (the curve stays at its last value). If no query has a valid
    match the scores are NaN. Distances are compared as float32. Queries are split over ``num_threads``
    threads (default: torch's intra-op thread count; numpy releases the GIL in the heavy parts).
    """
    dist = _as_array(distmat, np.float32)
    qp, gp = _as_array(q_pids, np.int64), _as_array(g_pids, np.int64)
    qc, gc = _as_array(q_camids, np.int64), _as_array(g_camids, np.int64)
    if dist.ndim != 2 or dist.shape != (len(qp), len(gp)) or len(qc) != len(qp) or len(gc) != len(gp):
        raise ValueError(f"distmat has shape {dist.shape}; expected (len(q_pids), len(g_pids)) = "
                         f"({len(qp)}, {len(gp)}) with camids of the same lengths ({len(qc)}, {len(gc)})")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    index = np.arange(len(gp), dtype=np.int64)
    labelled = gp != -1
    first, ap, inp = np.zeros(len(qp), np.int64), np.zeros(len(qp)), np.zeros(len(qp))

    def work(rows: range) -> None:
        for i in rows:
            first[i], ap[i], inp[i] = _score_query(_order_keys(dist[i], index), gp == qp[i], gc == qc[i], labelled)

    threads = max(1, num_threads or torch.get_num_threads() or os.cpu_count() or 1)
    step = -(-len(qp) // threads) if len(qp) else 1
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [range(s, min(s + step, len(qp))) for s in range(0, len(qp), step)]))
    valid = first > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        logger.warning("no query has a valid gallery match: all %d skipped", len(qp))
        return {"cmc": np.full(max_rank, np.nan), "mAP": float("nan"), "mINP": float("nan"),
                "num_skipped": len(qp), "num_valid": 0}
    cmc = (first[valid, None] <= np.arange(1, max_rank + 1)[None, :]).mean(0)
    return {"cmc": cmc, "mAP": float(ap[valid].mean()), "mINP": float(inp[valid].mean()),
            "num_skipped": len(qp) - n_valid, "num_valid": n_valid}


def _order_keys(dist: np.ndarray, index: np.ndarray) -> np.ndarray:
    """int64 keys (G,) ordered like (distance, gallery index): float32 bits made monotonic, then the index.

    One row at a time: on the whole (Q, G) matrix the int64 temporaries cost more than the ranking.
    """
    bits = dist.view(np.int32)
    bits = np.where(bits >= 0, bits, bits ^ np.int32(0x7FFFFFFF)).astype(np.int64)
    return (bits << 32) + index


def _score_query(keys: np.ndarray, same_pid: np.ndarray, same_cam: np.ndarray,
                 labelled: np.ndarray) -> tuple[int, float, float]:
    """One query: rank (1-based, 0 = no valid match) of its first valid match, AP and INP.

    No full sort: the few valid matches are sorted, every kept gallery image is placed between them by
    binary search, and counting images per slot gives each match's rank among the kept images.
    """
    keep = ~(same_pid & same_cam) & labelled
    hit = same_pid & keep
    n = int(hit.sum())
    if n == 0:
        return 0, 0.0, 0.0
    slot = np.searchsorted(np.sort(keys[hit]), keys[keep], side="right")
    pos = 1 + np.cumsum(np.bincount(slot, minlength=n + 1))[:n]  # rank of the j-th match
    return int(pos[0]), float((np.arange(1, n + 1) / pos).mean()), n / float(pos[-1])
