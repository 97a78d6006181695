"""What a search-quality run searches and trains: its :class:`Plan`, the benchmarked genotypes and their folders.

The full plan is the main job's proxy (short schedule, synthetic data) with the stand-alone recipe of
:mod:`benchmarks._quality.standalone`; :func:`quick_plan` runs every stage at toy sizes. The run
(``benchmarks/search_quality.py``) and ``--status`` (:mod:`benchmarks._quality.status`) both name their searches,
genotypes and trainings from here, so they always agree on what a run holds.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._quality.standalone import Recipe, settings_tag
from hwnas._io import finite_number
from hwnas.errors import UsageError
from hwnas.latency.schema import Setting
from hwnas.latency.validate import random_genotypes
from hwnas.search.config import SearchConfig, SyntheticData, short_config, with_epochs
from hwnas.space.genotype import Genotype
from hwnas.space.presets import PRESETS


@dataclass(frozen=True)
class Plan:
    """What one benchmark run trains and searches (the full plan, or :func:`quick_plan`)."""

    search: SearchConfig
    data: SyntheticData  # the search's dataset (the main job's)
    train_data: SyntheticData  # stand-alone training and test: same generator, more identities (less noisy mAP)
    recipe: Recipe
    random_n: int = 24
    random_seed: int = 0
    # Latency pressures of the searches: the latency term's value at uniform alphas (hwnas.search.run_config.
    # DEFAULT_LATENCY_PRESSURE is the main job's default); 0 = the paper's search. weight = pressure / E_uniform[lat].
    latency_pressures: tuple[float, ...] = (0.0, 1.0, 4.0)
    seeds: tuple[int, int] = (0, 1)  # stand-alone trainings: every genotype with seeds[0], three again with seeds[1]
    search_seeds: tuple[int, ...] = (0,)  # every search runs once per seed (--search-seeds); search.seed is unused
    table_batch: int = 8
    table_repeats: int = 20
    latency_check_repeats: int = 10
    bn_batches: int = 8
    channels_last: bool = False  # the trainings' memory layout (TrainConfig.channels_last): speed only, not the recipe
    # what the trainings are scored on (benchmarks._quality.testset.TEST_SETS): the full plan's is market
    test_set: str = "proxy"

    def to_dict(self) -> dict[str, Any]:
        nested = {"search": self.search.to_dict(), "data": dataclasses.asdict(self.data),
                  "train_data": dataclasses.asdict(self.train_data), "recipe": self.recipe.to_dict()}
        return {**nested, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in nested}}


def search_root(plan: Plan, out: Path, seed: int | None = None) -> Path:
    """Where the plan's searches with search seed ``seed`` (default: the first of ``plan.search_seeds``) and that
    supernet's scores live: ``out/search/e<epochs>-<8 hex digits>``, named after the search schedule, its seed and
    its data, so a changed schedule or seed never reuses another one's searches."""
    config = plan.search.replace(seed=plan.search_seeds[0] if seed is None else seed)
    settings = {"search": config.to_dict(), "data": dataclasses.asdict(plan.data)}
    return out / "search" / settings_tag(plan.search.epochs, settings)


def full_plan(search_epochs: int | None = None, recipe_epochs: int | None = None) -> Plan:
    """The main job's proxy (short schedule, its synthetic data) and the benchmark's recipe.

    ``search_epochs``: the searches' epochs instead of the main job's 32 (warm-up and alpha's lr milestones keep
    their fractions: ``hwnas.search.with_epochs``, what ``python -m hwnas.search --epochs N`` runs).
    ``recipe_epochs``: the stand-alone recipe's epochs instead of :class:`Recipe`'s (its lr decay stays at the
    same fraction).
    """
    search = short_config() if search_epochs is None else with_epochs(short_config(), search_epochs)
    data = SyntheticData()
    train_data = dataclasses.replace(data, num_ids=64, images_per_id=16, num_cameras=6)
    recipe = Recipe(image_size=search.image_size, width_mult=search.width_mult)
    if recipe_epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=recipe_epochs)
    return Plan(search=search, data=data, train_data=train_data, recipe=recipe, test_set="market")


