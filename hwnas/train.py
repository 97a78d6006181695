"""``python -m hwnas.train``: train a registered model on a ReID dataset (or synthetic data).

The paper's schedule (DESIGN 3) is the default on a real dataset; ``--synthetic`` defaults to a short
schedule (15 epochs) so it ends in minutes on a CPU. If only the epochs are changed, the lr milestones
move to the same fractions of the run.

Settings come from, lowest precedence first: the defaults, ``--config FILE.yaml`` (sections ``model``,
``model_options``, ``data``, ``train``, ``load_weights``), the flags given, and ``KEY=VALUE`` overrides
(``train.lr=0.01``). ``--resume --output DIR`` continues a run with the settings saved in ``DIR/config.yaml``;
an option that would change them is refused (device, threads and progress bars may change).
``--load-weights CKPT`` fine-tunes from given weights. Outputs in ``--output`` (default
``runs/train-<timestamp>``): config.yaml (the resolved settings), last.pt, metrics.jsonl, config.json,
results.json, train.log (the log), training_curves.png (losses, training accuracy and lr, rank-1/mAP/mINP per
epoch; redrawn at each evaluation, every 10 epochs and at the end; ``hwnas report plots RUN`` draws it again) and,
with the tensorboard package installed, TensorBoard event files in tensorboard/.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

import hwnas
from hwnas import _cli, _config
from hwnas._lock import is_lock_file, new_run_dir, run_lock
from hwnas._model_cli import parse_option, width_mult_option
from hwnas._runlog import RunLog, run_log
from hwnas.data._cli import add_data_arguments, data_flag_entries, dataset_from_config
from hwnas.errors import CheckpointError, OutputError, UsageError
from hwnas.models import check_input_size, model_options
from hwnas.models._limits import check_training_memory
from hwnas.training import ReIDData, TrainConfig, Trainer, load_weights
from hwnas.training.config import SYNTHETIC_EPOCHS, TrainRunConfig, with_default_schedule
from hwnas.viz import tensorboard

PROG = "python -m hwnas.train"
_TRAIN_FIELDS = frozenset(TrainConfig.__dataclass_fields__)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_config(p, "model, model_options, data, train, load_weights")
    p.add_argument("--model", help=f"model to train, one of: {', '.join(hwnas.list_models())}")
    p.add_argument("--model-option", "-o", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="model option (repeatable), e.g. genotype=cdnet-top1, width_mult=0.5, neck=bnneck")
    p.add_argument("--width-mult", type=_cli.width_mult, metavar="BETA",
                   help="width multiplier beta of the model (the same as -o width_mult=BETA, and as search's flag)")
    p.add_argument("--load-weights", type=_cli.path, metavar="CKPT",
                   help="start from these weights (a last.pt of hwnas train, or a saved state dict) instead of a "
                        "random initialisation; a classifier of another size is re-initialised")
    add_data_arguments(p, required=False)
    _cli.add_output(p, "output folder (default runs/train-<timestamp>); must be new or empty unless --resume or "
                       "--overwrite")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last.pt, with the settings in its config.yaml")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a non-empty --output folder")
    _cli.add_threads(p)
    _cli.add_device(p)
    _cli.add_progress(p)
    tensorboard.add_argument(p)
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
    t.add_argument("--num-workers", type=_cli.num_workers, default=d.num_workers, help="DataLoader workers")
    _cli.add_seed(t, d.seed)
    t.add_argument("--eval-at-start", action="store_true", help="also evaluate the untrained model (epoch 0)")
    t.add_argument("--eval-flip", action="store_true", help="average features of each image and its mirror")
    t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    t.add_argument("--channels-last", action="store_true",
                   help="NHWC memory layout for the weights and batches: the same computation, steps x1.3 "
                        "faster on a CPU (benchmarks/results/channels_last.md)")
    return p


def flag_entries(a: argparse.Namespace, given: dict[str, str]) -> list[tuple[str, object, str]]:
    """The config entries ``(key, value, flag)`` of the flags given on the command line."""
    entries = data_flag_entries(a, given)
    for dest, flag in given.items():
        value = getattr(a, dest)
        if dest in _TRAIN_FIELDS:
            entries.append((f"train.{dest}", list(value) if dest == "milestones" else value, flag))
        elif dest == "input_size":
            entries += [("train.height", value[0], flag), ("train.width", value[1], flag)]
        elif dest == "no_amp":
            entries.append(("train.amp", not value, flag))
        elif dest == "model":
            entries.append(("model", value, flag))
        elif dest == "model_option":
            entries += [(f"model_options.{k}", v, flag) for k, v in value]
        elif dest == "width_mult":
            key, value = width_mult_option(value, a.model_option)
            entries.append((f"model_options.{key}", value, flag))
        elif dest == "load_weights":
            entries.append(("load_weights", str(value), flag))
    return entries


def resolve_run(a: argparse.Namespace, given: dict[str, str]) -> TrainRunConfig:
    """Defaults < --config < flags < overrides; with --resume, the run's saved config.yaml, unchanged."""
    layers = [_config.file_layer(a.config)] if a.config is not None else []
    layers += [_config.flag_layer(flag_entries(a, given)), _config.override_layer(a.overrides)]
    saved_path = a.output / _config.CONFIG_NAME if a.resume and a.output is not None else None
    if saved_path is not None and saved_path.is_file():
        return _config.resume_config(saved_path, TrainRunConfig(), layers)
    r = _config.resolve(TrainRunConfig(), layers)
    with _cli.options_named("TrainConfig", {"height": "--input-size", "width": "--input-size"}):
        run = with_default_schedule(r.config, r.was_set("train.epochs"), r.was_set("train.milestones"))
    run.train.check_milestones_apply()
    return run


