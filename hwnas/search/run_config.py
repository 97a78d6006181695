"""What a config file for ``hwnas search`` holds: the search settings plus the data and the latency table.

The ``search`` section is :class:`SearchConfig` (every field, whatever it holds; nothing here lists them), so a
field added there is a config key at once. Its defaults depend on the data: the seed's schedule
(:func:`paper_config`) with a dataset folder, the short synthetic one (:func:`short_config`) without.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hwnas import _config
from hwnas.data.config import DatasetConfig
from hwnas.errors import UsageError
from hwnas.search.config import SearchConfig, paper_config, short_config, with_epochs

RESULT_NEUTRAL = ("search.checkpoint_every",)  # may change on --resume: the result does not depend on them


@dataclass(frozen=True)
class SearchRunConfig:
    """Everything that decides a search: ``search`` (SearchConfig), ``data`` (``root: null`` = the synthetic set
    generated into the output folder, with the short schedule), ``latency_table`` (a shipped name or a JSON path,
    or null) and ``sweep_latency_weights`` (one search per weight, or null for one search)."""

    search: SearchConfig = field(default_factory=SearchConfig)
    data: DatasetConfig = field(default_factory=DatasetConfig)
    latency_table: str | None = None
    sweep_latency_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        weights = self.sweep_latency_weights
        if weights is not None and (not weights or any(not math.isfinite(w) or w < 0 for w in weights)):
            raise UsageError(f"bad weights {list(weights)}, SearchRunConfig.sweep_latency_weights, expected finite "
                             "numbers >= 0")
        if weights is not None and not self.latency_table:
            raise UsageError("a latency sweep without a latency table, SearchRunConfig.latency_table, expected a "
                             "table name or path to trade against (--latency-table NAME|PATH, or latency_table: in "
                             "the config)")
        if self.search.latency_target_ms is not None and not self.latency_table:
            raise UsageError("a latency target without a latency table, SearchRunConfig.latency_table, expected a "
                             "table name or path (--latency-table NAME|PATH, or latency_table: in the config)")

    @property
    def synthetic(self) -> bool:
        return self.data.root is None


def schedule_base(synthetic: bool) -> SearchConfig:
    """The schedule a search starts from: short on synthetic data, the seed's on a dataset folder."""
    return short_config() if synthetic else paper_config()


def resolve_search_run(layers: Sequence[_config.Layer]) -> SearchRunConfig:
    """Defaults (by data) < layers; epochs given without ``alpha_milestones`` keep the milestones' fractions."""
    synthetic = _config.lookup(layers, "data.root") is None
    base = schedule_base(synthetic)
    r = _config.resolve(SearchRunConfig(search=base), layers)
    run = r.config
    if r.was_set("search.epochs") and not r.was_set("search.alpha_milestones"):
        scaled = with_epochs(run.search.replace(epochs=base.epochs, alpha_milestones=base.alpha_milestones),
                             run.search.epochs)
        run = dataclasses.replace(run, search=run.search.replace(alpha_milestones=scaled.alpha_milestones))
    return run