def quick_plan(search_epochs: int | None = None, recipe_epochs: int | None = None) -> Plan:
    """Every stage at toy sizes (a smoke run of the pipeline; its figures mean nothing)."""
    search = short_config(width_mult=0.25, image_size=(32, 32), epochs=2, warmup_epochs=1, ids_per_batch=4,
                          alpha_milestones=(), checkpoint_every=0)
    if search_epochs is not None:
        search = with_epochs(search, search_epochs)
    data = SyntheticData(num_ids=8, images_per_id=8, num_cameras=3, image_size=(32, 32))
    return Plan(search=search, data=data, train_data=data,
                recipe=Recipe(epochs=recipe_epochs or 1, warmup_epochs=0, batch_size=16, image_size=(32, 32),
                              width_mult=0.25),
                random_n=4, table_batch=2, table_repeats=3, latency_check_repeats=3, bn_batches=1)


@dataclass(frozen=True)
class Entry:
    """One architecture of the benchmark: ``kind`` random | preset | searched, and its label."""

    label: str
    kind: str
    genotype: Genotype
    latency_weight: float | None = None  # searched: the search's latency weight and seed
    search_seed: int | None = None


SEARCH_REPORT_KEYS = ("config", "final", "latency_table")


def check_search_reuse(report: dict[str, Any], folder: Path, weight: float, table: dict[str, Any]) -> None:
    """A finished search is reused only if it ran with this run's latency table and weight; otherwise its genotype
    would be reported under a weight and a table it was never searched with."""
    used = report.get("latency_table")
    used_weight = (report.get("config") or {}).get("latency_weight")
    if used != table or not finite_number(used_weight) or not math.isclose(used_weight, weight,
                                                                                       rel_tol=1e-9, abs_tol=1e-12):
        name = used.get("name") if isinstance(used, dict) else used
        raise UsageError(f"the finished search in {folder} ran with latency table {name!r} at weight {used_weight}, "
                         f"--latency-table, expected the table this run uses ({table.get('name')!r}, weight "
                         f"{weight:g}): give the same --latency-table as the run that made it, or a new --output")


def proxy_setting(plan: Plan) -> Setting:
    """The inference setting of the benchmark's CPU latency table: the proxy's width and input size, 1 thread."""
    s = plan.search
    return Setting(plan.table_batch, "fp32", tuple(s.image_size), s.width_mult, "fblneck", threads=1)


def benchmark_entries(plan: Plan, searched: Sequence[tuple[float, Genotype, dict]]) -> list[Entry]:
    entries = [Entry(f"random {i + 1}", "random", g)
               for i, g in enumerate(random_genotypes(plan.search.space, plan.random_n, plan.random_seed))]
    entries += [Entry(name, "preset", g) for name, g in PRESETS.items() if g.space == plan.search.space]
    several = len(plan.search_seeds) > 1  # labels name the seed only when there are several
    entries += [Entry(f"searched w={w:g}" + (f" s{summary['search_seed']}" if several else ""), "searched", g, w,
                      summary["search_seed"]) for w, g, summary in searched]
    return entries


def spread_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The three genotypes trained twice, fixed before any result is known: the weight-0 search's genotype,
    the paper's cdnet-top2 and the first random genotype."""
    by_label = {e.label: e for e in entries}
    chosen = [e for e in entries if e.kind == "searched"][:1] + [by_label[k] for k in ("cdnet-top2", "random 1")
                                                                   if k in by_label]
    return chosen


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The plan the run options name (raises :class:`UsageError` for --derive-samples without --derive score)."""
    plan = (quick_plan if args.quick else full_plan)(args.search_epochs, args.recipe_epochs)
    derive = args.derive or plan.search.derive
    if args.derive_samples is not None and derive != "score":  # the same search under other settings
        raise UsageError(f"--derive-samples {args.derive_samples} with derive {derive}, --derive-samples, expected it "
                         "only with --derive score")
    changes = {k: getattr(args, k) for k in ("share_weights", "derive", "derive_samples")
               if getattr(args, k) is not None}
    if changes:  # filed under their own search folder (the settings hash)
        plan = dataclasses.replace(plan, search=plan.search.replace(**changes))
    if args.random is not None:
        plan = dataclasses.replace(plan, random_n=args.random)
    if args.search_seeds is not None:
        plan = dataclasses.replace(plan, search_seeds=args.search_seeds)
    if args.channels_last:
        plan = dataclasses.replace(plan, channels_last=True)
    if args.test_set is not None:
        plan = dataclasses.replace(plan, test_set=args.test_set)
    return plan


