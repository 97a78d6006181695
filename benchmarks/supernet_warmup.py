"""Does the weight warm-up train the supernet? Training accuracy of the search supernet under path-sampling schemes.

    python -m benchmarks.supernet_warmup --output runs/supernet-warmup --results-dir benchmarks/results
    python -m benchmarks.supernet_warmup --epochs 2 --schemes fixed,random-k --output /tmp/w   # a quick look

The search's weight warm-up (``search.warmup_epochs``, hwnas.search.loop) trains k random candidates per layer
at each step, so that every candidate is trained before alpha judges it. Whether that trains the supernet at
all in the main job's budget is measured here: on the main job's proxy (hwnas.search.config.short_config and
SyntheticData: 32 identities, 64x32, width 0.5, batch 8 x 4, the search's SGD, loss and cosine lr over
4 x ``--epochs``, so the measured epochs run at nearly the full lr as the warm-up does) the supernet is trained
weight-only for ``--epochs`` epochs with each scheme, from the same initialisation and batches:

- ``fixed``: one genotype's path (all ``3-5-1``) every step: a stand-alone network inside the supernet;
- ``switch-2``: the whole path switches at random between two genotypes (all ``3-5-1`` / all ``3-7-1``);
- ``layer-2``: each layer draws one of those two candidates independently (2^6 networks share the weights);
- ``random-k``: k = 2 of the 12 candidates per layer, uniformly (the search's warm-up);
- ``random-1``: one candidate per layer, uniformly (single-path uniform sampling, SPOS: Guo et al., 2020,
  https://arxiv.org/abs/1904.00420).

The report gives the training identity accuracy (train mode, the search's augmentation; chance = 1 / identities)
of each epoch, and the steps each candidate was trained (the mean over the candidates the scheme uses).
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from benchmarks._device import write_text_atomic
from benchmarks._results_dir import copy_results, results_dir_for
from hwnas import _cli
from hwnas._io import write_json_atomic
from hwnas._lock import is_lock_file, run_lock
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import OutputError, UsageError

logger = logging.getLogger(__name__)

PROG = "python -m benchmarks.supernet_warmup"
RESULT_NAME = "supernet_warmup"
SCHEMES = ("fixed", "switch-2", "layer-2", "random-k", "random-1")
PAIR = (0, 1)  # candidate indices of 3-5-1 and 3-7-1 in the CDNet space


def path_sampler(scheme: str, layers: int, n: int, k: int, seed: int) -> Callable[[], list[list[int]]]:
    """A function returning the next step's path (candidate indices per layer) under ``scheme``."""
    from hwnas.search.topk import sample_paths

    g = torch.Generator().manual_seed(seed)
    if scheme == "fixed":
        return lambda: [[PAIR[0]] for _ in range(layers)]
    if scheme == "switch-2":
        return lambda: [[PAIR[int(torch.randint(2, (1,), generator=g))]]] * layers
    if scheme == "layer-2":
        return lambda: [[PAIR[int(i)]] for i in torch.randint(2, (layers,), generator=g)]
    if scheme == "random-k":
        return lambda: sample_paths(layers, n, k, g)
    if scheme == "random-1":
        return lambda: sample_paths(layers, n, 1, g)
    raise UsageError(f"unknown scheme {scheme!r}, --schemes, expected some of {', '.join(SCHEMES)}")


