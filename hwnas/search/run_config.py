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
from typing import Any

from hwnas import _config
from hwnas.data.config import DatasetConfig
from hwnas.errors import UsageError
from hwnas.search.config import SearchConfig, paper_config, short_config, with_epochs

RESULT_NEUTRAL = ("search.checkpoint_every",)  # may change on --resume: the result does not depend on them

# With a latency table and no latency weight given, the search is hardware-aware by default: the weight is set so
# that the latency term is worth this much loss at the start (uniform alphas), whatever the table's scale (a GPU
# table at batch 128 is ~100x a CPU table at batch 1). Measured on the main job: docs/search.md, "The main job".
DEFAULT_LATENCY_PRESSURE = 4.0


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
        if weights is not None:
            from hwnas.search.sweep import check_distinct

            check_distinct(weights, "SearchRunConfig.sweep_latency_weights")
        if weights is not None and not self.latency_table:
            raise UsageError("a latency sweep without a latency table, SearchRunConfig.latency_table, expected a "
                             "table name or path to trade against (--latency-table NAME|PATH, or latency_table: in "
                             "the config)")
        if self.search.latency_weight > 0 and not self.latency_table:
            raise UsageError(f"a latency weight ({self.search.latency_weight:g}) without a latency table, "
                             "SearchRunConfig.latency_table, expected a table name or path to price the latency "
                             "term (--latency-table NAME|PATH, or latency_table: in the config), or weight 0")
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
    """Defaults (by data) < layers; epochs given without ``alpha_milestones``/``warmup_epochs`` keep their fractions."""
    synthetic = _config.lookup(layers, "data.root") is None
    base = schedule_base(synthetic)
    epochs = _config.lookup(layers, "search.epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1:
        # other epochs keep alpha's lr milestones and the weight warm-up at the same fractions of the schedule
        # (a layer that sets alpha_milestones or warmup_epochs overrides these)
        base = with_epochs(base, epochs)
    r = _config.resolve(SearchRunConfig(search=base), layers)
    run = r.config
    run.search.check_milestones_apply()
    if run.latency_table and run.sweep_latency_weights is None and not r.was_set("search.latency_weight"):
        weight = default_latency_weight(run.latency_table, run.search.space, run.search.latency_target_ms)
        run = dataclasses.replace(run, search=run.search.replace(latency_weight=weight))
    return run


def default_latency_weight(table: Any, space: str, target_ms: float | None = None) -> float:
    """The latency weight of a search given a table but no weight: :data:`DEFAULT_LATENCY_PRESSURE` divided by the
    table's expected latency (ms) at uniform alphas, so the term ``weight * E[lat]`` starts at that value (per ms,
    4 significant digits; 0.0298 for ``rtx2080``). With a target the term ``weight * max(E[lat]/T - 1, 0)`` is
    already relative, and the weight is the pressure itself. ``--latency-weight 0`` gives the paper's search.

    ``table``: a name or path (read with ``load_table``) or a loaded :class:`hwnas.latency.LatencyTable`.
    Raises :class:`hwnas.errors.LatencyTableError` (via ``load_table``) for a table that cannot be read."""
    if target_ms is not None:
        return DEFAULT_LATENCY_PRESSURE
    from hwnas.latency import load_table

    table = table if not isinstance(table, str) else load_table(table, space=space)
    return table.weight_for_pressure(space, DEFAULT_LATENCY_PRESSURE)
