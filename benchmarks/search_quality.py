"""Search-quality benchmark: do the searched architectures beat random ones on a proxy where training is affordable?

    python -m benchmarks.search_quality --search-seeds 0,1,2 --workers 2 --channels-last --output runs/sq
                                    # the recorded run (160-epoch trainings: ~10 h on 2 cores, resumable)
    python -m benchmarks.search_quality --quick --output /tmp/sq-quick         # minutes: every stage, tiny sizes
    python -m benchmarks.search_quality --search-epochs 256 --output runs/sq   # the searches 8x longer
    python -m benchmarks.search_quality --recipe-epochs 80 --output runs/sq    # trainings half as long
    python -m benchmarks.search_quality --test-set proxy --output runs/sq      # scored on the small test split
    python -m benchmarks.search_quality --share-weights io --derive score --search-seeds 0,1,2 --output runs/sq
                                                         # hwnas's options, three search seeds
    python -m benchmarks.search_quality --output runs/sq --export keep/sq   # results only (MB), to continue elsewhere
    python -m benchmarks.search_quality --output runs/sq --status           # finished so far, provisional targets

On the synthetic proxy of the main job (the short schedule's dataset, width and input size):
1. a CPU latency table of the proxy setting is measured on this machine (outside the package);
2. the main job's search runs at latency weight 0 and at two weights above 0, on that table (``--search-epochs``:
   longer or shorter, warm-up and alpha's lr milestones at the same fractions);
3. the benchmarked genotypes are N random CDNet genotypes (explicit ``torch.Generator``), the four CDNet presets
   and the searched ones; the weight-0 supernet scores each with its path fixed, and each is timed end to end in
   the table's setting (table sum vs measured median); both are cached, and run before the trainings;
4. each genotype is trained stand-alone with one short recipe (``hwnas.training.Trainer``) and scored (rank-1,
   mAP) on a Market-1501-sized test split of the same generator (``--test-set market``, the default: the proxy's
   own 64-identity split saturates; :mod:`benchmarks._quality.testset`); three of them are trained again with
   another seed (the seed-to-seed spread);
5. Kendall's tau of the supernet's scores against stand-alone mAP;
6. ``search_quality.{json,md,png}`` in ``--output`` (and ``--results-dir``): figures, targets met or not.

Every stage keeps its result in ``--output``; running the same command again continues where it stopped
(finished trainings and searches are reused, an interrupted one continues from its last checkpoint; a cached
result that cannot be read is logged and computed again). One run at a time holds an output folder.
``--latency-table`` (a file or a table name) must be timed in the proxy's setting (batch, input size, width,
neck), and finished searches are reused only with the table and weight they ran with; both are refused with
exit 2 before any work. ``--results-dir`` is checked and created before the run and filled atomically at its end.
A run longer than one machine's life: ``--output RUN --export KEEP`` copies its results without checkpoints or
datasets (a few MB; ``benchmarks/_quality/export.py``) to KEEP, and the same command with ``--output KEEP`` (or a
copy of it) continues there, on this or another machine (each training records the CPU it finished on).
``--workers N`` runs the searches and the trainings N at a time in N processes (one per core, with the default
``--threads 1``): the recorded run's 40 trainings (160 epochs each, ``--channels-last``) took 20.6 h of loaded
wall time summed over 2 workers on a 2-core AMD EPYC (535-4845 s each; about 2.5x as long per step as on the
Xeon of the 80-epoch run), and scoring them on the market test split 24-50 s each.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks._quality.export import export_results, kept_files, missing_scores
from benchmarks._quality.latency import build_command, cached_check, check_table, ensure_table
from benchmarks._quality.parallel import run_jobs, search_job, train_job
from benchmarks._quality.plan import (
    SEARCH_REPORT_KEYS,
    Entry,
    Plan,
    benchmark_entries,
    check_search_reuse,
    plan_from_args,
    proxy_setting,
    search_root,
    spread_entries,
)
from benchmarks._quality.ranking import kendall_tau, load_supernet, score_path
from benchmarks._quality.report import evaluate_targets, plot_quality, render_markdown
from benchmarks._quality.status import result_row, status_report, training_jobs
from benchmarks._quality.testset import MARKET_DATA_FOLDER, TEST_SETS, reid_data, train_and_score
from benchmarks._results_dir import copy_results, results_dir_for
from hwnas import _cli
from hwnas._io import read_json_cache, write_json_atomic
from hwnas._lock import run_lock
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import HwnasError, UsageError
from hwnas.latency import load_table
from hwnas.latency.io import resolve_table_path
from hwnas.search.config import DERIVE_MODES, SHARE_MODES
from hwnas.search.report import table_summary
from hwnas.search.runner import prepare_data, synthetic_dataset
from hwnas.space.genotype import Genotype, load_genotype

logger = logging.getLogger("benchmarks.search_quality")

RESULT_NAME = "search_quality"


def searched_genotypes(plan: Plan, root: Path, out: Path, table: Any, table_path: Path, progress: bool,
                       workers: int = 1, threads: int = 1) -> list[tuple[float, Genotype, dict]]:
    """Run (or reuse) one search per search seed and latency weight on the proxy (``workers`` at a time);
    returns (weight, genotype, summary) in seed-major order."""
    runs = [(seed, pressure, table.weight_for_pressure(plan.search.space, pressure),
             search_root(plan, out, seed) / f"p{pressure:g}")
            for seed in plan.search_seeds for pressure in plan.latency_pressures]
    expected_table = json.loads(json.dumps(table_summary(table)))  # as a finished search's report holds it
    todo = []
    for seed, _, w, sub in runs:
        report = read_json_cache(sub / "search_report.json", SEARCH_REPORT_KEYS)
        if report is not None:
            check_search_reuse(report, sub, w, expected_table)
        else:
            resume = (sub / "checkpoints" / "last.pt").is_file()
            logger.info("search at latency weight %g -> %s%s", w, sub, " (resuming)" if resume else "")
            todo.append((plan.search.replace(seed=seed, latency_weight=w), str(root), str(sub), str(table_path),
                         progress and workers <= 1))
    run_jobs(search_job, todo, workers, threads, lambda job, _: f"search done: {job[2]}")
    found = []
    for seed, pressure, w, sub in runs:
        report = read_json_cache(sub / "search_report.json", SEARCH_REPORT_KEYS)
        if report is None:
            raise HwnasError(f"the search left no readable report, {sub / 'search_report.json'}, expected the "
                             "report of a finished search (see the log above)")
        final = report["final"]
        summary = {"search_seed": seed, "latency_pressure": pressure, "latency_weight": w, "folder": str(sub),
                   "wall_s": report.get("wall_s"),
                   "step_time_s": report.get("step_time_s"),
                   "mean_entropy_fraction": (final.get("decisiveness") or {}).get("mean_entropy_fraction"),
                   "genotype": final["genotype"]}
        found.append((w, load_genotype(sub / "genotype.json", space=plan.search.space), summary))
    return found


def train_all(plan: Plan, entries: Sequence[Entry], spread: Sequence[Entry], train_root: Path, out: Path,
              progress: bool, workers: int = 1, threads: int = 1, test_root: Path | None = None
              ) -> dict[tuple[str, int], dict]:
    """Stand-alone results keyed by (genotype string, seed); each distinct genotype is trained once per seed,
    ``workers`` at a time (the deepest first, so the longest trainings do not start last), and scored on the
    market test set in ``test_root`` when given (:mod:`benchmarks._quality.testset`)."""
    jobs = {key: e.genotype for key, e in training_jobs(entries, spread, plan.seeds).items()}
    keys = sorted(jobs, key=lambda k: -jobs[k].depth) if workers > 1 else list(jobs)
    if workers <= 1:
        data = reid_data(train_root)
        test_data = None if test_root is None else reid_data(test_root)
        found = []
        for key, seed in keys:
            found.append(train_and_score(jobs[(key, seed)], data, plan.recipe, seed, out / "train", test_data,
                                         progress=progress, channels_last=plan.channels_last))
            logger.info("[%d/%d] %s", len(found), len(keys), _describe_training(found[-1]))
    else:
        todo = [(key, seed, plan.recipe, str(train_root), str(out / "train"), plan.channels_last,
                 None if test_root is None else str(test_root)) for key, seed in keys]
        found = run_jobs(train_job, todo, workers, threads, lambda job, r: _describe_training(r))
    return {(key, seed): r for (key, seed), r in zip(keys, found)}


def _describe_training(r: dict) -> str:
    on = " on the market test set" if r.get("test_set") == "market" else ""
    return (f"{r['genotype']} seed {r['seed']}: rank-1 {r['rank1']:.3f} mAP {r['mAP']:.3f}{on} "
            f"({r['train_s']:.0f} s of training)")


def supernet_scores(plan: Plan, root: Path, out: Path, entries: Sequence[Entry], seed: int | None = None
                    ) -> dict[str, dict]:
    """The weight-0 supernet's (search seed ``seed``, default the first) validation score of each distinct
    genotype's path, cached in ``supernet_scores.json`` beside the searches; the supernet and its data are loaded
    only when a genotype is missing there (a folder kept without the checkpoints still reports)."""
    seed = plan.search_seeds[0] if seed is None else seed
    cache = search_root(plan, out, seed) / "supernet_scores.json"
    scores = {k: v for k, v in (read_json_cache(cache) or {}).items() if _valid_score(v)}
    missing = list({e.genotype.tostr(): e.genotype for e in entries if e.genotype.tostr() not in scores}.values())
    if missing:
        config = plan.search.replace(seed=seed, latency_weight=0.0)
        search_dir = search_root(plan, out, seed) / f"p{plan.latency_pressures[0]:g}"
        checkpoint = search_dir / "checkpoints" / "last.pt"
        if not checkpoint.is_file():
            raise UsageError(f"no supernet to score {len(missing)} genotype(s) with (e.g. {missing[0].tostr()}), "
                             f"{checkpoint}, expected the weight-0 search's checkpoint: a folder made by --export "
                             "keeps the scores it had, not the checkpoints; continue in the run's own folder, or "
                             f"delete {search_dir} to search again")
        data = prepare_data(config, root, threads=1)
        net = load_supernet(search_dir, config, data.num_classes)
        for g in missing:
            scores[g.tostr()] = dataclasses.asdict(score_path(net, g, data, plan.bn_batches))
            write_json_atomic(cache, scores)
    return scores


def _valid_score(v: Any) -> bool:
    """A cached path score: validation accuracy in [0, 1], cross-entropy >= 0 (others are computed again)."""
    if not isinstance(v, dict) or any(isinstance(v.get(f), bool) or not isinstance(v.get(f), (int, float))
                                      for f in ("val_acc", "val_ce")):
        return False
    return 0.0 <= v["val_acc"] <= 1.0 and v["val_ce"] >= 0.0


def run(plan: Plan, out: Path, table_path: Path | None, progress: bool, command: str, workers: int = 1
        ) -> dict[str, Any]:
    """All stages into ``out``; returns the report payload (also written as JSON/Markdown/PNG). ``workers``: the
    searches and the trainings run in that many processes (each with this process's torch thread count)."""
    threads = torch.get_num_threads()
    started = time.perf_counter()
    env = {"command": command, "device": device_name("cpu"), "torch_threads": threads, "workers": workers,
           "software": software_versions(("numpy", "scipy", "matplotlib")), "load_at_start": machine_load(),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.mkdir(parents=True, exist_ok=True)
    root = synthetic_dataset(out / "data-search", plan.data)
    train_root = synthetic_dataset(out / "data-standalone", plan.train_data)
    test_root = (None if plan.test_set == "proxy" else
                 synthetic_dataset(out / MARKET_DATA_FOLDER, plan.train_data, market_test_sizes=True))
    table_path = table_path or out / "latency_cpu_proxy.json"
    setting = proxy_setting(plan)
    table = ensure_table(table_path, setting, plan.table_repeats, progress)
    searched = searched_genotypes(plan, root, out, table, table_path, progress, workers, threads)
    entries = benchmark_entries(plan, searched)
    spread = spread_entries(entries)
    # the cheap stages before the trainings (hours): a broken checkpoint shows at once, and once they are cached
    # the folder needs no supernet checkpoint to resume
    scores_by_seed = {seed: supernet_scores(plan, root, out, entries, seed) for seed in plan.search_seeds}
    scores = scores_by_seed[plan.search_seeds[0]]
    distinct = list({e.genotype.tostr(): e.genotype for e in entries}.values())
    checked = cached_check(out, table_path, table, distinct, plan.latency_check_repeats, progress)
    results = train_all(plan, entries, spread, train_root, out, progress, workers, threads, test_root)
    rows = []
    for e in entries:
        key = e.genotype.tostr()
        row = result_row(e, results[(key, plan.seeds[0])], results.get((key, plan.seeds[1])), plan.seeds[1],
                         table.genotype_latency_ms(e.genotype))
        rows.append({**row, "supernet_val_acc": scores[key]["val_acc"], "supernet_val_ce": scores[key]["val_ce"]})
    distinct_rows = list({r["genotype"]: r for r in rows}.values())
    tau_acc = kendall_tau([r["supernet_val_acc"] for r in distinct_rows], [r["mAP"] for r in distinct_rows])
    tau_ce = kendall_tau([-r["supernet_val_ce"] for r in distinct_rows], [r["mAP"] for r in distinct_rows])
    tau_by_seed = {str(seed): supernet_tau(scores_by_seed[seed], distinct_rows) for seed in plan.search_seeds}
    tau_depth = kendall_tau([r["depth"] for r in distinct_rows], [r["mAP"] for r in distinct_rows])
    fitted = [r for r in distinct_rows if r["train_acc"] is not None]  # runs written before it was recorded lack it
    tau_fit = kendall_tau([r["train_acc"] for r in fitted], [r["mAP"] for r in fitted])
    payload = {"environment": env, "plan": plan.to_dict(),
               "latency_table": {"path": str(table_path), "command": build_command(table_path, setting,
                                                                                     plan.table_repeats),
                                 "setting": dataclasses.asdict(table.data.setting), "fixed_ms": table.fixed_ms,
                                 "device": table.data.device.name},
               "latency_check": {k: v for k, v in checked.items() if k != "archs"},
               "searches": [summary for _, _, summary in searched], "rows": rows,
               "kendall_tau": {"supernet_val_acc_vs_mAP": {"tau": tau_acc[0], "p_value": tau_acc[1]},
                               "supernet_neg_val_ce_vs_mAP": {"tau": tau_ce[0], "p_value": tau_ce[1]},
                               "depth_vs_mAP": {"tau": tau_depth[0], "p_value": tau_depth[1]},
                               "train_acc_vs_mAP": {"tau": tau_fit[0], "p_value": tau_fit[1]},
                               "genotypes": len(distinct_rows), "supernet_by_search_seed": tau_by_seed}}
    payload["targets"] = evaluate_targets(rows)
    env["load_at_end"] = machine_load()
    env["wall_s_this_session"] = round(time.perf_counter() - started, 1)
    write_report(payload, out)
    return payload


def supernet_tau(scores: dict[str, dict], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Kendall's tau of one supernet's scores (validation accuracy, minus cross-entropy) against stand-alone mAP."""
    maps = [r["mAP"] for r in rows]
    acc = kendall_tau([scores[r["genotype"]]["val_acc"] for r in rows], maps)
    ce = kendall_tau([-scores[r["genotype"]]["val_ce"] for r in rows], maps)
    return {"val_acc_tau": acc[0], "val_acc_p_value": acc[1], "neg_val_ce_tau": ce[0], "neg_val_ce_p_value": ce[1]}


def write_report(payload: dict[str, Any], out: Path) -> dict[str, Path]:
    from benchmarks._device import write_text_atomic

    paths = {"json": write_json_atomic(out / f"{RESULT_NAME}.json", payload)}
    paths["md"] = out / f"{RESULT_NAME}.md"
    write_text_atomic(str(paths["md"]), render_markdown(payload))
    paths["png"] = plot_quality(payload, out / f"{RESULT_NAME}.png")
    return paths


PROG = "python -m benchmarks.search_quality"
MAX_SEARCH_SEEDS = 10


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_output(p, "work and result folder; the same command again continues there", "runs/search-quality")
    p.add_argument("--results-dir", type=_cli.path, metavar="DIR",
                   help="also copy search_quality.{json,md,png} here (e.g. benchmarks/results)")
    p.add_argument("--quick", action="store_true", help="every stage at toy sizes (minutes; figures mean nothing)")
    p.add_argument("--random", type=_cli.int_at_least(3, 10000), metavar="N",
                   help="number of random genotypes (default 24; 4 with --quick)")
    p.add_argument("--search-epochs", type=_cli.int_at_least(2), metavar="N",
                   help="epochs of every search (default: the main job's 32; 2 with --quick); the weight warm-up and "
                        "alpha's lr milestones keep their fractions, as with python -m hwnas.search --epochs N")
    p.add_argument("--share-weights", choices=SHARE_MODES,
                   help="every search's supernet: none (the paper's; default) or io (the candidates of a layer share "
                        "their 1x1 convolutions), as python -m hwnas.search --share-weights")
    p.add_argument("--derive", choices=DERIVE_MODES,
                   help="how every search chooses its genotype: alpha (argmax alpha, the paper's; default) or score "
                        "(the best by the supernet's score), as python -m hwnas.search --derive")
    p.add_argument("--derive-samples", type=_cli.int_at_least(1, 100_000), metavar="N",
                   help="with --derive score: random genotypes each search scores beside the argmax-alpha one "
                        "(default 200), as python -m hwnas.search --derive-samples")
    p.add_argument("--search-seeds", type=_cli.seed_list(MAX_SEARCH_SEEDS), metavar="N[,N...]",
                   help="run every search once per seed (default 0; at most 10): target 1 is then judged per seed, "
                        "the stand-alone trainings keep their seeds, so results of earlier runs are reused")
    p.add_argument("--recipe-epochs", type=_cli.positive_int, metavar="N",
                   help="epochs of every stand-alone training (default 160; 1 with --quick); the lr decay stays at 70%%")
    p.add_argument("--latency-table", type=_cli.table_ref, metavar="NAME|PATH",
                   help="a CPU table of the proxy setting built with python -m hwnas.latency build (default: measure "
                        "one into --output)")
    _cli.add_threads(p, 1, "torch intra-op CPU threads (per worker)")
    p.add_argument("--test-set", choices=TEST_SETS,
                   help="what the trainings are scored on: market (a Market-1501-sized test split of the same "
                        "generator: 750 identities, 3,368 queries, 15,913 gallery images; default) or proxy (the "
                        "stand-alone data's own 64-identity test split, which saturates; default with --quick); the "
                        "same trainings either way: each finished checkpoint is scored again, not trained again")
    p.add_argument("--channels-last", action="store_true",
                   help="train in NHWC memory layout (steps x1.3 faster on a CPU; the same recipe, other rounding: "
                        "finished trainings are reused, interrupted ones continue)")
    p.add_argument("--workers", type=_cli.positive_int, default=1, metavar="N",
                   help="run the searches and the stand-alone trainings N at a time, in N processes (default 1; "
                        "each result is the same as in one process)")
    p.add_argument("--export", type=_cli.path, metavar="DIR",
                   help="copy the results of the run in --output (searches, scores, latency table and check, finished "
                        "trainings; no checkpoints or datasets: a few MB) to DIR and stop; --output DIR continues from "
                        "there on any machine")
    p.add_argument("--status", action="store_true",
                   help="print what the run in --output has finished (each training's mAP, those in flight, the "
                        "targets on what finished so far) and stop; give the run's options, they name its trainings")
    _cli.add_progress(p)
    return p


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(args.threads)
    if args.export is not None and args.status:
        return _cli.fail("--status with --export, --status, expected one of them (each only reads --output)")
    if args.export is not None:  # read-only on --output: no lock, every file there is written atomically
        return _export(args, prog)
    plan = plan_from_args(args)
    cores = os.cpu_count() or 1
    if args.workers > cores:  # also with --status, which takes the run's options (and ignores this one)
        return _cli.fail(f"bad value {args.workers}, --workers, expected 1..{cores} (this machine's CPU cores; each "
                         "worker is one process)")
    if args.status:  # read-only on --output, like --export
        return _status(args, plan, prog)
    if args.latency_table is not None:  # a missing, malformed or mismatched table is refused before hours of work
        args.latency_table = resolve_table_path(args.latency_table)  # a table name -> its file
        check_table(load_table(args.latency_table, space=plan.search.space), proxy_setting(plan), plan.table_repeats,
                    f"--latency-table {args.latency_table}")
    names = [f"{RESULT_NAME}.{suffix}" for suffix in ("json", "md", "png")]
    _cli.check_output_dir(args.output)
    command = f"{prog} " + " ".join(argv)
    # folders made here are removed again if the run fails before writing into them
    with results_dir_for(args.results_dir, args.output, names) as results_dir, _cli.output_dir_for(args.output) as out:
        with run_lock(out):  # one benchmark per output folder; temp files of a killed run are removed
            payload = run(plan, out, args.latency_table, not args.no_progress, command, args.workers)
        copy_results(out, results_dir, names)
    for line in payload["targets"]["summary"]:
        print(line)
    print(f"wrote {args.output / RESULT_NAME}.{{json,md,png}}")
    return 0


def _status(args: argparse.Namespace, plan: Plan, prog: str) -> int:
    """``--status``: :func:`status_report` of the run in ``--output``, given with the run's options (they name its
    searches and trainings); runs and writes nothing."""
    if args.results_dir is not None:
        return _cli.fail(f"--results-dir with --status, --results-dir {args.results_dir}, expected it only with a run "
                         "(--status writes nothing)")
    if not args.output.is_dir():
        what = "not a folder" if args.output.exists() else "no such folder"
        return _cli.fail(f"{what}, --output {_cli.printable(str(args.output))}, expected the folder of a benchmark "
                         "run")
    if not any(kept_files(args.output)):
        return _cli.fail(f"no benchmark run, --output {_cli.printable(str(args.output))}, expected the folder of a "
                         "run (its latency table, searches or trainings)")
    if args.latency_table is not None:
        args.latency_table = resolve_table_path(args.latency_table)
    lines = status_report(plan, args.output, args.latency_table)
    print(f"{prog} --status --output {_cli.printable(str(args.output))}:")
    for line in lines:
        print(line)
    return 0


RUN_OPTIONS = ("results_dir", "quick", "random", "search_epochs", "share_weights", "derive", "derive_samples",
               "search_seeds", "recipe_epochs", "latency_table", "channels_last", "test_set")


def _export(args: argparse.Namespace, prog: str) -> int:
    defaults = build_parser(prog).parse_args([])
    given = [f"--{k.replace('_', '-')}" for k in (*RUN_OPTIONS, "workers") if getattr(args, k) != getattr(defaults, k)]
    if given:
        return _cli.fail(f"{given[0]} with --export, {given[0]}, expected only --output RUN (the run to copy) with "
                         "--export DIR: the export runs nothing")
    if not args.output.is_dir():
        what = "not a folder" if args.output.exists() else "no such folder"
        return _cli.fail(f"{what}, --output {args.output}, expected the folder of a benchmark run to export")
    with _cli.output_dir_for(args.export, "--export") as dest, run_lock(dest, clean_temps=False):
        files = export_results(args.output, dest)
    for root in missing_scores(args.output):
        logger.warning("%s has finished searches but no supernet scores yet: a run continued from this export "
                       "cannot score genotypes (export again once they are written, right after the searches)", root)
    size_kb = sum((dest / f).stat().st_size for f in files) / 1024
    trained = sum(1 for f in files if f.name == "standalone.json")
    searched = sum(1 for f in files if f.name == "search_report.json")
    print(f"exported {len(files)} files ({size_kb:.0f} KB: {searched} finished searches, {trained} finished trainings) "
          f"to {dest}; the same command as the run with --output {dest} continues from there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
