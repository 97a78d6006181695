"""Training-step time of stand-alone CDNet networks in NCHW (default) and NHWC (``channels_last``) memory layout.

    python -m benchmarks.train_step --output runs/train-step --results-dir benchmarks/results

One step is what :class:`hwnas.training.Trainer` runs per batch: forward, softmax + triplet loss
(:class:`hwnas.losses.ReIDLoss`), backward, SGD with momentum (``TrainConfig.channels_last`` /
``hwnas train --channels-last`` switch the layout). Both layouts start from the same weights and run the same
batch; they are timed in alternating rounds (which layout goes first alternates too), so a change of machine load
hits both. Reported: the median and IQR of the per-step time in ms and the speed-up NCHW / NHWC.

Defaults: the search-quality benchmark's stand-alone proxy (width 0.5, 64x32, batch 32 = 8 ids x 4, FBLNeck, one
CPU thread) for three genotypes: the shallowest choice of every layer (depth 6), the deepest (depth 12) and the
paper's CDNet (cdnet-top1). Writes ``channels_last.{json,md}`` into ``--output`` (and ``--results-dir``).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

import hwnas
from benchmarks._results_dir import copy_results, results_dir_for
from hwnas import _cli
from hwnas._io import write_json_atomic, write_text_atomic
from hwnas._lock import run_lock
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.losses import ReIDLoss
from hwnas.models._limits import check_input_size
from hwnas.space.presets import resolve_genotype

PROG = "python -m benchmarks.train_step"
RESULT_NAME = "channels_last"
DEFAULT_GENOTYPES = ("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1", "cdnet:7-9-2,7-9-2,7-9-2,7-9-2,7-9-2,7-9-2",
                     "cdnet-top1")
LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}

logger = logging.getLogger("benchmarks.train_step")


def _step_fn(genotype: str, layout: torch.memory_format, args: argparse.Namespace, state: dict[str, torch.Tensor],
             batch: tuple[torch.Tensor, torch.Tensor]):
    """A closure running one training step of ``genotype`` in ``layout`` from the weights ``state``."""
    ids = args.batch_size // args.num_instances
    model = hwnas.create_model("cdnet", genotype=genotype, width_mult=args.width_mult, num_classes=ids,
                               neck="fblneck")
    model.load_state_dict(state)
    model = model.to(memory_format=layout).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    criterion = ReIDLoss()
    images, pids = batch[0].contiguous(memory_format=layout), batch[1]

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        loss, _ = criterion(model(images), pids)
        loss.backward()
        opt.step()
    return step


def _quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def time_genotype(genotype: str, args: argparse.Namespace) -> dict[str, Any]:
    """Per-step times (ms) of ``genotype`` in both layouts, from the same weights and batch."""
    g = resolve_genotype(genotype, "cdnet")
    ids = args.batch_size // args.num_instances
    torch.manual_seed(0)
    state = hwnas.create_model("cdnet", genotype=g.tostr(), width_mult=args.width_mult, num_classes=ids,
                               neck="fblneck").state_dict()
    h, w = args.input_size
    batch = (torch.randn(args.batch_size, 3, h, w), torch.arange(ids).repeat_interleave(args.num_instances))
    steps = {name: _step_fn(g.tostr(), fmt, args, state, batch) for name, fmt in LAYOUTS.items()}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for r in range(args.repeats):
        for name in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            steps[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    row: dict[str, Any] = {"genotype": g.tostr(), "depth": g.depth}
    for name, xs in times.items():
        q1, med, q3 = _quartiles(xs)
        row[name] = {"median_ms": round(med, 2), "iqr_ms": round(q3 - q1, 2)}
    row["speedup"] = round(row["NCHW"]["median_ms"] / row["NHWC"]["median_ms"], 3)
    logger.info("%s (depth %d): NCHW %.1f ms, NHWC %.1f ms per step (x%.2f)", row["genotype"], g.depth,
                row["NCHW"]["median_ms"], row["NHWC"]["median_ms"], row["speedup"])
    return row


def render_markdown(p: dict[str, Any]) -> str:
    env, s = p["environment"], p["setting"]
    lines = ["# Training step: NCHW vs NHWC (channels_last) memory layout", "",
             f"Command: `{env['command']}`", "",
             f"- machine: {env['device']}, torch threads {env['torch_threads']}, software "
             + ", ".join(f"{k} {v}" for k, v in env["software"].items()),
             f"- load average (1/5/15 min) at start {env['load_at_start']}, at end {env['load_at_end']}; "
             f"{env['date_utc']}",
             f"- step: forward, softmax + triplet loss, backward, SGD momentum; CDNet width {s['width_mult']}, "
             f"FBLNeck, input {s['input_size'][0]}x{s['input_size'][1]}, batch {s['batch_size']} "
             f"({s['batch_size'] // s['num_instances']} ids x {s['num_instances']}); {s['warmup']} warm-up steps, "
             f"then {s['repeats']} alternating rounds of one step per layout",
             "", "| genotype | depth | NCHW ms/step (IQR) | NHWC ms/step (IQR) | speed-up |", "|---|---|---|---|---|"]
    for r in p["rows"]:
        lines.append(f"| `{r['genotype']}` | {r['depth']} | {r['NCHW']['median_ms']:.1f} ({r['NCHW']['iqr_ms']:.1f}) "
                     f"| {r['NHWC']['median_ms']:.1f} ({r['NHWC']['iqr_ms']:.1f}) | x{r['speedup']:.2f} |")
    return "\n".join(lines) + "\n"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _cli.add_output(p, "result folder (channels_last.{json,md})", "runs/train-step")
    p.add_argument("--results-dir", type=_cli.path, metavar="DIR",
                   help="also copy channels_last.{json,md} here (e.g. benchmarks/results)")
    p.add_argument("--genotype", action="append", metavar="G",
                   help="a CDNet genotype string, preset or JSON file (repeatable; default: depth 6, depth 12 and "
                        "cdnet-top1)")
    p.add_argument("--width-mult", type=_cli.width_mult, default=0.5, help="width multiplier (default 0.5)")
    _cli.add_input_size(p, (64, 32), "input size HxW in pixels (default 64x32)")
    p.add_argument("--batch-size", type=_cli.int_at_least(2, 4096), default=32, help="P x K batch (default 32)")
    p.add_argument("--num-instances", type=_cli.int_at_least(1, 4096), default=4, help="K (default 4)")
    p.add_argument("--warmup", type=_cli.int_at_least(1, 1000), default=3, help="warm-up steps per layout")
    p.add_argument("--repeats", type=_cli.int_at_least(4, 100_000), default=20,
                   help="timed rounds (one step per layout each; default 20)")
    _cli.add_threads(p, 1, "torch intra-op CPU threads (default 1, the search-quality benchmark's)")
    return p


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    if args.batch_size % args.num_instances or args.batch_size < 2 * args.num_instances:
        return _cli.fail(f"batch {args.batch_size} with {args.num_instances} instances, --batch-size, expected a "
                         "multiple of --num-instances covering at least 2 identities")
    genotypes = [resolve_genotype(g, "cdnet") for g in (args.genotype or DEFAULT_GENOTYPES)]  # refused before timing
    check_input_size("cdnet", args.input_size, "--input-size", width_mult=args.width_mult, neck="fblneck")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(args.threads)
    names = [f"{RESULT_NAME}.json", f"{RESULT_NAME}.md"]
    _cli.check_output_dir(args.output)
    with results_dir_for(args.results_dir, args.output, names) as results_dir:
        with run_lock(args.output):  # one run per output folder (made now; removed again if it stays empty)
            payload = _measure(args, genotypes, prog, argv)
        copy_results(args.output, results_dir, names)
    print(render_markdown(payload), end="")
    print(f"wrote {args.output / RESULT_NAME}.{{json,md}}")
    return 0


def _measure(args: argparse.Namespace, genotypes: list, prog: str, argv: list[str]) -> dict[str, Any]:
    load_start = machine_load()
    rows = [time_genotype(g.tostr(), args) for g in genotypes]
    payload = {"environment": {"command": f"{prog} " + " ".join(argv), "device": device_name("cpu"),
                               "torch_threads": torch.get_num_threads(), "software": software_versions(),
                               "load_at_start": load_start, "load_at_end": machine_load(),
                               "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
               "setting": {"width_mult": args.width_mult, "input_size": list(args.input_size),
                           "batch_size": args.batch_size, "num_instances": args.num_instances,
                           "warmup": args.warmup, "repeats": args.repeats},
               "rows": rows}
    write_json_atomic(args.output / f"{RESULT_NAME}.json", payload)
    write_text_atomic(args.output / f"{RESULT_NAME}.md", render_markdown(payload))
    return payload


if __name__ == "__main__":
    sys.exit(main())
