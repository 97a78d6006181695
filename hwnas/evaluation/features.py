"""Feature extraction (eval mode, optional flip averaging), distances, and a one-call model evaluation."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas._modes import eval_mode
from hwnas.errors import UsageError
from hwnas.evaluation._range import fit_common_range, unit_rows
from hwnas.evaluation.rank import evaluate_rank
from hwnas.evaluation.rerank import re_ranking

logger = logging.getLogger(__name__)
METRICS: tuple[str, ...] = ("euclidean", "cosine")


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable, *, device: torch.device | str = "cpu", flip: bool = False,
                     amp: bool = False, progress: bool = False) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Run the model in eval mode over ``loader`` batches ``(images, pids, camids)``.

    Returns features (N, D) float32 on CPU and pids / camids as int64 arrays (N,). ``flip`` averages the
    features of each image and its horizontal mirror. ``amp`` uses float16 autocast on CUDA. Afterwards every
    submodule has its own train/eval mode back (:func:`hwnas._modes.eval_mode`). Raises
    :class:`hwnas.errors.UsageError` when the loader yields no batch.
    """
    device = torch.device(device)
    feats, pids, camids = [], [], []
    batches = loader
    if progress:
        from tqdm import tqdm
        batches = tqdm(loader, desc="features", leave=False)
    with eval_mode(model):
        for images, pid, camid in batches:
            images = images.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                f = model(images).float()
                if flip:
                    f = (f + model(images.flip(3)).float()) / 2
            feats.append(f.cpu())
            pids.append(torch.as_tensor(pid))
            camids.append(torch.as_tensor(camid))
    if not feats:
        raise UsageError("no images, extract_features loader, expected a loader yielding at least one batch "
                         "(an empty query or gallery split?)")
    return torch.cat(feats), torch.cat(pids).numpy(), torch.cat(camids).numpy()


def compute_distance(qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """(Q, G) distances: ``euclidean`` (squared, as in the standard protocol) or ``cosine`` (1 - cos).

    Computed in float64 when either input is float64, else float32 (half-precision features are widened).
    Finite features always give finite distances in the right order: float32 features so large (or small) that
    their squares would overflow (or underflow) are computed in float64 (the result is then float64); float64
    ones that far out are first divided by one common power of two (Euclidean; the distances are then those of
    the scaled features, the ranking is unchanged), cosine rows each by their own (:mod:`._range`). Non-finite
    features give non-finite distances, ranked last by :func:`hwnas.evaluation.rank.evaluate_rank`.
    """
    dtype = torch.promote_types(torch.promote_types(qf.dtype, gf.dtype), torch.float32)
    qf, gf = qf.to(dtype), gf.to(dtype)
    if metric == "euclidean":
        qf, gf = fit_common_range(qf, gf)
        return (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1) - 2 * qf @ gf.t()).clamp_min(0)
    if metric == "cosine":
        return 1 - unit_rows(qf) @ unit_rows(gf).t()
    raise UsageError(f"unknown metric {metric!r}, compute_distance, expected 'euclidean' or 'cosine'")


def evaluate_model(model: nn.Module, query_loader: Iterable, gallery_loader: Iterable, *,
                   device: torch.device | str = "cpu", flip: bool = False, metric: str = "euclidean",
                   rerank: bool = False, amp: bool = False, max_rank: int = 50,
                   progress: bool = False, keep_distmat: bool = False) -> dict[str, Any]:
    """Extract query and gallery features and score them with :func:`evaluate_rank`.

    Returns its dict (``cmc`` has ``max_rank`` entries) plus ``rank1``, ``rank5``, ``rank10`` (fractions), each
    computed from the ranking even when it lies beyond ``max_rank``, and with ``keep_distmat`` the (Q, G)
    distance matrix it ranked by as ``distmat`` (for the ranked-results figure; rank it with
    :func:`hwnas.evaluation.rank.rank_gallery`, which applies the same ordering rule).
    """
    if max_rank < 1:
        raise UsageError(f"max_rank {max_rank}, evaluate_model, expected an integer >= 1")
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}, evaluate_model, expected one of {', '.join(METRICS)}")
    qf, qp, qc = extract_features(model, query_loader, device=device, flip=flip, amp=amp, progress=progress)
    gf, gp, gc = extract_features(model, gallery_loader, device=device, flip=flip, amp=amp, progress=progress)
    if rerank:
        logger.info("k-reciprocal re-ranking of %d queries x %d gallery images", len(qf), len(gf))
        dist = torch.as_tensor(re_ranking(qf, gf))
    else:
        dist = compute_distance(qf, gf, metric)
    result = evaluate_rank(dist, qp, gp, qc, gc, max_rank=max(max_rank, 10))
    for k in (1, 5, 10):
        result[f"rank{k}"] = float(result["cmc"][k - 1])
    result["cmc"] = result["cmc"][:max_rank]
    if keep_distmat:
        result["distmat"] = dist
    return result
