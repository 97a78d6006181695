"""Training curves of a run folder: losses, training accuracy and learning rate, rank-1/mAP/mINP per epoch.

Drawn from ``metrics.jsonl`` (one JSON record per epoch, as :class:`hwnas.training.Trainer` writes it; epoch 0
is the untrained model's evaluation when ``--eval-at-start`` was given). :func:`redraw_training_curves` draws
them again for any run folder (``hwnas report plots RUN``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from hwnas._io import json_error_text
from hwnas.errors import ConfigError, UsageError
from hwnas.viz._figure import new_figure, save

FILENAME = "training_curves.png"
_LOSSES = (("loss", "total", "-"), ("ce", "softmax (cross-entropy)", "--"), ("triplet", "triplet", ":"))
_SCORES = (("rank1", "rank-1", "tab:blue"), ("mAP", "mAP", "tab:orange"), ("mINP", "mINP", "tab:green"))


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in file order (blank lines skipped)."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:  # also an integer of more digits than Python converts
            raise ConfigError(f"not valid JSON ({json_error_text(e, column=False)}), {path} line {n}, expected one "
                              "JSON record per line") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise ConfigError(f"record without an integer 'epoch', {path} line {n}, expected the metrics.jsonl "
                              "that hwnas train writes")
        records.append(record)
    return records


def plot_training_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Three panels against the epoch: losses; training accuracy (and lr, right axis); evaluation scores (%)."""
    if not records:
        raise UsageError("no epoch record to draw, plot_training_curves, expected at least one line in "
                         "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    evals = [(r["epoch"], r["eval"]) for r in records if isinstance(r.get("eval"), dict)]
    fig = new_figure(14, 4.2)
    ax_loss, ax_acc, ax_eval = fig.subplots(1, 3)
    _losses(ax_loss, train)
    _accuracy_and_lr(ax_acc, train)
    _scores(ax_eval, evals, [r["epoch"] for r in train])
    for ax in (ax_loss, ax_acc, ax_eval):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def _marker(n: int) -> str | None:
    return "o" if n <= 30 else None


def _losses(ax: Any, train: Sequence[dict[str, Any]]) -> None:
    epochs = [r["epoch"] for r in train]
    for key, label, style in _LOSSES:
        if any(key in r for r in train):
            ax.plot(epochs, [r.get(key, float("nan")) for r in train], style, marker=_marker(len(train)), ms=3,
                    label=label)
    ax.set_title("training losses (mean over the epoch)", fontsize=10)
    ax.set_ylabel("loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)


def _accuracy_and_lr(ax: Any, train: Sequence[dict[str, Any]]) -> None:
    epochs = [r["epoch"] for r in train]
    if any("acc" in r for r in train):
        ax.plot(epochs, [100 * r.get("acc", float("nan")) for r in train], marker=_marker(len(train)), ms=3,
                color="tab:purple", label="training accuracy (identity top-1)")
    ax.set_ylabel("training accuracy (%)")
    ax.set_title("training accuracy and learning rate", fontsize=10)
    legend_ax, handles, labels = ax, *ax.get_legend_handles_labels()
    if any("lr" in r for r in train):
        legend_ax = ax.twinx()
        lrs = [r.get("lr", float("nan")) for r in train]
        legend_ax.step(epochs, lrs, where="mid", color="tab:gray", lw=1, label="learning rate (right axis)")
        positive = [v for v in lrs if v > 0]
        if positive and max(positive) / min(positive) > 20:  # step decays by 10x: a log axis keeps them readable
            legend_ax.set_yscale("log")
        legend_ax.set_ylabel("learning rate")
        more_handles, more_labels = legend_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        legend_ax.legend(handles, labels, loc="center right", fontsize=8)


def _scores(ax: Any, evals: Sequence[tuple[int, dict[str, Any]]], train_epochs: Sequence[int] = ()) -> None:
    """rank-1/mAP/mINP per evaluated epoch, on the same epoch axis as the training panels."""
    last = []  # (value, epoch, colour) of each score's last point, labelled right of it
    for key, label, color in _SCORES:
        points = [(e, 100 * r[key]) for e, r in evals if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", ms=4, color=color, label=label)
            last.append((points[-1][1], points[-1][0], color))
    floor = -100.0
    epochs = [e for e, _ in evals] + list(train_epochs)
    span = max(epochs, default=1) - min(epochs, default=0) or 1
    for value, epoch, color in sorted(last):  # labels at least 5 points of the scale apart, never on each other
        floor = max(value, floor + 5)
        ax.annotate(f"{value:.1f}", (epoch, value), xytext=(epoch + 0.03 * span, floor), textcoords="data",
                    fontsize=8, color=color, ha="left", va="center")
    if evals:  # the training epochs' range, with room for those labels right of the last epoch
        first = min(epochs)
        ax.set_xlim(first - 0.05 * span, first + 1.2 * span)
    ax.set_ylim(0, 102)
    ax.margins(x=0.1)  # room for the last values' labels
    ax.set_ylabel("score (%)")
    ax.set_title("evaluation (query vs gallery)" if evals else "evaluation: none yet", fontsize=10)
    if evals:
        ax.legend(loc="upper left", fontsize=8)


def redraw_training_curves(run_dir: str | os.PathLike) -> Path:
    """``training_curves.png`` of a ``hwnas train`` output folder, from its ``metrics.jsonl`` (and config.json)."""
    run = Path(run_dir)
    records = read_metrics(run / "metrics.jsonl")
    return plot_training_curves(records, run / FILENAME, title=run_title(run))


def run_title(run: Path) -> str:
    """``<model> (<options>) - <folder>`` from the run's config.json, else the folder name."""
    try:
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        options = ", ".join(f"{k}={v}" for k, v in config.get("model_options", {}).items() if k != "num_classes")
        return f"{config['model_name']} ({options}) - {run.name}" if options else f"{config['model_name']} - {run.name}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return run.name
