"""Feature extraction (eval mode, optional flip averaging), distances, and a one-call model evaluation."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hwnas.evaluation.rank import evaluate_rank
from hwnas.evaluation.rerank import re_ranking

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable, *, device: torch.device | str = "cpu", flip: bool = False,
                     amp: bool = False, progress: bool = False) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Run the model in eval mode over ``loader`` batches ``(images, pids, camids)``.

    Returns features (N, D) float32 on CPU and pids / camids as int64 arrays (N,). ``flip`` averages the
    features of each image and its horizontal mirror. ``amp`` uses float16 autocast on CUDA. The model's
    training mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    feats, pids, camids = [], [], []
    batches = loader
    if progress:
        from tqdm import tqdm
        batches = tqdm(loader, desc="features", leave=False)
    try:
        for images, pid, camid in batches:
            images = images.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                f = model(images).float()
                if flip:
                    f = (f + model(images.flip(3)).float()) / 2
            feats.append(f.cpu())
            pids.append(torch.as_tensor(pid))
            camids.append(torch.as_tensor(camid))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: the loader yielded no batches")
    return torch.cat(feats), torch.cat(pids).numpy(), torch.cat(camids).numpy()


def compute_distance(qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """(Q, G) distances: ``euclidean`` (squared, as in the standard protocol) or ``cosine`` (1 - cos)."""
    qf, gf = qf.float(), gf.float()
    if metric == "euclidean":
        return (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1) - 2 * qf @ gf.t()).clamp_min(0)
    if metric == "cosine":
        return 1 - F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).t()
    raise ValueError(f"unknown metric {metric!r}; expected 'euclidean' or 'cosine'")


def evaluate_model(model: nn.Module, query_loader: Iterable, gallery_loader: Iterable, *,
                   device: torch.device | str = "cpu", flip: bool = False, metric: str = "euclidean",
                   rerank: bool = False, amp: bool = False, max_rank: int = 50,
                   progress: bool = False, keep_distmat: bool = False) -> dict[str, Any]:
    """Extract query and gallery features and score them with :func:`evaluate_rank`.

    Returns its dict plus ``rank1``, ``rank5``, ``rank10`` (fractions) for convenience, and with
    ``keep_distmat`` the (Q, G) distance matrix it ranked by as ``distmat`` (for the ranked-results figure).
    """
    qf, qp, qc = extract_features(model, query_loader, device=device, flip=flip, amp=amp, progress=progress)
    gf, gp, gc = extract_features(model, gallery_loader, device=device, flip=flip, amp=amp, progress=progress)
    if rerank:
        logger.info("k-reciprocal re-ranking of %d queries x %d gallery images", len(qf), len(gf))
        dist = torch.as_tensor(re_ranking(qf, gf))
    else:
        dist = compute_distance(qf, gf, metric)
    result = evaluate_rank(dist, qp, gp, qc, gc, max_rank=max_rank)
    for k in (1, 5, 10):
        result[f"rank{k}"] = float(result["cmc"][min(k, max_rank) - 1])
    if keep_distmat:
        result["distmat"] = dist
    return result
