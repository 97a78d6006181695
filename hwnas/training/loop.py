"""The final-training loop: P x K batches, softmax + triplet per neck output, SGD with a step schedule,
periodic evaluation, a JSONL metrics log, atomic checkpoints and exact resumption.

Every epoch reseeds torch's generator and the sampler's from ``(seed, epoch)``, so epoch e draws the same
batches, augmentations and dropout masks whether or not the run was interrupted before it: resuming from
the checkpoint of epoch e-1 reproduces the weights of an uninterrupted run (CPU; CUDA kernels may not be
bitwise deterministic).
"""
from __future__ import annotations

import json
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

from hwnas.data.datasets import ReIDDataset
from hwnas.data.loaders import build_test_loader, build_train_loader
from hwnas.evaluation.features import evaluate_model
from hwnas.losses import ReIDLoss
from hwnas._io import write_json_atomic
from hwnas.training.checkpoint import load_checkpoint, save_checkpoint
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


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def evaluate(model: nn.Module, data: ReIDData, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Rank-1/5/10, mAP, mINP on data's query/gallery with the test transforms (JSON-ready dict)."""
    kw = {"height": config.height, "width": config.width, "batch_size": config.test_batch_size,
          "num_workers": config.num_workers}
    r = evaluate_model(model, build_test_loader(data.query, **kw), build_test_loader(data.gallery, **kw),
                       device=device, flip=config.eval_flip, amp=config.amp)
    return {k: r[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_skipped")}


class Trainer:
    """Owns the model, optimiser, loss and output folder of one run; :meth:`fit` runs the remaining epochs."""

    def __init__(self, model: nn.Module, data: ReIDData, config: TrainConfig, out_dir: str | os.PathLike, *,
                 model_name: str, model_options: dict[str, Any], device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.data, self.config, self.out = data, config, Path(out_dir)
        self.model_name, self.model_options = model_name, dict(model_options)
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

    # ---- state -----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "config": self.config.to_dict(),
                "model_name": self.model_name, "model_options": self.model_options,
                "num_classes": self.data.num_classes}

    def resume(self) -> bool:
        """Load ``last.pt`` if present (same model and config required); drop log lines of later epochs."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            logger.warning("no checkpoint at %s: starting from epoch 1", path)
            return False
        ckpt = load_checkpoint(path, map_location=self.device)
        theirs = TrainConfig.from_dict(ckpt.get("config", {}), f"checkpoint '{path}'")
        if (ckpt["model_name"], ckpt["model_options"], theirs) != (self.model_name, self.model_options, self.config):
            raise ValueError(f"checkpoint '{path}' was written by a different run (model {ckpt['model_name']} "
                             f"{ckpt['model_options']}, {theirs}); use another --out or the same options")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self._truncate_log(self.epoch)
        logger.info("resumed %s at epoch %d", path, self.epoch)
        return True

    def _truncate_log(self, epoch: int) -> None:
        log = self.out / METRICS
        if log.is_file():
            lines = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] <= epoch]
            tmp = log.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(ln + "\n" for ln in lines))
            os.replace(tmp, log)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ---- training --------------------------------------------------------------------------------------
    def fit(self, callbacks: Sequence[EpochCallback] = ()) -> dict[str, Any]:
        """Train from ``self.epoch + 1`` to ``config.epochs``; returns the last evaluation."""
        self.out.mkdir(parents=True, exist_ok=True)
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
        while self.epoch < cfg.epochs:
            self.epoch += 1
            record = self.train_epoch(self.epoch)
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
            raise RuntimeError("the training loader yielded no batch: too few identities for one P x K batch")
        return {"epoch": epoch, "lr": lr, "time_s": round(time.perf_counter() - start, 3), "batches": n,
                **{k: v / n for k, v in sums.items()}}

    def _step(self, images: torch.Tensor, pids: torch.Tensor, epoch: int, index: int) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            output = self.model(images)
        loss, parts = self.criterion(output, pids)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"loss is {float(loss.detach())} at epoch {epoch}, batch {index}; lower --lr")
        # zeroed, not freed, as in the paper's code (PyTorch 1.x default): a parameter that once had a gradient
        # keeps taking momentum and weight-decay steps (DESIGN 2b.2)
        self.optimizer.zero_grad(set_to_none=False)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss.detach(), **parts}


def _fmt(r: dict[str, Any]) -> str:
    return f"rank-1 {100 * r['rank1']:.1f}%  mAP {100 * r['mAP']:.1f}%  mINP {100 * r['mINP']:.1f}%"
