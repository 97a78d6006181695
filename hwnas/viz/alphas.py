"""The search's architecture weights over epochs: softmax(alpha) of every candidate, one panel per layer.

All panels share one y-scale, so a layer that decided stands out from one that did not; the dashed line is the
uniform level 1/n (alphas that never moved stay on it) and the chosen candidate (the derived genotype, argmax of
the final alpha) is drawn thick, starred at the last epoch and named in its panel's title. One colour per kernel
pair (k1, k2); CDNet's candidates with r = 2 stacked CBlocks are dashed.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from hwnas.errors import UsageError
from hwnas.viz._figure import new_figure, save

FILENAME = "alphas.png"
_PAIRS = ("3-5", "3-7", "5-7", "3-9", "5-9", "7-9")
_UNIFORM_STYLE = {"color": "black", "lw": 1, "linestyle": (0, (4, 3))}


def plot_alphas(history: Sequence[dict[str, Any]], space: str, path: str | os.PathLike,
                chosen: Sequence[int] | None = None) -> Path:
    """Draw softmax(alpha) per layer against the epoch into a PNG at ``path``.

    ``history``: the search's per-epoch records, each with ``epoch`` and ``alphas`` ((layers, n) logits).
    ``chosen``: the candidate index per layer (default: argmax of the last record's alphas, the derived genotype).
    """
    from hwnas.space.candidates import candidates

    if not history:
        raise UsageError("no epoch record to draw, plot_alphas, expected at least one epoch in the history")
    names = [c.tostr(space) for c in candidates(space)]
    probs = torch.softmax(torch.tensor([r["alphas"] for r in history], dtype=torch.float64), dim=-1)  # (E, L, n)
    layers, n = probs.shape[1], probs.shape[2]
    if n != len(names):
        raise UsageError(f"alphas have {n} candidates per layer, plot_alphas, expected {len(names)} (the {space} "
                         "space)")
    chosen = [int(i) for i in (chosen if chosen is not None else probs[-1].argmax(dim=-1).tolist())]
    epochs = [r["epoch"] for r in history]
    cols, rows = 3, -(-layers // 3)
    fig = new_figure(15, 3.3 * rows + 0.9)
    axes = list(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).flat)
    for layer in range(layers):
        _panel(axes[layer], epochs, probs[:, layer], names, chosen[layer], layer)
    for ax in axes[layers:]:
        ax.set_visible(False)
    top = max(float(probs.max()), 1.0 / n) * 1.08
    bottom = min(float(probs.min()), 1.0 / n)
    axes[0].set_ylim(max(0.0, bottom - 0.08 * (top - bottom)), top)  # shared by every panel
    for ax in axes[::cols]:
        ax.set_ylabel("softmax(alpha)")
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, names, space)
    _fixed_layout(fig, rows, cols)
    return save(fig, path)


def _fixed_layout(fig: Any, rows: int, cols: int, left: float = 0.8, right: float = 0.15, bottom: float = 0.55,
                  top: float = 1.05, hgap: float = 0.4, wgap: float = 0.15) -> None:
    """Margins and gaps in inches (text sizes are fixed, so are they): the legend's 0.7 in and a title above each
    panel; tick labels only at the left and bottom (shared axes). What ``tight_layout`` would find, without its
    measuring every text (half the time of the figure)."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    ax_w = (w - left - right - (cols - 1) * wgap) / cols
    ax_h = (h - bottom - top - (rows - 1) * hgap) / rows
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h, wspace=wgap / ax_w,
                        hspace=hgap / ax_h)


def _panel(ax: Any, epochs: list[int], probs: torch.Tensor, names: list[str], chosen: int, layer: int) -> None:
    """One layer: ``probs`` (epochs, n) per candidate, the chosen one thick and starred, the uniform level."""
    marker = "." if len(epochs) < 30 else None
    for i, name in enumerate(names):
        colour, style = _style(name)
        ax.plot(epochs, probs[:, i].tolist(), color=colour, linestyle=style, lw=2.8 if i == chosen else 1.0,
                marker=marker, zorder=3 if i == chosen else 2)
    final = float(probs[-1, chosen])
    ax.plot([epochs[-1]], [final], "*", ms=14, color=_style(names[chosen])[0], markeredgecolor="black", zorder=4)
    ax.axhline(1.0 / len(names), zorder=1, **_UNIFORM_STYLE)
    ax.set_title(f"layer {layer + 1}: chosen {names[chosen]} (p = {final:.3f})", fontsize=10)
    ax.grid(alpha=0.3)


def _legend(fig: Any, names: list[str], space: str) -> None:
    """Above the panels; column j holds kernel pair j (CDNet: r = 1 above r = 2), then the two markers."""
    labels = sorted(names, key=_legend_key)
    handles = [Line2D([], [], color=_style(name)[0], linestyle=_style(name)[1], lw=1.5) for name in labels]
    handles += [Line2D([], [], **_UNIFORM_STYLE),
                Line2D([], [], marker="*", ms=12, color="white", markeredgecolor="black", linestyle="none")]
    labels += [f"uniform 1/n = {1.0 / len(names):.4f}", "chosen (argmax of the final alpha)"]
    rows = 2 if space == "cdnet" else 1
    title = f"{space} candidates k1-k2" + ("-r (dashed: r = 2 stacked CBlocks)" if space == "cdnet" else "")
    fig.legend(handles, labels, loc="upper center", ncol=-(-len(labels) // rows), fontsize=8, frameon=False,
               title=title, title_fontsize=8)


def _pair_index(name: str) -> int:
    pair = "-".join(name.split("-")[:2])
    return _PAIRS.index(pair) if pair in _PAIRS else len(_PAIRS)


def _legend_key(name: str) -> tuple[int, str]:
    return _pair_index(name), name


def _style(name: str) -> tuple[Any, str]:
    """(colour, line style) of a candidate: one colour per kernel pair (k1, k2), dashed for r = 2 (CDNet)."""
    import matplotlib

    return matplotlib.colormaps["tab10"](_pair_index(name)), "--" if name.count("-") == 2 and name[-1] == "2" else "-"