RUN_FILES = ("last.pt", "metrics.jsonl", "results.json", "config.json", "train.log", "training_curves.png")
"""What --overwrite removes before starting afresh."""


def check_output(a: argparse.Namespace) -> Path | None:
    """Validate ``--output`` before any work (None: a new default folder will be made)."""
    if a.output is None:
        if a.resume:
            raise UsageError("--resume without a folder, --output, expected --output DIR (the run to continue)")
        return None
    out = _cli.check_output_dir(a.output)
    if a.resume and a.overwrite:
        raise UsageError("--resume and --overwrite together, --output, expected one of them")
    if a.resume and not (out / "last.pt").is_file():
        raise UsageError(f"nothing to resume, {out / 'last.pt'}, expected a run folder written by hwnas train")
    if not a.resume and not a.overwrite and out.is_dir() and any(not is_lock_file(p) for p in out.iterdir()):
        raise OutputError(f"output folder is not empty, --output {out}, expected a new or empty folder "
                          "(or --resume to continue it, --overwrite to start afresh)")
    return out


def check_model(run: TrainRunConfig) -> dict[str, object]:
    """The model name and options, checked; returns the options (without num_classes)."""
    if run.model is None:
        raise UsageError(f"no model given, --model, expected one of {', '.join(hwnas.list_models())} (or model: "
                         "in --config)")
    if run.model not in hwnas.list_models():
        raise UsageError(f"unknown model {run.model!r}, --model, expected one of {', '.join(hwnas.list_models())}")
    options = dict(run.model_options)
    allowed = model_options(run.model)
    unknown = sorted(set(options) - set(allowed) | ({"num_classes"} & set(options)))
    if unknown:
        raise UsageError(f"unknown model option(s) {', '.join(unknown)}, --model-option, expected options of "
                         f"{run.model}: {', '.join(k for k in allowed if k != 'num_classes')}")
    check_input_size(run.model, (run.train.height, run.train.width), **options)
    if run.load_weights is not None and not Path(run.load_weights).is_file():
        raise CheckpointError(f"weights file does not exist, --load-weights {run.load_weights}, expected a last.pt "
                              "written by hwnas train or a saved state dict")
    return options