def train_scheme(scheme: str, data: Any, config: Any, epochs: int, progress: bool) -> dict[str, Any]:
    """Weight-only training of a fresh supernet (seeded like the search) on ``scheme``'s paths; the per-epoch
    mean training accuracy, the steps per used candidate, and the wall time."""
    from tqdm import tqdm

    from hwnas.losses import ReIDLoss
    from hwnas.search.loop import weight_lr
    from hwnas.search.supernet import SuperNet

    torch.manual_seed(config.seed)
    net = SuperNet(config.space, data.num_classes, config.width_mult, config.topk, config.alpha_init).train()
    criterion = ReIDLoss(margin=config.triplet_margin)
    opt = torch.optim.SGD(net.weight_parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    layers, n = net.alphas.shape
    next_path = path_sampler(scheme, layers, n, config.topk, config.seed)
    counts = torch.zeros(layers, n)
    accs: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = weight_lr(config, epoch)
        steps = data.train.num_batches(epoch)
        correct = 0.0
        for i in tqdm(range(steps), desc=f"{scheme} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            x, y = data.train.batch(epoch, i)
            path = next_path()
            for layer, idx in enumerate(path):
                counts[layer, idx] += 1
            opt.zero_grad(set_to_none=False)  # as the search's weight step (DESIGN 2b.2)
            loss, parts = criterion(net(x, arch_grad=False, path=path), y)
            if not torch.isfinite(loss):
                raise UsageError(f"the loss became {float(loss)} in epoch {epoch + 1} of scheme {scheme}, "
                                      "supernet warm-up, expected a finite loss")
            loss.backward()
            opt.step()
            correct += float(parts["acc"])
        accs.append(correct / steps)
        logger.info("%s: epoch %d/%d, training accuracy %.3f", scheme, epoch + 1, epochs, accs[-1])
    used = counts[counts > 0]
    return {"scheme": scheme, "train_acc": accs, "steps": sum(data.train.num_batches(e) for e in range(epochs)),
            "steps_per_candidate": float(used.mean()), "wall_s": round(time.perf_counter() - start, 1)}


def render_markdown(payload: dict[str, Any]) -> str:
    env, rows = payload["environment"], payload["results"]
    epochs = len(rows[0]["train_acc"])
    marks = sorted({max(1, epochs // 4), max(1, epochs // 2), epochs})
    lines = ["# Does the weight warm-up train the supernet?", "",
             f"Command: `{env['command']}`  ", f"Machine: {env['device']}, {env['cpu_count']} CPUs, "
             f"{env['threads']} torch thread(s), load average before the run {env['load_before']}  ",
             f"Software: {', '.join(f'{k} {v}' for k, v in env['software'].items())}  ", f"Date (UTC): {env['date_utc']}  ",
             f"Proxy: {payload['proxy']}; chance = {payload['chance']:.3f}", "",
             "Training identity accuracy (train mode, mean over the epoch's steps) after the given epochs:", "",
             "| scheme | " + " | ".join(f"epoch {m}" for m in marks) + " | steps per used candidate | wall (s) |",
             "|---|" + "---|" * len(marks) + "---|---|"]
    for r in rows:
        cells = " | ".join(f"{r['train_acc'][m - 1]:.3f}" for m in marks)
        lines.append(f"| {r['scheme']} | {cells} | {r['steps_per_candidate']:.0f} of {r['steps']} | {r['wall_s']:.0f} |")
    lines += ["", "Schemes: see the module docstring (`python -m benchmarks.supernet_warmup --help`)."]
    return "\n".join(lines) + "\n"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_output(p, "folder for the proxy data and supernet_warmup.{json,md}", "runs/supernet-warmup")
    p.add_argument("--results-dir", type=_cli.path, metavar="DIR", help="also copy supernet_warmup.{json,md} here")
    p.add_argument("--epochs", type=_cli.int_at_least(1, 1000), default=24,
                   help="weight-only epochs per scheme (8 steps each; the main job's warm-up is 8)")
    p.add_argument("--schemes", type=_schemes, default=",".join(SCHEMES), metavar="S1,S2,...",
                   help=f"path-sampling schemes, some of {','.join(SCHEMES)}")
    _cli.add_seed(p)
    _cli.add_threads(p, 1, "torch threads (1: the tiny proxy runs fastest single-threaded)")
    _cli.add_progress(p)
    return p


def _schemes(text: str) -> list[str]:
    names = text.split(",")
    if any(n not in SCHEMES for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"bad value {text[:60]!r}, expected distinct comma-separated schemes from "
                                         f"{','.join(SCHEMES)}")
    return names


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    names = [f"{RESULT_NAME}.{suffix}" for suffix in ("json", "md")]
    _cli.check_output_dir(args.output)
    # folders made here are removed again if the run fails before writing into them
    with results_dir_for(args.results_dir, args.output, names) as results_dir, _cli.output_dir_for(args.output) as out:
        with run_lock(out):
            return _run(args, argv, prog, out, results_dir, names)


def _run(args: argparse.Namespace, argv: list[str], prog: str, out: Path, results_dir: Path | None,
         names: list[str]) -> int:
    from hwnas.search.config import SyntheticData, short_config
    from hwnas.search.runner import SYNTHETIC_DIRNAME, prepare_data, synthetic_dataset

    foreign = sorted(p.name for p in out.iterdir() if p.name not in {*names, SYNTHETIC_DIRNAME} and not is_lock_file(p))
    if foreign:
        raise OutputError(f"output folder holds other files ({', '.join(foreign[:3])}), --output {out}, expected a new "
                          "or empty folder, or one this benchmark wrote")
    _cli.apply_threads(args.threads)
    load_before = machine_load()
    # the measured epochs are the first quarter of a cosine schedule, as the main job's warm-up (8 of 32)
    config = short_config(seed=args.seed, epochs=4 * args.epochs, warmup_epochs=args.epochs)
    spec = SyntheticData()
    data = prepare_data(config, synthetic_dataset(out / SYNTHETIC_DIRNAME, spec), threads=args.threads)
    results = [train_scheme(s, data, config, args.epochs, not args.no_progress) for s in args.schemes]
    env = {"command": f"{prog} " + shlex.join(argv), "device": device_name("cpu"), "cpu_count": os.cpu_count(),
           "threads": torch.get_num_threads(), "load_before": load_before, "software": software_versions(),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    proxy = (f"{spec.num_ids} identities, {config.image_size[0]}x{config.image_size[1]}, width {config.width_mult}, "
             f"batch {config.ids_per_batch} x {config.images_per_id}, lr {config.lr} cosine over {config.epochs} "
             f"epochs, seed {args.seed}")
    payload = {"environment": env, "proxy": proxy, "chance": 1 / data.num_classes, "results": results}
    write_json_atomic(out / f"{RESULT_NAME}.json", payload)
    write_text_atomic(str(out / f"{RESULT_NAME}.md"), render_markdown(payload))
    copy_results(out, results_dir, names)
    for r in results:
        print(f"{r['scheme']:>9}: training accuracy {r['train_acc'][-1]:.3f} after {args.epochs} epochs "
              f"({r['steps_per_candidate']:.0f} steps per used candidate, {r['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
