"""The CMC curve of an evaluation: the fraction of queries whose first true match is within the top k, k = 1..K.

CMC as scored by :func:`hwnas.evaluation.evaluate_rank` (Market-1501 protocol, valid queries only), drawn in
percent with rank-1/5/10/20 marked and mAP/mINP in the legend.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from hwnas.errors import UsageError
from hwnas.viz._figure import new_figure, save

MARKED_RANKS = (1, 5, 10, 20)


def plot_cmc(cmc: Sequence[float], path: str | os.PathLike, *, label: str = "", mAP: float | None = None,
             mINP: float | None = None, title: str = "") -> Path:
    """Draw ``cmc`` (fractions in [0, 1]; ``cmc[k-1]`` is rank-k) into a PNG at ``path``."""
    values = [float(v) for v in cmc]
    if not values or any(not math.isfinite(v) or not 0 <= v <= 1 for v in values):
        raise UsageError(f"CMC values {values[:5]}..., plot_cmc, expected fractions in [0, 1] (no NaN)")
    ranks = list(range(1, len(values) + 1))
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    scores = ", ".join(f"{name} {100 * v:.1f}%" for name, v in (("mAP", mAP), ("mINP", mINP)) if v is not None)
    legend = "; ".join(s for s in (label, scores) if s) or "CMC"
    ax.plot(ranks, [100 * v for v in values], color="tab:blue", lw=2, label=legend)
    for k in MARKED_RANKS:
        if k <= len(values):
            y = 100 * values[k - 1]
            ax.plot([k], [y], "o", color="tab:blue")
            ax.annotate(f"rank-{k} {y:.1f}%", (k, y), xytext=(6, -14), textcoords="offset points", fontsize=8)
    ax.set_xlim(0.5, len(values) + 0.5)
    ax.set_ylim(0, 102)
    ax.set_xlabel("rank k")
    ax.set_ylabel("queries with a true match in the top k (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "CMC curve (Market-1501 protocol)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
