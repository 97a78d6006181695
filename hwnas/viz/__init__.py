"""Visual results of hwnas runs as PNG files, drawn with matplotlib (one module per figure).

- :mod:`~hwnas.viz.ranks`: the ranked-results grid of an evaluation (``hwnas evaluate --visualize-ranks N``)
- :mod:`~hwnas.viz.cmc`: the CMC curve of an evaluation
- :mod:`~hwnas.viz.training`: training curves from a run's ``metrics.jsonl``
- :mod:`~hwnas.viz.latency`: predicted vs measured latency (``hwnas latency validate --output DIR``)
- :mod:`~hwnas.viz.alphas`: the search's alpha per layer over epochs
- :mod:`~hwnas.viz.tensorboard`: TensorBoard event files (optional: ``pip install 'hwnas[tensorboard]'``)
- :mod:`~hwnas.viz.redraw`: draw the figures of a run folder again (``hwnas report plots RUN``)

Figures are built on matplotlib's ``Figure`` directly (no pyplot: no global state, safe in notebooks and
threads) and written atomically.
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> module; imported on first use, so ``import hwnas.viz.tensorboard`` (train, search) does not load matplotlib
_EXPORTS = {
    "plot_alphas": "alphas", "plot_cmc": "cmc", "plot_latency_validation": "latency",
    "plot_ranked_results": "ranks", "rank_queries": "ranks", "select_queries": "ranks",
    "write_ranked_results": "ranks", "plot_training_curves": "training", "read_metrics": "training",
    "redraw_training_curves": "training", "redraw": "redraw",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hwnas.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hwnas.viz.{_EXPORTS[name]}"), name)


__all__ = ["plot_alphas", "plot_cmc", "plot_latency_validation", "plot_ranked_results", "plot_training_curves",
           "rank_queries", "read_metrics", "redraw", "redraw_training_curves", "select_queries", "write_ranked_results"]
