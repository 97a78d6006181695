"""``--status``: where a search-quality run stands, read from its folder without running anything.

A full run trains 40 networks for hours (``docs/search.md``); this lists the finished trainings (label, depth,
latency, rank-1, mAP, seed), those in flight with their last finished epoch, and the targets judged on what has
finished so far, marked provisional: the trainings run the deepest genotypes first, so a partial standing is biased
by depth until the run completes.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._quality.latency import check_table
from benchmarks._quality.plan import (
    SEARCH_REPORT_KEYS,
    Plan,
    benchmark_entries,
    check_search_reuse,
    proxy_setting,
    search_root,
    spread_entries,
)
from benchmarks._quality.report import _pct, evaluate_targets
from benchmarks._quality.standalone import RESULT_FILE, RESULT_KEYS, Recipe, result_problem, run_dir
from benchmarks._quality.testset import MARKET_KEYS, MARKET_RESULT_FILE, market_problem, scored
from hwnas import _cli
from hwnas._io import finite_number, read_json_cache, read_json_lines
from hwnas.errors import UsageError
from hwnas.latency import load_table
from hwnas.search.report import table_summary
from hwnas.space.genotype import load_genotype
from hwnas.training.loop import METRICS


def training_jobs(entries: Sequence[Any], spread: Sequence[Any], seeds: tuple[int, int]) -> dict[tuple[str, int], Any]:
    """The trainings of a run, keyed by (genotype string, seed): every distinct genotype with ``seeds[0]``, the
    ``spread`` ones again with ``seeds[1]``; values are the first entry of each genotype."""
    jobs: dict[tuple[str, int], Any] = {}
    for e in entries:
        jobs.setdefault((e.genotype.tostr(), seeds[0]), e)
    for e in spread:
        jobs.setdefault((e.genotype.tostr(), seeds[1]), e)
    return jobs


def training_state(root: Path, entry: Any, seed: int, recipe: Recipe, test_set: str = "proxy"
                   ) -> tuple[dict[str, Any] | None, int, str | None]:
    """The finished result of one training (None if unfinished; with ``test_set`` market, also None until it is
    scored on the market test set), its last finished epoch (0: not started) and what stands in the way when a
    file is missing or cannot be used: ``"unusable"`` (a result file the run trains again; a warning says why),
    ``"unscored"`` (trained, no market score yet) or ``"market unusable"`` (a market score the run computes again),
    else None. ``root``: the run's ``train`` folder, ``entry``: a benchmark entry (its ``genotype``)."""
    folder = run_dir(root, entry.genotype, seed, recipe)
    result = read_json_cache(folder / RESULT_FILE, RESULT_KEYS,
                             lambda r: result_problem(r, entry.genotype, seed, recipe))
    if result is not None and test_set == "market":
        path = folder / MARKET_RESULT_FILE
        market = read_json_cache(path, MARKET_KEYS, lambda r: market_problem(r, result, recipe))
        if market is not None:
            return scored(result, market), recipe.epochs, None
        return None, recipe.epochs, "market unusable" if path.exists() or path.is_symlink() else "unscored"
    if result is not None:
        return result, recipe.epochs, None
    epochs = [r["epoch"] for r in read_json_lines(folder / METRICS)[0]
              if isinstance(r, dict) and type(r.get("epoch")) is int and 1 <= r["epoch"] <= recipe.epochs]
    there = (folder / RESULT_FILE).exists() or (folder / RESULT_FILE).is_symlink()
    return None, max(epochs, default=0), "unusable" if there else None


