"""``--status``: where a search-quality run stands, read from its folder without running anything.

A full run trains 40 networks for hours (``docs/search.md``); this lists the finished trainings (label, depth,
latency, rank-1, mAP, seed), those in flight with their last finished epoch, and the targets judged on what has
finished so far, marked provisional: the trainings run the deepest genotypes first, so a partial standing is biased
by depth until the run completes.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._quality.report import _pct, evaluate_targets
from benchmarks._quality.standalone import RESULT_FILE, RESULT_KEYS, Recipe, result_problem, run_dir
from hwnas._io import read_json_cache, read_json_lines
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


def training_state(root: Path, entry: Any, seed: int, recipe: Recipe) -> tuple[dict[str, Any] | None, int, bool]:
    """The finished result of one training (None if unfinished), its last finished epoch (0: not started) and
    whether a result file is there but cannot be used (the run trains it again; a warning says why);
    ``root``: the run's ``train`` folder, ``entry``: a benchmark entry (its ``genotype``)."""
    folder = run_dir(root, entry.genotype, seed, recipe)
    result = read_json_cache(folder / RESULT_FILE, RESULT_KEYS,
                             lambda r: result_problem(r, entry.genotype, seed, recipe))
    if result is not None:
        return result, recipe.epochs, False
    epochs = [r["epoch"] for r in read_json_lines(folder / METRICS)[0]
              if isinstance(r, dict) and type(r.get("epoch")) is int and 1 <= r["epoch"] <= recipe.epochs]
    return None, max(epochs, default=0), (folder / RESULT_FILE).exists() or (folder / RESULT_FILE).is_symlink()


def status_lines(entries: Sequence[Any], spread: Sequence[Any], seeds: tuple[int, int], recipe: Recipe, root: Path,
                 latency_ms: Any, searches_left: int) -> list[str]:
    """The report of ``--status``: one line per finished training (best mAP first), one per training in flight,
    the count, and the provisional targets. ``latency_ms(genotype)``: the table's latency, or None without a
    table; ``searches_left``: searches not finished yet (their genotypes are not known)."""
    jobs = training_jobs(entries, spread, seeds)
    labels: dict[str, list[str]] = {}
    for e in entries:
        labels.setdefault(e.genotype.tostr(), []).append(e.label)
    done, running, waiting = {}, [], []
    for (key, seed), e in jobs.items():
        result, epoch, unusable = training_state(root, e, seed, recipe)
        if result is not None:
            done[(key, seed)] = result
        elif unusable:
            running.append(f"  result unusable (see the warning above; the run trains it again): "
                           f"{' = '.join(labels[key])} ({key}) seed {seed}")
        elif epoch:
            running.append(f"  in flight: {' = '.join(labels[key])} ({key}) seed {seed}, epoch {epoch} of "
                           f"{recipe.epochs} finished")
        else:
            waiting.append(" = ".join(labels[key]) + ("" if seed == seeds[0] else f" (seed {seed})"))
    lines = [f"{len(done)} of {len(jobs)} trainings finished ({recipe.epochs} epochs each)"
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
    rows = []
    for e in entries:
        key = e.genotype.tostr()
        r = done.get((key, seeds[0]))
        if r is None:
            continue
        again = done.get((key, seeds[1]))
        rows.append({"label": e.label, "kind": e.kind, "genotype": key, "latency_weight": e.latency_weight,
                     "search_seed": e.search_seed, "latency_ms": latency_ms(e.genotype), "mAP": r["mAP"],
                     "second_seed": None if again is None else {"seed": seeds[1], "mAP": again["mAP"]}})
    return rows