class CurvesCallback:
    """Redraws ``training_curves.png`` after each evaluation, every ``every`` epochs and after the last epoch."""

    def __init__(self, out: Path, epochs: int, every: int = 10) -> None:
        self.out, self.epochs, self.every = out, epochs, every

    def __call__(self, epoch: int, record: dict) -> None:
        if "eval" in record or epoch % self.every == 0 or epoch == self.epochs:
            from hwnas.viz.training import redraw_training_curves

            redraw_training_curves(self.out)


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    parser = build_parser(prog)
    a = parser.parse_intermixed_args(argv)
    run = resolve_run(a, _cli.given_options(parser, argv))
    options = check_model(run)
    device = _cli.resolve_device(a.device)
    check_training_memory(run.model, (run.train.height, run.train.width), run.train.batch_size, device, **options)
    write_events = tensorboard.check_mode(a.tensorboard)
    out = check_output(a)  # checked now, a default run folder made once the data is read
    _cli.apply_threads(a.threads)
    # info lines (the dataset read) are held until the run is accepted: a refused one prints only its error line
    with run_log() as log:
        data = ReIDData.from_dataset(dataset_from_config(run.data))  # read and checked before the output folder
        out = out if out is not None else new_run_dir("train")
        # one run per folder (a second is refused); stale temp files of a killed run removed; a folder made for
        # this run is removed again if it is refused before writing anything
        with run_lock(out):
            if a.overwrite:
                for name in RUN_FILES:
                    (out / name).unlink(missing_ok=True)
            return _train_in(a, run, options, device, write_events, out, data, log)


def _train_in(a: argparse.Namespace, run: TrainRunConfig, options: dict[str, object], device: torch.device,
              write_events: bool, out: Path, data: ReIDData, log: RunLog) -> int:
    """The training proper, in ``out`` (locked by the caller), on ``data`` (already loaded and checked); ``log``
    holds the info lines until the run is accepted (then ``train.log``, appended on --resume)."""
    config = run.train
    options["num_classes"] = data.num_classes
    torch.manual_seed(config.seed)
    model = hwnas.create_model(run.model, **options)
    if run.load_weights is not None and not a.resume:
        for note in load_weights(model, run.load_weights):
            print(f"note: {note} (fine-tuning on {data.num_classes} identities)")
        print(f"loaded weights from {run.load_weights}")
    trainer = Trainer(model, data, config, out, model_name=run.model, model_options=options,
                      device=device, progress=not a.no_progress)
    if a.resume:
        trainer.resume()  # a refused resume leaves the folder as it was: train.log is opened after this check
    log.accept(out / "train.log")
    if trainer.epoch:
        logging.getLogger(__name__).info("continuing %s in %s after epoch %d", run.model, out, trainer.epoch)
    _config.write_config(out / _config.CONFIG_NAME, run, "hwnas train: the resolved settings of this run "
                         f"(hwnas train --config {out / _config.CONFIG_NAME} reruns it)")
    if trainer.epoch >= config.epochs:
        print(f"the run in {out} has already trained all {config.epochs} epochs; nothing to do")
        return 0
    print(f"training {run.model} on {data.num_classes} identities, {config.epochs} epochs"
          f"{f' from epoch {trainer.epoch + 1}' if trainer.epoch else ''}, output {out}")
    if a.tensorboard == "auto" and not write_events:
        print(tensorboard.absent_note())
    events = tensorboard.open_writer(write_events, out)
    try:
        result = trainer.fit(callbacks=[c for c in (CurvesCallback(out, config.epochs), events) if c is not None])
    finally:
        if events is not None:
            events.close()
    if result:
        print(f"epoch {trainer.epoch}: rank-1 {100 * result['rank1']:.2f}%  rank-5 {100 * result['rank5']:.2f}%  "
              f"rank-10 {100 * result['rank10']:.2f}%  mAP {100 * result['mAP']:.2f}%  mINP {100 * result['mINP']:.2f}%")
    print(f"checkpoint: {out / 'last.pt'}")
    return 0


def resolve_device(name: str) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` -> device (kept for callers of the old name; see :func:`hwnas._cli.resolve_device`)."""
    return _cli.resolve_device(name)


if __name__ == "__main__":
    raise SystemExit(main())
