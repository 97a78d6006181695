"""``python -m hwnas.train``: train a registered model on a ReID dataset (or synthetic data).

The paper's schedule (DESIGN 3) is the default on a real dataset; ``--synthetic`` defaults to a short
schedule (15 epochs) so it ends in minutes on a CPU. If only ``--epochs`` is changed, the lr milestones
move to the same fractions of the run. Outputs in ``--output`` (default ``runs/train-<timestamp>``):
last.pt, metrics.jsonl, config.json, results.json, train.log.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import hwnas
from hwnas import _cli
from hwnas.data._cli import add_data_arguments, dataset_from_args
from hwnas.errors import OutputError, UsageError
from hwnas.models import check_input_size, model_options
from hwnas.training import ReIDData, TrainConfig, Trainer, scaled_milestones

SYNTHETIC_EPOCHS = 15
PROG = "python -m hwnas.train"


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when possible (numbers, booleans), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected key=value like width_mult=0.5")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--model", required=True, help=f"model to train, one of: {', '.join(hwnas.list_models())}")
    p.add_argument("--model-option", "-o", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="model option (repeatable), e.g. genotype=cdnet-top1, width_mult=0.5, neck=bnneck")
    add_data_arguments(p)
    _cli.add_output(p, "output folder (default runs/train-<timestamp>); must be new or empty unless --resume or "
                       "--overwrite")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a non-empty --output folder")
    _cli.add_threads(p)
    _cli.add_device(p)
    _cli.add_progress(p)
    t = p.add_argument_group("schedule (defaults: the paper's, DESIGN section 3)")
    t.add_argument("--epochs", type=_cli.positive_int, default=None,
                   help=f"training epochs (default {d.epochs}; {SYNTHETIC_EPOCHS} with --synthetic)")
    t.add_argument("--milestones", type=_cli.positive_int, nargs="*", default=None, metavar="EPOCH",
                   help=f"epochs where lr is multiplied by --gamma (default {list(d.milestones)}, scaled to --epochs)")
    t.add_argument("--lr", type=_cli.positive_float, default=d.lr, help="SGD learning rate")
    t.add_argument("--momentum", type=_cli.nonnegative_float, default=d.momentum, help="SGD momentum")
    t.add_argument("--weight-decay", type=_cli.nonnegative_float, default=d.weight_decay, help="SGD weight decay")
    t.add_argument("--gamma", type=_cli.nonnegative_float, default=d.gamma, help="lr factor at each milestone")
    t.add_argument("--label-smoothing", type=_cli.fraction, default=d.label_smoothing,
                   help="cross-entropy label smoothing")
    t.add_argument("--margin", type=_cli.nonnegative_float, default=d.margin, help="triplet loss margin")
    t.add_argument("--warmup-epochs", type=_cli.nonnegative_int, default=d.warmup_epochs,
                   help="epochs of linear lr warm-up from lr/10")
    t.add_argument("--batch-size", type=_cli.positive_int, default=d.batch_size,
                   help="P x K training batch (a multiple of --num-instances)")
    t.add_argument("--num-instances", type=_cli.positive_int, default=d.num_instances,
                   help="K: images per identity in a batch")
    _cli.add_input_size(t, (d.height, d.width), "training and test input size HxW in pixels")
    t.add_argument("--eval-every", type=_cli.nonnegative_int, default=d.eval_every,
                   help="evaluate every N epochs (0: only after the last)")
    t.add_argument("--test-batch-size", type=_cli.positive_int, default=d.test_batch_size, help="evaluation batch")
    t.add_argument("--num-workers", type=_cli.nonnegative_int, default=d.num_workers, help="DataLoader workers")
    _cli.add_seed(t, d.seed)
    t.add_argument("--eval-at-start", action="store_true", help="also evaluate the untrained model (epoch 0)")
    t.add_argument("--eval-flip", action="store_true", help="average features of each image and its mirror")
    t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    return p


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    epochs = a.epochs if a.epochs is not None else (SYNTHETIC_EPOCHS if a.synthetic else TrainConfig.epochs)
    milestones = tuple(a.milestones) if a.milestones is not None else scaled_milestones(epochs)
    height, width = a.input_size
    with _cli.options_named("TrainConfig", {"height": "--input-size", "width": "--input-size"}):
        return TrainConfig(epochs=epochs, milestones=milestones, lr=a.lr, momentum=a.momentum,
                           weight_decay=a.weight_decay, gamma=a.gamma, warmup_epochs=a.warmup_epochs,
                           batch_size=a.batch_size, num_instances=a.num_instances, height=height, width=width,
                           label_smoothing=a.label_smoothing, margin=a.margin, eval_every=a.eval_every,
                           eval_at_start=a.eval_at_start, eval_flip=a.eval_flip, test_batch_size=a.test_batch_size,
                           num_workers=a.num_workers, amp=not a.no_amp, seed=a.seed)


def resolve_device(name: str) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` -> device (kept for callers of the old name; see :func:`hwnas._cli.resolve_device`)."""
    return _cli.resolve_device(name)


