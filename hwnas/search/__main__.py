"""``python -m hwnas.search``: Top-k Sample Search over CNet/CDNet, optionally hardware-aware.

With ``--data-root`` it runs the seed's schedule on a Market-1501 folder; without, it generates a small
synthetic Market-1501-format dataset and runs a short schedule that ends in minutes on a CPU.
Under ``torchrun`` it runs data-parallel (DDP; gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import sys
import time
from pathlib import Path

import torch

from hwnas import _cli, ops
from hwnas.errors import UsageError
from hwnas.models import check_input_size
from hwnas.search import _dist
from hwnas.search._checkpoint import CHECKPOINT_NAME
from hwnas.search.config import SearchConfig, SyntheticData, paper_config, short_config, with_epochs
from hwnas.search.report import summary_lines
from hwnas.search.runner import SYNTHETIC_DIRNAME, default_threads, prepare_data, run_search, synthetic_dataset
from hwnas.search.sweep import parse_weights, run_sweep, write_sweep


def build_parser(prog: str = "python -m hwnas.search") -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--space", choices=("cnet", "cdnet"), default="cdnet", help="search space")
    p.add_argument("--topk", type=int, choices=(1, 2, 3, 4), default=2, help="candidates run per layer")
    p.add_argument("--data-root", type=Path, help="Market-1501 folder (paper schedule); default: synthetic data")
    p.add_argument("--latency-table", metavar="NAME|PATH",
                   help="latency table: a table name (e.g. rtx2080; see 'hwnas latency show') or a JSON path")
    p.add_argument("--latency-weight", type=_cli.nonnegative_float, default=0.0,
                   help="weight of the expected-latency term in alpha's loss (0 = the paper's search)")
    p.add_argument("--latency-target-ms", type=_cli.positive_float,
                   help="penalise only latency above this target: weight * max(E[lat]/target - 1, 0)")
    p.add_argument("--sweep-latency-weight", metavar="W1,W2,...",
                   help="run one search per weight and write a Pareto table/plot (needs --latency-table)")
    p.add_argument("--epochs", type=_cli.positive_int, help="epochs (default: the schedule's; alpha's lr milestones "
                   "keep their fractions)")
    p.add_argument("--batch-size", type=_cli.positive_int,
                   help="P x K batch size, a multiple of 4 images per identity (default: the schedule's)")
    p.add_argument("--width-mult", type=_cli.positive_float,
                   help="supernet width multiplier (default 1.0; 0.5 on synthetic data)")
    _cli.add_input_size(p, None, "input size HxW in pixels (default 256x128; 64x32 on synthetic data)")
    _cli.add_output(p, "output folder (default runs/search-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the search in --output from its checkpoint")
    _cli.add_seed(p)
    _cli.add_device(p)
    _cli.add_threads(p, help="torch intra-op threads (default 1 on synthetic data, else torch's choice)")
    p.add_argument("--data-threads", type=_cli.positive_int, default=2, help="threads decoding images")
    p.add_argument("--ops-backend", default="eager",
                   help="hwnas.ops backend for the mixed ops: eager (reference), auto or a fused one "
                        "('python -m hwnas.ops info' lists them)")
    p.add_argument("--checkpoint-every", type=_cli.nonnegative_int,
                   help="steps between mid-epoch checkpoints (0: only at epoch ends; default: the schedule's)")
    _cli.add_progress(p)
    return p


def build_config(args: argparse.Namespace) -> SearchConfig:
    synthetic = args.data_root is None
    config = short_config() if synthetic else paper_config()
    changes: dict[str, object] = {"space": args.space, "topk": args.topk, "seed": args.seed,
                                  "latency_weight": args.latency_weight, "latency_target_ms": args.latency_target_ms}
    if args.batch_size is not None:
        if args.batch_size % config.images_per_id or args.batch_size < 2 * config.images_per_id:
            raise UsageError(f"batch size {args.batch_size}, --batch-size, expected a multiple of "
                             f"{config.images_per_id} (images per identity) of at least {2 * config.images_per_id}")
        changes["ids_per_batch"] = args.batch_size // config.images_per_id
    if args.width_mult is not None:
        changes["width_mult"] = args.width_mult
    if args.input_size is not None:
        if min(args.input_size) < 32:
            raise UsageError(f"input size {_cli.format_size(args.input_size)}, --input-size, expected both sides "
                             ">= 32 pixels (the search's minimum)")
        changes["image_size"] = args.input_size
    if args.checkpoint_every is not None:
        changes["checkpoint_every"] = args.checkpoint_every
    config = config.replace(**changes)
    config = with_epochs(config, args.epochs) if args.epochs is not None else config
    check_input_size(config.space, config.image_size, width_mult=config.width_mult)
    return config


def check_args(args: argparse.Namespace) -> tuple[SearchConfig, list[float] | None]:
    """Every option checked before any work starts (UsageError / RuntimeUnavailableError name the option)."""
    config = build_config(args)
    weights = parse_weights(args.sweep_latency_weight) if args.sweep_latency_weight else None
    if weights is not None and not args.latency_table:
        raise UsageError("--sweep-latency-weight without a latency table, --latency-table, expected a table name "
                         "or path (the latencies to trade against)")
    if args.latency_target_ms is not None and not args.latency_table:
        raise UsageError("--latency-target-ms without a latency table, --latency-table, expected a table name or path")
    if args.resume and args.output is None:
        raise UsageError("--resume without a folder, --output, expected --output DIR (the search to continue)")
    ckpt = None if args.output is None else args.output / "checkpoints" / CHECKPOINT_NAME
    if args.resume and not weights and not ckpt.is_file():
        raise UsageError(f"nothing to resume, checkpoint {ckpt}, expected an existing search (run without --resume)")
    if args.output is not None:
        _cli.check_output_dir(args.output)
    backends = ops.available_backends()
    if args.ops_backend != "auto" and not backends.get(args.ops_backend, (False, ""))[0]:
        why = f" ({backends[args.ops_backend][1]})" if args.ops_backend in backends else ""
        usable = [name for name, (ok, _) in backends.items() if ok]
        raise UsageError(f"unknown or unavailable backend {args.ops_backend!r}{why}, --ops-backend, expected one of "
                         f"auto, {', '.join(usable)}")
    _cli.resolve_device(args.device)
    return config, weights


def _output_dir(args: argparse.Namespace, info: _dist.DistInfo) -> Path:
    if args.output is not None:
        return args.output
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(_dist.gather_objects(f"runs/search-{stamp}", info)[0])


def _setup_logging(output: Path, info: _dist.DistInfo) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(output / "search.log"))
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@_cli.command
def main(argv: list[str] | None = None, *, prog: str = "python -m hwnas.search") -> int:
    args = build_parser(prog).parse_args(argv)
    config, weights = check_args(args)
    torch.set_num_threads(args.threads or default_threads(args.data_root is None))
    requested = _cli.resolve_device(args.device)
    info = _dist.init_from_env(requested.type)
    device = f"cuda:{info.local_rank}" if requested.type == "cuda" and info.enabled else str(requested)
    output = _output_dir(args, info)
    _setup_logging(output, info)
    say = print if info.is_main else (lambda *a, **k: None)
    table = _load_table(args.latency_table, config.space)
    root = args.data_root if args.data_root is not None else _synthetic_root(args.seed, config, output, say)
    data = prepare_data(config, root, args.data_threads)
    say(f"data: {data.description}; latency table: {table if table is not None else 'none'}; "
        f"latency weight {config.latency_weight}; {info.world_size} process(es) on {device}; output {output}")
    progress = not args.no_progress
    with ops.use_backend(args.ops_backend):
        return _run(args, config, data, output, table, device, weights, progress, say, info)


def _load_table(name: str | None, space: str):
    if not name:
        return None
    from hwnas.latency import load_table

    return load_table(name, space=space)


def _synthetic_root(seed: int, config: SearchConfig, output: Path, say) -> Path:
    spec = SyntheticData(seed=seed)
    root = synthetic_dataset(output / SYNTHETIC_DIRNAME, spec)
    say(f"No --data-root given: searching on a SYNTHETIC Market-1501-format dataset ({spec.num_ids} ids x "
        f"{spec.images_per_id} images, {spec.image_size[0]}x{spec.image_size[1]}) in {root}, with a SHORT "
        f"schedule: {config.epochs} epochs, batch {config.batch_size}, input {config.image_size[0]}x"
        f"{config.image_size[1]}, width {config.width_mult}, alpha lr {config.alpha_lr}. Pass --data-root for "
        f"the paper's schedule.")
    return root


def _run(args: argparse.Namespace, config: SearchConfig, data, output: Path, table, device: str,
         weights: list[float] | None, progress: bool, say, info: _dist.DistInfo) -> int:
    if weights is not None:
        rows = run_sweep(config, data, weights, output, table, device, args.resume, progress)
        if info.is_main:
            paths = write_sweep(rows, table.name, output)
            for r in rows:
                say(f"w={r['latency_weight']:g}: {r['genotype']} predicted {r['predicted_latency_ms']:.3f} ms, "
                    f"supernet val acc (eval mode) {r['val_acc_eval_mode']:.3f}, alpha entropy "
                    f"{r['alpha_entropy_fraction']:.4f} ln n{' (UNDECIDED)' if r['undecided'] else ''}"
                    f"{' (Pareto)' if r['pareto'] else ''}")
            say("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    result, paths = run_search(config, data, output, table, device, args.resume, progress)
    for line in summary_lines(result, table):
        say(line)
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    faulthandler.enable()  # a crash in native code still prints the Python stack
    sys.exit(main())
