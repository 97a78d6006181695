"""The main job as a new user runs it, measured: time, how decided the alphas are, and seed-to-seed agreement.

    python -m benchmarks.main_job --output runs/main-job --results-dir benchmarks/results

Runs ``python -m hwnas.search --latency-table rtx2080 --seed S`` (the README's command, one process each, as a
user would) for every seed and latency weight asked for, and records per run the wall time, the CPU time of
the process, the machine load, the derived genotype and its mean alpha entropy as a fraction of ln n (from
``search_report.json``); per weight the number of layers on which all seeds chose the same candidate. Issue 11's
targets for the default command: about 5 minutes on a 2-core CPU, mean entropy <= 0.85 ln n, and seeds 0, 1, 2
agreeing on at least 4 of the 6 layers, at latency weight 0 as well. A run whose ``search_report.json``
exists is read back, not repeated.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks._device import write_text_atomic
from benchmarks._results_dir import copy_results, results_dir_for
from hwnas import _cli
from hwnas._io import is_temp_file, read_json_cache, write_json_atomic
from hwnas._limits import LATENCY_WEIGHT_MAX
from hwnas._lock import LOCK_NAME, run_lock
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import HwnasError, OutputError, UsageError
from hwnas.search.runner import SYNTHETIC_DIRNAME

PROG = "python -m benchmarks.main_job"
RESULT_NAME = "main_job"
ENTROPY_TARGET = 0.85
AGREEMENT_TARGET = 4
TIME_TARGET_S = 300.0

logger = logging.getLogger("benchmarks.main_job")


def search_command(table: str, seed: int, weight: float | None, output: Path) -> list[str]:
    cmd = [sys.executable, "-m", "hwnas.search", "--latency-table", table, "--seed", str(seed)]
    if weight is not None:
        cmd += ["--latency-weight", f"{weight:g}"]
    return cmd + ["--output", str(output), "--no-progress"]


RUN_KEYS = ("command", "seed", "latency_weight", "wall_s", "cpu_s", "genotype", "mean_entropy_fraction")


# what an interrupted ``hwnas search`` leaves in its folder (and nothing else is removed)
SEARCH_FILES = frozenset({"config.yaml", "search.log", "checkpoints", SYNTHETIC_DIRNAME, "tensorboard", "genotype.json",
                          "search_report.json", "search_report.md", "alphas.png", LOCK_NAME})


def clear_interrupted(output: Path) -> None:
    """Empty the folder of an interrupted search of this benchmark; refuse (OutputError) a folder holding anything
    hwnas search does not write, or that is not a folder, rather than delete someone's files."""
    if output.is_symlink() or not output.is_dir():
        raise OutputError(f"not a folder of this benchmark, {output}, expected the folder of an interrupted search "
                          "(move it, or use another --output)")
    entries = list(output.iterdir())
    foreign = sorted(e.name for e in entries if e.name not in SEARCH_FILES and not is_temp_file(e))
    if foreign:
        raise OutputError(f"files no search wrote ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), "
                          f"{output}, expected the folder of an interrupted search of this benchmark (move them, or "
                          "use another --output)")
    for e in entries:
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


def run_one(table: str, seed: int, weight: float | None, output: Path) -> dict[str, Any]:
    """One search in a child process (or its earlier result); wall and CPU seconds, genotype, entropy fraction."""
    done = output / "run.json"
    cmd = search_command(table, seed, weight, output)
    command = " ".join(["python"] + cmd[1:])
    cached = read_json_cache(done, RUN_KEYS)
    if cached is not None:
        if cached["command"] != command:  # e.g. another --latency-table: its result is not this run's
            raise UsageError(f"the finished run in {output} was '{cached['command']}', --output, expected this run's "
                             f"'{command}' (use a new --output, or the options of the run that made it)")
        return cached
    if output.exists():
        clear_interrupted(output)  # an interrupted run: start it again from scratch, as a user would
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = machine_load()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise HwnasError(f"the search failed with status {proc.returncode} ({proc.stderr.strip()[-500:]}), "
                         f"{' '.join(cmd)}, expected status 0")
    report = json.loads((output / "search_report.json").read_text())
    final = report["final"]
    record = {"command": command, "seed": seed, "latency_weight": report["config"]["latency_weight"],
              "wall_s": round(wall, 1), "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
              "load_before": load, "load_after": machine_load(), "genotype": final["genotype"],
              "mean_entropy_fraction": final["decisiveness"]["mean_entropy_fraction"],
              "predicted_latency_ms": final["predicted_latency_ms"], "stdout_tail": proc.stdout.strip().splitlines()[-12:]}
    write_json_atomic(done, record)
    return record


def agreement(genotypes: Sequence[str]) -> int:
    """Layers (of 6) on which every genotype has the same candidate."""
    layers = [g.split(":", 1)[1].split(",") for g in genotypes]
    return sum(len(set(col)) == 1 for col in zip(*layers))


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_weight: dict[float, list[dict[str, Any]]] = {}
    for r in runs:
        by_weight.setdefault(r["latency_weight"], []).append(r)
    rows = []
    for w, rs in by_weight.items():
        agree = agreement([r["genotype"] for r in rs])
        worst_entropy = max(r["mean_entropy_fraction"] for r in rs)
        slowest = max(r["wall_s"] for r in rs)
        rows.append({"latency_weight": w, "seeds": [r["seed"] for r in rs], "layers_all_agree": agree,
                     "max_entropy_fraction": worst_entropy, "max_wall_s": slowest,
                     "entropy_met": worst_entropy <= ENTROPY_TARGET,
                     "agreement_met": agree >= AGREEMENT_TARGET if len(rs) >= 3 else None})
    return rows


