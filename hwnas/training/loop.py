"""The final-training loop: P x K batches, softmax + triplet per neck output, SGD with a step schedule,
periodic evaluation, a JSONL metrics log, atomic checkpoints and exact resumption.

The output folder is held with a run lock (:mod:`hwnas._lock`) while the trainer resumes or fits, so a second
run into it is refused. ``metrics.jsonl`` is append-only with one flushed line per epoch; on resume a partial last
line (a kill or a full disk mid-write) is dropped and records of epochs after the checkpoint are removed, so the
log never holds a duplicate epoch.

Every epoch reseeds torch's generator and the sampler's from ``(seed, epoch)``, so epoch e draws the same
batches, augmentations and dropout masks whether or not the run was interrupted before it: resuming from
the checkpoint of epoch e-1 reproduces the weights of an uninterrupted run (CPU; CUDA kernels may not be
bitwise deterministic).
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hwnas import _cli
from hwnas._io import append_line, finite_or_none, json_line, read_json_lines, rewrite_json_lines, write_json_atomic
from hwnas._lock import run_lock
from hwnas._resume import changed_fields, refuse_resume
from hwnas._weights import load_optimizer, load_weights
from hwnas.data.datasets import ReIDDataset
from hwnas.data.identity import images_hash
from hwnas.data.loaders import build_test_loader, build_train_loader
from hwnas.errors import CheckpointError, DatasetError, DivergedError
from hwnas.evaluation.features import evaluate_model
from hwnas.losses import ReIDLoss
from hwnas.training.checkpoint import load_checkpoint, portable_options, save_checkpoint
from hwnas.training.config import TrainConfig

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]
EpochCallback = Callable[[int, dict[str, Any]], None]
CHECKPOINT = "last.pt"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class ReIDData:
    """The items a training run needs: train (pids 0..num_classes-1), query and gallery."""

    train: Sequence[Item]
    query: Sequence[Item]
    gallery: Sequence[Item]
    num_classes: int

    @classmethod
    def from_dataset(cls, ds: ReIDDataset) -> ReIDData:
        return cls(ds.train, ds.query, ds.gallery, ds.num_train_pids)

    def identity(self) -> dict[str, str]:
        """A hash of the images of the three splits (:func:`hwnas.data.identity.images_hash`): a resume on other
        data is refused."""
        return {"images": images_hash(train=self.train, query=self.query, gallery=self.gallery)}


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def evaluate(model: nn.Module, data: ReIDData, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Rank-1/5/10, mAP, mINP on data's query/gallery with the test transforms (JSON-ready dict).

    With no valid query the scores are ``None`` (JSON null), with a warning, instead of NaN.
    """
    kw = {"height": config.height, "width": config.width, "batch_size": config.test_batch_size,
          "num_workers": config.num_workers}
    r = evaluate_model(model, build_test_loader(data.query, **kw), build_test_loader(data.gallery, **kw),
                       device=device, flip=config.eval_flip, amp=config.amp)
    if not r["num_valid"]:
        logger.warning("evaluation: no query has a true match in the gallery (%d queries): scores are null",
                       len(data.query))
    return finite_or_none({k: r[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_skipped")})


# TrainConfig fields a resume may change: the memory layout changes only rounding (like the thread count)
RESULT_NEUTRAL = frozenset({"channels_last"})


class Trainer:
    """Owns the model, optimiser, loss and output folder of one run; :meth:`fit` runs the remaining epochs."""

    def __init__(self, model: nn.Module, data: ReIDData, config: TrainConfig, out_dir: str | os.PathLike, *,
                 model_name: str, model_options: dict[str, Any], device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if config.channels_last:  # NHWC weights (batches follow in _step); the same computation, faster convolutions
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data, self.config, self.out = data, config, Path(out_dir)
        self.model_name, self.model_options = model_name, portable_options(model, model_options)
        self.progress = progress
        self.use_amp = config.amp and self.device.type == "cuda"
        self.criterion = ReIDLoss(config.label_smoothing, config.margin)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.generator = torch.Generator()
        self.loader = build_train_loader(data.train, height=config.height, width=config.width,
                                         batch_size=config.batch_size, num_instances=config.num_instances,
                                         num_workers=config.num_workers, generator=self.generator)
        self.epoch = 0
        # P x K batches of each finished epoch (a resume checks it against epoch); None: continued from a checkpoint
        # written before it was recorded (then never recorded in this run)
        self.epoch_batches: list[int] | None = []
        self._identity: dict[str, str] | None = None

    # ---- state -----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "epoch_batches": self.epoch_batches,
                "config": self.config.to_dict(),
                "model_name": self.model_name, "model_options": self.model_options,
                "num_classes": self.data.num_classes, "data": self._data_identity()}

    def _data_identity(self) -> dict[str, str]:
        if self._identity is None:  # hashed once per run (file sizes of every image)
            self._identity = self.data.identity()
        return self._identity

    def resume(self) -> bool:
        """Load ``last.pt`` if present (same model and settings required); drop log lines of later epochs.

        Raises :class:`CheckpointError` listing each differing setting as ``name old -> new``.
        """
        path = self.out / CHECKPOINT
        with run_lock(self.out):
            if not path.is_file():
                logger.warning("no checkpoint at %s: starting from epoch 1", path)
                return False
            ckpt = load_checkpoint(path, map_location=self.device)
            where = f"checkpoint '{path}'"
            theirs = TrainConfig.from_dict(ckpt.get("config", {}), where)
            diff = changed_fields({"model": ckpt["model_name"], "model_options": ckpt["model_options"],
                                   **theirs.to_dict()},
                                  {"model": self.model_name, "model_options": self.model_options,
                                   **self.config.to_dict()}, ignore=RESULT_NEUTRAL)
            if diff:
                raise refuse_resume(diff, where, "the options of the run being resumed (or another --output)")
            saved = ckpt.get("data")  # checkpoints written before it was recorded lack it
            if saved is not None and saved != self._data_identity():
                old = saved.get("images") if isinstance(saved, dict) else saved
                raise refuse_resume([f"images {_cli.echo(old)} -> {self._data_identity()['images']}"], where,
                                    "the data the run started with (the same images, identities and cameras)",
                                    "data differ")
            epoch = ckpt["epoch"]
            if type(epoch) is not int or not 1 <= epoch <= self.config.epochs:  # written after each epoch only
                shown = _cli.file_value(epoch)  # '1' is not 1
                raise CheckpointError(f"epoch is {shown}, {where}, expected a whole number of epochs "
                                      f"from 1 to the run's {self.config.epochs} (hwnas train writes it after each "
                                      "epoch)")
            load_weights(self.model, ckpt["model"], where)
            load_optimizer(self.optimizer, ckpt["optimizer"], where)
            if "scaler" in ckpt:
                try:
                    self.scaler.load_state_dict(ckpt["scaler"])
                except (TypeError, KeyError, ValueError, RuntimeError, AttributeError) as e:
                    raise CheckpointError(f"bad gradient-scaler state ({type(e).__name__}), {where} scaler, "
                                          "expected the state hwnas train saved") from None
            self.epoch_batches = self._check_epoch_batches(ckpt.get("epoch_batches"), epoch, where)
            self.epoch = epoch
            self._truncate_log(self.epoch)
        logger.info("resumed %s at epoch %d", path, self.epoch)
        return True

    def _check_epoch_batches(self, batches: Any, epoch: int, where: str) -> list[int] | None:
        """The checkpoint's batch count per finished epoch: one whole number 1..len(loader) per epoch, so an epoch
        edited on its own (which would train finished epochs again on trained weights) is refused. Checkpoints
        written before it was recorded lack it (None: accepted, and not recorded in the continued run)."""
        if batches is None:
            return None
        most = len(self.loader)
        if not (isinstance(batches, list) and all(type(b) is int and 1 <= b <= most for b in batches)):
            shown = _cli.file_value(batches)
            raise CheckpointError(f"bad value {shown}, {where} epoch_batches, expected the number of "
                                  f"P x K batches (1..{most}) of each finished epoch")
        if len(batches) != epoch:
            raise CheckpointError(f"epoch is {epoch} but {len(batches)} finished epoch(s) are recorded, {where} "
                                  "epoch_batches, expected one batch count per finished epoch (the epoch hwnas train "
                                  "wrote)")
        return list(batches)

    def _truncate_log(self, epoch: int) -> None:
        """Keep the records of epochs <= ``epoch`` (one per epoch, the last written); drop unreadable lines."""
        log = self.out / METRICS
        records, dropped = read_json_lines(log)
        kept: dict[int, dict[str, Any]] = {}
        for r in records:
            if not (isinstance(r, dict) and isinstance(r.get("epoch"), int)):
                dropped += 1
            elif r["epoch"] <= epoch:
                kept[r["epoch"]] = r
        if dropped:
            logger.warning("%s: dropped %d unreadable line(s) (a partial line from a kill or a full disk)", log,
                           dropped)
        if log.is_file() and (dropped or len(kept) != len(records)):
            rewrite_json_lines(log, [finite_or_none(kept[e]) for e in sorted(kept)])

    def _log(self, record: dict[str, Any]) -> None:
        append_line(self.out / METRICS, json_line(finite_or_none(record), str(self.out / METRICS)))

    # ---- training --------------------------------------------------------------------------------------
    def fit(self, callbacks: Sequence[EpochCallback] = ()) -> dict[str, Any]:
        """Train from ``self.epoch + 1`` to ``config.epochs``; returns the last evaluation.

        Holds the output folder's run lock throughout (a second run into it raises :class:`OutputError`).
        """
        with run_lock(self.out):
            return self._fit(callbacks)

    def _fit(self, callbacks: Sequence[EpochCallback]) -> dict[str, Any]:
        self._truncate_log(self.epoch if self.epoch > 0 else -1)  # a fresh start keeps no old record
        write_json_atomic(self.out / "config.json", {"model_name": self.model_name,
                                                     "model_options": self.model_options,
                                                     "train": self.config.to_dict(),
                                                     "num_classes": self.data.num_classes})
        cfg = self.config
        last_eval: dict[str, Any] = {}
        if cfg.eval_at_start and self.epoch == 0:
            last_eval = evaluate(self.model, self.data, cfg, self.device)
            self._log({"epoch": 0, "eval": last_eval})
            logger.info("epoch 0 (untrained): %s", _fmt(last_eval))
            for cb in callbacks:
                cb(0, {"epoch": 0, "eval": last_eval})
        while self.epoch < cfg.epochs:
            self.epoch += 1
            record = self.train_epoch(self.epoch)
            if self.epoch_batches is not None:
                self.epoch_batches.append(record["batches"])
            logger.info("epoch %d/%d: loss %.4f (softmax %.4f, triplet %.4f), train acc %.3f, lr %.3g, %.1f s",
                        self.epoch, cfg.epochs, record["loss"], record.get("ce", math.nan),
                        record.get("triplet", math.nan), record.get("acc", math.nan), record["lr"], record["time_s"])
            if (cfg.eval_every and self.epoch % cfg.eval_every == 0) or self.epoch == cfg.epochs:
                last_eval = record["eval"] = evaluate(self.model, self.data, cfg, self.device)
                logger.info("epoch %d: %s", self.epoch, _fmt(last_eval))
            self._log(record)
            save_checkpoint(self.out / CHECKPOINT, {**self.state(), "eval": last_eval})
            for cb in callbacks:
                cb(self.epoch, record)
        if last_eval:
            write_json_atomic(self.out / "results.json", {"epoch": self.epoch, **last_eval})
        return last_eval

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the P x K batches with ``(seed, epoch)``-seeded randomness; returns mean losses."""
        seed = epoch_seed(self.config.seed, epoch)
        torch.manual_seed(seed)
        self.generator.manual_seed(seed)
        lr = self.config.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        sums: dict[str, float] = {}
        n = 0
        start = time.perf_counter()
        bar = tqdm(self.loader, desc=f"epoch {epoch}/{self.config.epochs}", leave=False, disable=not self.progress)
        for images, pids, _ in bar:
            parts = self._step(images.to(self.device, non_blocking=True), pids.to(self.device), epoch, n)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
            bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", acc=f"{sums.get('acc', 0.0) / n:.3f}")
        if n == 0:
            raise DatasetError(f"no training batch in epoch {epoch}, training split, expected at least "
                               f"{self.config.batch_size // self.config.num_instances} identities with images for one "
                               f"P x K batch of {self.config.batch_size}")
        return {"epoch": epoch, "lr": lr, "time_s": round(time.perf_counter() - start, 3), "batches": n,
                **{k: v / n for k, v in sums.items()}}

    def _step(self, images: torch.Tensor, pids: torch.Tensor, epoch: int, index: int) -> dict[str, torch.Tensor]:
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            output = self.model(images)
        loss, parts = self.criterion(output, pids)
        if not math.isfinite(float(loss.detach())):
            raise DivergedError(f"training loss is {float(loss.detach())} at epoch {epoch}, batch {index}, "
                                f"{self.out}, expected a finite loss (lower --lr, or check the data)")
        # zeroed, not freed, as in the paper's code (PyTorch 1.x default): a parameter that once had a gradient
        # keeps taking momentum and weight-decay steps (DESIGN 2b.2)
        self.optimizer.zero_grad(set_to_none=False)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss.detach(), **parts}


def _fmt(r: dict[str, Any]) -> str:
    return f"rank-1 {100 * r['rank1']:.1f}%  mAP {100 * r['mAP']:.1f}%  mINP {100 * r['mINP']:.1f}%"
