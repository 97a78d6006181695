"""Predicted vs measured latency of ``hwnas latency validate``: one point per random genotype, the line y = x,
MAPE and Spearman's rho in the corner. Horizontal bars: the interquartile range of the measurement."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hwnas.errors import UsageError
from hwnas.viz._figure import new_figure, save

FILENAME = "validation.png"


def plot_latency_validation(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw a validation result (``ValidationResult.to_dict()``, i.e. ``validation.json``) into a PNG at ``path``."""
    archs = result["archs"]
    if not archs:
        raise UsageError("the validation result has no genotype, plot_latency_validation, expected at least one "
                         "measured genotype")
    measured = [float(a["measured_ms"]) for a in archs]
    predicted = [float(a["predicted_ms"]) for a in archs]
    iqr = [float(a.get("iqr_ms") or 0.0) / 2 for a in archs]
    fig = new_figure(6.2, 5.6)
    ax = fig.add_subplot()
    lo, hi = min(measured + predicted), max(measured + predicted)
    pad = 0.06 * (hi - lo or hi or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], "-", color="black", lw=1, label="y = x (perfect prediction)")
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="tab:gray", alpha=0.15, lw=0,
                    label="within ±10% of the measurement")
    ax.errorbar(measured, predicted, xerr=iqr, fmt="o", ms=5, color="tab:blue", ecolor="tab:blue", elinewidth=1,
                capsize=2, label=f"{len(archs)} random {result.get('space', '')} genotypes")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("measured end to end (ms per batch, median)")
    ax.set_ylabel("predicted by the table (ms per batch)")
    ax.text(0.03, 0.97, f"MAPE {100 * result['mape']:.2f}%\nSpearman rho {result['spearman']:.3f}",
            transform=ax.transAxes, va="top", ha="left", fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    ctx = result.get("context", {})
    setting = ", ".join(s for s in (
        f"batch {ctx['batch_size']}" if "batch_size" in ctx else "", ctx.get("dtype", ""),
        "x".join(map(str, ctx["resolution"])) if ctx.get("resolution") else "",
        f"width {ctx['width_mult']}" if "width_mult" in ctx else "",
        f"{ctx['threads']} thread(s)" if ctx.get("threads") else "") if s)
    ax.set_title(f"latency table '{result['table']}' on {result['device']}\n{setting}", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
