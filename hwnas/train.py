"""``python -m hwnas.train``: train a registered model on a ReID dataset (or synthetic data).

The paper's schedule (DESIGN 3) is the default on a real dataset; ``--synthetic`` defaults to a short
schedule (15 epochs) so it ends in minutes on a CPU. If only ``--epochs`` is changed, the lr milestones
move to the same fractions of the run. Outputs in ``--out``: last.pt, metrics.jsonl, config.json, results.json.
"""
from __future__ import annotations

import argparse
import json
import logging

import torch

import hwnas
from hwnas.data._cli import add_data_arguments, dataset_from_args
from hwnas.training import ReIDData, TrainConfig, Trainer, scaled_milestones

SYNTHETIC_EPOCHS = 15


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when possible (numbers, booleans), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model-option {text!r}: expected key=value")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m hwnas.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help=f"one of: {', '.join(hwnas.list_models())}")
    p.add_argument("--model-option", "-o", type=parse_option, action="append", default=[],
                   help="model option key=value (e.g. genotype=cdnet-top1, width_mult=0.5, neck=bnneck)")
    add_data_arguments(p)
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is much faster on a busy machine)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--no-progress", action="store_true")
    t = p.add_argument_group("schedule (defaults: the paper's)")
    t.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs} ({SYNTHETIC_EPOCHS} with --synthetic)")
    t.add_argument("--milestones", type=int, nargs="*", default=None, help=f"default {list(d.milestones)}, scaled")
    for name in ("lr", "momentum", "weight_decay", "gamma", "label_smoothing", "margin"):
        t.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    for name in ("warmup_epochs", "batch_size", "num_instances", "height", "width", "eval_every",
                 "test_batch_size", "num_workers", "seed"):
        t.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    t.add_argument("--eval-at-start", action="store_true", help="also evaluate the untrained model (epoch 0)")
    t.add_argument("--eval-flip", action="store_true", help="average features of each image and its mirror")
    t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    return p


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    epochs = a.epochs if a.epochs is not None else (SYNTHETIC_EPOCHS if a.synthetic else TrainConfig.epochs)
    milestones = tuple(a.milestones) if a.milestones is not None else scaled_milestones(epochs)
    return TrainConfig(epochs=epochs, milestones=milestones, lr=a.lr, momentum=a.momentum,
                       weight_decay=a.weight_decay, gamma=a.gamma, warmup_epochs=a.warmup_epochs,
                       batch_size=a.batch_size, num_instances=a.num_instances, height=a.height, width=a.width,
                       label_smoothing=a.label_smoothing, margin=a.margin, eval_every=a.eval_every,
                       eval_at_start=a.eval_at_start, eval_flip=a.eval_flip, test_batch_size=a.test_batch_size,
                       num_workers=a.num_workers, amp=not a.no_amp, seed=a.seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    config = config_from_args(a)
    data = ReIDData.from_dataset(dataset_from_args(a))
    options = {**dict(a.model_option), "num_classes": data.num_classes}
    torch.manual_seed(config.seed)
    model = hwnas.create_model(a.model, **options)
    trainer = Trainer(model, data, config, a.out, model_name=a.model, model_options=options,
                      device=resolve_device(a.device), progress=not a.no_progress)
    if a.resume:
        trainer.resume()
    result = trainer.fit()
    if result:
        print(f"epoch {trainer.epoch}: rank-1 {100 * result['rank1']:.2f}%  rank-5 {100 * result['rank5']:.2f}%  "
              f"rank-10 {100 * result['rank10']:.2f}%  mAP {100 * result['mAP']:.2f}%  mINP {100 * result['mINP']:.2f}%")
    print(f"checkpoint: {a.out}/last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
