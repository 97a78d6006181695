"""The supernet's own ranking of architectures: its validation score with one genotype's path fixed.

For each genotype the trained search supernet runs only that genotype's candidate in every layer
(:meth:`hwnas.search.supernet.SuperNet.forward` with ``path``). Its BatchNorm statistics were accumulated
over the top-k mixtures of the search, so they are first re-estimated on that path from a few training
batches (train mode except dropout, no gradients; the usual practice of one-shot NAS, e.g. SPOS, Guo et al.
2020), then the path is scored in eval mode on the whole validation split: identity top-1 accuracy and
cross-entropy. The score is deterministic: it does not depend on the global random state.
Kendall's tau of these scores against stand-alone mAP says whether the supernet ranks architectures as
training them does.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from scipy.stats import kendalltau
from torch import nn
from torch.nn import functional as F

from hwnas.search._checkpoint import CHECKPOINT_NAME, load_checkpoint
from hwnas.search._data import SearchData
from hwnas.search.config import SearchConfig
from hwnas.search.supernet import SuperNet
from hwnas.space.genotype import Genotype

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PathScore:
    """Validation identity top-1 (fraction) and mean cross-entropy (nats) of one fixed path."""

    genotype: str
    val_acc: float
    val_ce: float


def load_supernet(search_dir: Path, config: SearchConfig, num_classes: int) -> SuperNet:
    """The supernet of a finished search (``search_dir/checkpoints/last.pt``)."""
    ckpt = load_checkpoint(Path(search_dir) / "checkpoints" / CHECKPOINT_NAME)
    net = SuperNet(config.space, num_classes, config.width_mult, config.topk, config.alpha_init, config.share_weights)
    net.load_state_dict(ckpt["model"])
    return net


@torch.no_grad()
def _recalibrate_bn(net: nn.Module, path: list[list[int]], data: SearchData, batches: int) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
    net.train()
    for m in net.modules():  # eval mode sees no dropout, so neither do the statistics it will use (and no RNG)
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    n = min(batches, data.train.num_batches(0))
    for i in range(n):
        x, _ = data.train.batch(0, i)
        net(x, path=path)


@torch.no_grad()
def score_path(supernet: SuperNet, genotype: Genotype, data: SearchData, bn_batches: int = 8) -> PathScore:
    """Score ``genotype``'s path on ``data.val`` (a copy of the supernet is recalibrated; the original is untouched)."""
    net = copy.deepcopy(supernet)
    path = [[i] for i in genotype.indices()]
    with torch.random.fork_rng(devices=[]):  # the same score in any process, whatever ran before
        torch.manual_seed(0)
        _recalibrate_bn(net, path, data, bn_batches)
    net.eval()
    correct = seen = 0
    ce = 0.0
    for i in range(data.val.num_batches(0)):
        x, y = data.val.batch(0, i)
        logits = net(x, path=path).logits[0]
        correct += int((logits.argmax(1) == y).sum())
        ce += float(F.cross_entropy(logits, y, reduction="sum"))
        seen += len(y)
    return PathScore(genotype.tostr(), correct / max(seen, 1), ce / max(seen, 1))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b and its two-sided p-value (scipy); NaN when fewer than 3 pairs or a constant side."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan"), float("nan")
    res = kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)