def status_lines(entries: Sequence[Any], spread: Sequence[Any], seeds: tuple[int, int], recipe: Recipe, root: Path,
                 latency_ms: Any, searches_left: int, test_set: str = "proxy") -> list[str]:
    """The report of ``--status``: one line per finished training (best mAP first), one per training in flight,
    the count, and the provisional targets. ``latency_ms(genotype)``: the table's latency, or None without a
    table; ``searches_left``: searches not finished yet (their genotypes are not known); ``test_set``: what the
    figures are scored on (market: a training counts as finished once it is scored there)."""
    jobs = training_jobs(entries, spread, seeds)
    labels: dict[str, list[str]] = {}
    for e in entries:
        labels.setdefault(e.genotype.tostr(), []).append(e.label)
    done, running, waiting, unscorable = {}, [], [], 0
    for (key, seed), e in jobs.items():
        result, epoch, state = training_state(root, e, seed, recipe, test_set)
        name = f"{' = '.join(labels[key])} ({key}) seed {seed}"
        if result is not None:
            done[(key, seed)] = result
        elif state == "unusable":
            running.append(f"  result unusable (see the warning above; the run trains it again): {name}")
        elif state in ("unscored", "market unusable"):
            has_checkpoint = (run_dir(root, e.genotype, seed, recipe) / "last.pt").is_file()
            unscorable += not has_checkpoint
            what = ("trained, not yet scored on the market test set" if state == "unscored" else
                    "market score unusable (see the warning above)")
            running.append(f"  {what}: {name}; " + ("the run scores its checkpoint" if has_checkpoint else
                                                    "no checkpoint here, so the run refuses it"))
        elif epoch:
            running.append(f"  in flight: {' = '.join(labels[key])} ({key}) seed {seed}, epoch {epoch} of "
                           f"{recipe.epochs} finished")
        else:
            waiting.append(" = ".join(labels[key]) + ("" if seed == seeds[0] else f" (seed {seed})"))
    on = "; rank-1/mAP on the market test set" if test_set == "market" else ""
    lines = [f"{len(done)} of {len(jobs)} trainings finished ({recipe.epochs} epochs each{on})"
             + (f"; {searches_left} search(es) not finished, so their genotypes are not counted yet"
                if searches_left else "") + ":"]
    for (key, seed), r in sorted(done.items(), key=lambda kv: -kv[1]["mAP"]):
        e = jobs[(key, seed)]
        lat = latency_ms(e.genotype)
        lines.append(f"  {_pct(r['mAP']):>6} mAP  {_pct(r['rank1']):>6} rank-1  seed {seed}  "
                     f"depth {e.genotype.depth:2d}"
                     f"  {'-' if lat is None else f'{lat:.2f} ms':>9}  {' = '.join(labels[key])} ({key})")
    lines += running
    if waiting:
        lines.append(f"  not started: {', '.join(waiting)}")
    if unscorable:
        lines.append(f"note: {unscorable} finished training(s) have no usable market score and no checkpoint here (a "
                     "folder exported before --test-set market, or an edited one): the run cannot score them; "
                     "--test-set proxy reports them on the proxy's own test split")
    rows = _rows(entries, done, seeds, latency_ms)
    if any(r["kind"] == "random" for r in rows) and any(r["kind"] == "searched" for r in rows) \
            and all(r["latency_ms"] is not None for r in rows):
        unfinished = len(jobs) - len(done)
        tag = ("final (every training finished)" if not unfinished and not searches_left else
               f"PROVISIONAL ({unfinished} training(s) to go, deepest first: partial figures are biased by depth)")
        lines.append(f"targets on the finished trainings, {tag}:")
        lines += [f"  {s}" for s in evaluate_targets(rows)["summary"]]
    else:
        lines.append("targets: not yet (they need finished random and searched genotypes and the latency table)")
    return lines


def _rows(entries: Sequence[Any], done: dict[tuple[str, int], dict], seeds: tuple[int, int],
          latency_ms: Any) -> list[dict[str, Any]]:
    """The rows :func:`evaluate_targets` judges: the entries whose first-seed training finished."""
    return [result_row(e, done[(e.genotype.tostr(), seeds[0])], done.get((e.genotype.tostr(), seeds[1])), seeds[1],
                       latency_ms(e.genotype))
            for e in entries if (e.genotype.tostr(), seeds[0]) in done]