def render_markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    lines = ["# The main job, measured", "", f"Command: `{env['command']}`", "",
             f"- machine: {env['device']}; software {', '.join(f'{k} {v}' for k, v in env['software'].items())}; "
             f"{env['date_utc']}",
             "- each search ran as its own process, one after another (load average before/after in each row)",
             f"- targets (issue 11): mean alpha entropy <= {ENTROPY_TARGET} ln n, all seeds agree on >= "
             f"{AGREEMENT_TARGET} of 6 layers, about {TIME_TARGET_S / 60:.0f} minutes", "",
             "| latency weight | seed | wall (s) | CPU (s) | load before | mean entropy / ln n | genotype | predicted rtx2080 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in payload["runs"]:
        lines.append(f"| {r['latency_weight']:g} | {r['seed']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | "
                     f"{r['load_before']} | {r['mean_entropy_fraction']:.3f} | `{r['genotype']}` | "
                     f"{r['predicted_latency_ms']:.2f} |")
    lines += ["", "| latency weight | layers on which all seeds agree | worst entropy / ln n | slowest run (s) | "
              "entropy target | agreement target |", "|---|---|---|---|---|---|"]
    for s in payload["summary"]:
        met = {True: "met", False: "NOT met", None: "n/a (< 3 seeds)"}
        lines.append(f"| {s['latency_weight']:g} | {s['layers_all_agree']}/6 | {s['max_entropy_fraction']:.3f} | "
                     f"{s['max_wall_s']:.0f} | {met[s['entropy_met']]} | {met[s['agreement_met']]} |")
    lines += ["", "Per run: the command, its last lines of output (per-layer decisiveness) and the times are in "
              f"`{RESULT_NAME}.json`."]
    return "\n".join(lines) + "\n"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_output(p, "one sub-folder per run; the same command again reuses finished runs", "runs/main-job")
    p.add_argument("--results-dir", type=_cli.path, metavar="DIR", help="also copy main_job.{json,md} here")
    p.add_argument("--latency-table", default="rtx2080", metavar="NAME|PATH", help="the main job's table")
    p.add_argument("--seeds", type=_cli.seed_list(100), default="0,1,2", metavar="S1,S2,...", help="seeds to run")
    p.add_argument("--latency-weights", type=_weights, default="default,0", metavar="W1,W2,...",
                   help="'default' (the command as the README gives it, no --latency-weight) and/or numbers")
    return p


def _weights(text: str) -> list[float | None]:
    out: list[float | None] = []
    for part in text.split(","):
        w = None if part == "default" else _cli.nonnegative_float(part)
        if w is not None and w > LATENCY_WEIGHT_MAX:  # what hwnas.search accepts, refused before any run
            raise argparse.ArgumentTypeError(f"bad value {part!r}, expected latency weights between 0 and "
                                             f"{LATENCY_WEIGHT_MAX:.0f} per ms (or 'default')")
        out.append(w)
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected distinct comma-separated weights like "
                                         "default,0,0.1")
    return out


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from hwnas.latency import load_table

    load_table(args.latency_table, space="cdnet")  # a missing or malformed table is refused before any search
    names = [f"{RESULT_NAME}.{suffix}" for suffix in ("json", "md")]
    _cli.check_output_dir(args.output)
    with results_dir_for(args.results_dir, args.output, names) as results_dir, \
            run_lock(args.output):  # one run per output folder: two would clear each other's searches
        _run_all(args, argv, prog, results_dir, names)
    return 0


def _run_all(args: argparse.Namespace, argv: list[str], prog: str, results_dir: Path | None, names: list[str]) -> None:
    out = args.output
    seeds = args.seeds
    env = {"command": f"{prog} " + " ".join(argv), "device": device_name("cpu"), "cpu_count": os.cpu_count(),
           "software": software_versions(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    runs = []
    for w in args.latency_weights:
        for seed in seeds:
            sub = out / f"w{'default' if w is None else format(w, 'g')}-seed{seed}"
            logger.info("running the main job, seed %d, latency weight %s -> %s", seed, "default" if w is None else w, sub)
            r = run_one(args.latency_table, seed, w, sub)
            logger.info("  %.0f s wall, %.0f s CPU, entropy %.3f ln n, %s", r["wall_s"], r["cpu_s"],
                        r["mean_entropy_fraction"], r["genotype"])
            runs.append(r)
    payload = {"environment": env, "runs": runs, "summary": summarize(runs)}
    write_json_atomic(out / f"{RESULT_NAME}.json", payload)
    write_text_atomic(str(out / f"{RESULT_NAME}.md"), render_markdown(payload))
    copy_results(out, results_dir, names)
    for s in payload["summary"]:
        print(f"latency weight {s['latency_weight']:g}: all seeds agree on {s['layers_all_agree']}/6 layers, worst "
              f"entropy {s['max_entropy_fraction']:.3f} ln n, slowest {s['max_wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
