"""The supernet's own ranking of architectures: its validation score with one genotype's path fixed
(:func:`hwnas.search.scoring.score_path`, deterministic). Kendall's tau of these scores against stand-alone mAP
says whether the supernet ranks architectures as training them does.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from scipy.stats import kendalltau

from hwnas.search._checkpoint import CHECKPOINT_NAME, load_checkpoint
from hwnas.search.config import SearchConfig
from hwnas.search.scoring import PathScore, score_path  # noqa: F401 (the benchmark's API)
from hwnas.search.supernet import SuperNet

logger = logging.getLogger(__name__)


def load_supernet(search_dir: Path, config: SearchConfig, num_classes: int) -> SuperNet:
    """The supernet of a finished search (``search_dir/checkpoints/last.pt``)."""
    ckpt = load_checkpoint(Path(search_dir) / "checkpoints" / CHECKPOINT_NAME)
    net = SuperNet(config.space, num_classes, config.width_mult, config.topk, config.alpha_init, config.share_weights)
    net.load_state_dict(ckpt["model"])
    return net


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b and its two-sided p-value (scipy); NaN when fewer than 3 pairs or a constant side."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan"), float("nan")
    res = kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)