def result_row(entry: Any, result: dict[str, Any], again: dict[str, Any] | None, second_seed: int,
               latency_ms: float | None) -> dict[str, Any]:
    """One benchmarked genotype's row of the report (and of the targets): ``result`` its first-seed training's,
    ``again`` its training with ``second_seed`` (None if it is not one of the spread genotypes), ``latency_ms`` the
    table's latency."""
    g = entry.genotype
    return {"label": entry.label, "kind": entry.kind, "genotype": g.tostr(), "depth": g.depth,
            "latency_weight": entry.latency_weight, "search_seed": entry.search_seed, "latency_ms": latency_ms,
            "rank1": result["rank1"], "mAP": result["mAP"], "mINP": result["mINP"], "train_s": result["train_s"],
            "train_acc": result.get("train_acc"), "channels_last": bool(result.get("channels_last", False)),
            "train_device": result.get("device"), "train_torch": result.get("torch"),
            "test_set": result.get("test_set", "proxy"),
            **({"proxy_test": result["proxy_test"]} if "proxy_test" in result else {}),
            "second_seed": None if again is None else {"seed": second_seed, "rank1": again["rank1"],
                                                       "mAP": again["mAP"],
                                                       **({"proxy_test": again["proxy_test"]}
                                                          if "proxy_test" in again else {})}}


def status_report(plan: Plan, out: Path, table_path: Path | None = None) -> list[str]:
    """The lines of ``--status`` for the run of ``plan`` in ``out`` (``table_path``: its --latency-table, default
    the one measured into ``out``): finished trainings, those in flight, provisional targets. Reads only."""
    table_path = table_path or out / "latency_cpu_proxy.json"
    table = None
    if table_path.exists() or table_path.is_symlink():  # a folder or a broken link is refused, not skipped
        table = load_table(table_path, space=plan.search.space)
        check_table(table, proxy_setting(plan), plan.table_repeats, f"latency table {_cli.printable(str(table_path))}")
    searched, left = [], 0
    for seed in plan.search_seeds:
        for pressure in plan.latency_pressures:
            sub = search_root(plan, out, seed) / f"p{pressure:g}"
            report = read_json_cache(sub / "search_report.json", SEARCH_REPORT_KEYS)
            if report is None:
                left += 1
                continue
            weight = report["config"].get("latency_weight") if isinstance(report["config"], dict) else None
            if not finite_number(weight) or weight < 0:
                raise UsageError(f"bad latency weight {_cli.file_value(weight)}, "
                                 f"{_cli.printable(str(sub / 'search_report.json'))} "
                                 "config.latency_weight, expected a number >= 0 (the report of a finished search)")
            if table is not None:  # the run itself would refuse a search of another table or weight
                check_search_reuse(report, sub, table.weight_for_pressure(plan.search.space, pressure),
                                   json.loads(json.dumps(table_summary(table))))
            searched.append((weight, load_genotype(sub / "genotype.json", space=plan.search.space),
                             {"search_seed": seed}))
    entries = benchmark_entries(plan, searched)
    spread = spread_entries(entries)
    if left:  # the first searched genotype trained twice is the weight-0 search's of the first seed, once known
        spread = [e for e in spread if e.kind != "searched"]
    lines = status_lines(entries, spread, plan.seeds, plan.recipe, out / "train",
                         (lambda g: None) if table is None else table.genotype_latency_ms, left, plan.test_set)
    # work of other options in the same folder: most likely the options given here are not the run's
    roots = {search_root(plan, out, seed).name for seed in plan.search_seeds}
    for kind, folder, own in (("trainings", "train", {plan.recipe.tag()}), ("searches", "search", roots)):
        other = sorted(p.name for p in (out / folder).glob("*") if p.is_dir() and p.name not in own)
        if other:
            lines.append(f"note: {_cli.printable(str(out / folder))} also holds {kind} of other settings "
                         f"({', '.join(_cli.printable(str(o)) for o in other[:4])}"
                         f"{', ...' if len(other) > 4 else ''}; e<N> = N epochs): for those, give the options of the "
                         "run that made them (--recipe-epochs, --search-epochs, --search-seeds, ...)")
    return lines