def output_dir(a: argparse.Namespace) -> Path:
    """``--output``, or a new ``runs/train-<timestamp>``; a non-empty folder needs --resume or --overwrite."""
    if a.output is None:
        if a.resume:
            raise UsageError("--resume without a folder, --output, expected --output DIR (the run to continue)")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, n = Path("runs") / f"train-{stamp}", 1
        while out.exists():
            n += 1
            out = Path("runs") / f"train-{stamp}-{n}"
        return out
    out = _cli.check_output_dir(a.output)
    if a.resume and a.overwrite:
        raise UsageError("--resume and --overwrite together, --output, expected one of them")
    if a.resume and not (out / "last.pt").is_file():
        raise UsageError(f"nothing to resume, {out / 'last.pt'}, expected a run folder written by hwnas train")
    if not a.resume and not a.overwrite and out.is_dir() and any(out.iterdir()):
        raise OutputError(f"output folder is not empty, --output {out}, expected a new or empty folder "
                          "(or --resume to continue it, --overwrite to start afresh)")
    return out


def _model_options(a: argparse.Namespace) -> dict[str, object]:
    options = dict(a.model_option)
    if a.model not in hwnas.list_models():
        raise UsageError(f"unknown model {a.model!r}, --model, expected one of {', '.join(hwnas.list_models())}")
    allowed = model_options(a.model)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"unknown model option(s) {', '.join(unknown)}, --model-option, expected options of "
                         f"{a.model}: {', '.join(k for k in allowed if k != 'num_classes')}")
    return options


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    a = build_parser(prog).parse_args(argv)
    config = config_from_args(a)
    options = _model_options(a)
    device = _cli.resolve_device(a.device)
    check_input_size(a.model, (config.height, config.width), **{k: v for k, v in options.items() if k != "num_classes"})
    out = output_dir(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(a.threads)
    data = ReIDData.from_dataset(dataset_from_args(a))
    options["num_classes"] = data.num_classes
    torch.manual_seed(config.seed)
    model = hwnas.create_model(a.model, **options)
    trainer = Trainer(model, data, config, out, model_name=a.model, model_options=options,
                      device=device, progress=not a.no_progress)
    if a.resume:
        trainer.resume()
    print(f"training {a.model} on {data.num_classes} identities, {config.epochs} epochs, output {out}")
    result = trainer.fit()
    if result:
        print(f"epoch {trainer.epoch}: rank-1 {100 * result['rank1']:.2f}%  rank-5 {100 * result['rank5']:.2f}%  "
              f"rank-10 {100 * result['rank10']:.2f}%  mAP {100 * result['mAP']:.2f}%  mINP {100 * result['mINP']:.2f}%")
    print(f"checkpoint: {out / 'last.pt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
