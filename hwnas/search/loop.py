"""The alternating first-order search loop (DESIGN section 2) with the hardware-aware latency term.

Each step: (1) the network weights take an SGD step on a train batch (alphas held fixed); (2) the alphas
take an Adam step on a validation batch, on ``loss_val + latency_penalty(E[lat])``. Checkpoints (every
``checkpoint_every`` steps and at each epoch end) hold everything needed to continue exactly: weights,
alphas, optimiser states, which parameters hold a zeroed gradient, progress counters, the running epoch
sums and every rank's torch RNG state;
batches are addressed by (epoch, index) with seeds derived from the config (see :mod:`._data`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hwnas._modes import eval_mode
from hwnas._weights import load_optimizer, load_weights
from hwnas.errors import DivergedError, UsageError
from hwnas.losses import ReIDLoss
from hwnas.search import _dist
from hwnas.search._checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    check_resumable,
    save_checkpoint,
    table_identity,
)
from hwnas.search._data import SearchData, mix_seed
from hwnas.search._state import SUM_KEYS, SearchState
from hwnas.search.config import SearchConfig
from hwnas.search.decisiveness import Decisiveness, decisiveness
from hwnas.search.derive import alpha_entropy, derive_genotype, topk_genotypes
from hwnas.search.supernet import SuperNet
from hwnas.search.topk import sample_paths
from hwnas.space.genotype import Genotype

logger = logging.getLogger(__name__)

# val_acc_train_mode: identity top-1 on the alpha steps' validation batches, train mode (dropout, batch-statistics
# BatchNorm), averaged over the epoch; not to be confused with SearchResult.val_acc_eval_mode (one eval-mode pass).
VAL_KEYS = ("val_loss", "val_acc_train_mode", "latency_penalty")  # None in warm-up epochs
WARMUP_STREAM = 2  # mix_seed stream of the warm-up paths (0, 1: the train and validation batches)
DERIVE_STREAM = 3  # mix_seed stream of derive='score''s random genotypes


def latency_penalty(expected_ms: torch.Tensor, weight: float, target_ms: float | None = None) -> torch.Tensor:
    """The hardware term added to alpha's loss.

    No target: ``weight * E[lat]`` (E[lat] in ms). With a target T: ``weight * max(E[lat] / T - 1, 0)``,
    i.e. only latency above the target is penalised, in units of the target.
    """
    if target_ms is None:
        return weight * expected_ms
    return weight * torch.relu(expected_ms / target_ms - 1.0)


def weight_lr(config: SearchConfig, epoch: int) -> float:
    """Cosine decay from ``lr`` to ``lr_min`` over the epochs (torch's CosineAnnealingLR, per epoch)."""
    return config.lr_min + (config.lr - config.lr_min) * (1 + math.cos(math.pi * epoch / config.epochs)) / 2


def alpha_lr(config: SearchConfig, epoch: int) -> float:
    """Step decay: ``alpha_lr * gamma ** (number of milestones <= epoch)``."""
    return config.alpha_lr * config.alpha_gamma ** sum(epoch >= m for m in config.alpha_milestones)


@dataclass(frozen=True)
class SearchResult:
    """What a finished search found; ``history`` has one record per epoch.

    ``val_acc_eval_mode``: identity top-1 of the supernet (current top-k paths) in eval mode over one pass of
    the validation split without augmentation. ``val_acc_train_mode``: the last epoch's mean over the alpha
    steps' validation batches in train mode (None without epochs). ``decisiveness``: per-layer entropy
    fraction and margin of the final alphas.
    """

    genotype: Genotype
    alphas: torch.Tensor
    topk: list[tuple[Genotype, float]]
    history: list[dict[str, Any]]
    val_acc_eval_mode: float
    expected_latency_ms: float | None
    decisiveness: Decisiveness
    selection: dict[str, Any] | None = None  # derive='score': how the genotype was chosen (None: argmax alpha)

    @property
    def val_acc_train_mode(self) -> float | None:
        return self.history[-1]["val_acc_train_mode"] if self.history else None


def check_resume(config: SearchConfig, data: SearchData, output: Path, table: Any = None) -> None:
    """Every check of :meth:`Searcher.load` on ``output/checkpoints/last.pt``, into a supernet built on the CPU and
    then dropped: the weights' names, shapes and dtypes, the optimizer states' fit, the progress counters against
    this data's steps, the processes and the random-number state. The command line runs it before it prints or
    writes anything, so a checkpoint the search would refuse is refused first. The global random state is kept.

    Raises :class:`~hwnas.errors.CheckpointError` naming the field (as the resume itself would).
    """
    with torch.random.fork_rng(devices=[]):
        Searcher(config, data, output, table, device="cpu", progress=False, wrap=False).load(quiet=True)


class Searcher:
    """Runs one search into ``output`` (checkpoints under ``output/checkpoints``)."""

    def __init__(self, config: SearchConfig, data: SearchData, output: Path, table: Any = None,
                 device: str = "cpu", progress: bool = True, wrap: bool = True) -> None:
        self.config, self.data, self.output, self.table = config, data, Path(output), table
        self.device = torch.device(device)
        self.dist = _dist.current()
        self.progress = progress and self.dist.is_main
        if table is not None:
            table.require(config.space)
        torch.manual_seed(config.seed)
        self.model = SuperNet(config.space, data.num_classes, config.width_mult, config.topk,
                              config.alpha_init, config.share_weights).to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled and wrap:  # wrap=False: this process's copy only (check_resume)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        self.criterion = ReIDLoss(margin=config.triplet_margin)
        self.weight_opt = torch.optim.SGD(self.model.weight_parameters(), lr=config.lr, momentum=config.momentum,
                                          weight_decay=config.weight_decay)
        self.alpha_opt = torch.optim.Adam(self.model.arch_parameters(), lr=config.alpha_lr,
                                          betas=config.alpha_betas, weight_decay=config.alpha_weight_decay)
        self.state = SearchState()
        self.epoch_callbacks: list[Callable[[int, dict[str, Any]], None]] = []  # called with each epoch's record

    @property
    def checkpoint_path(self) -> Path:
        return self.output / "checkpoints" / CHECKPOINT_NAME

    def steps_per_epoch(self, epoch: int) -> int:
        n = self.data.train.num_batches(epoch) // self.dist.world_size
        if n < 1:
            raise UsageError(f"{self.data.train.num_batches(epoch)} training batches of {self.config.batch_size}, "
                             f"training split, expected at least {self.dist.world_size} (one per process)")
        return n

    def expected_latency(self) -> torch.Tensor | None:
        """E[lat] in ms under the current softmax(alpha) (None without a table)."""
        if self.table is None:
            return None
        return self.table.expected_latency_ms(self.model.probs(), self.config.space)

    # ---- the two updates -------------------------------------------------------------------------
    def _weight_step(self, images: torch.Tensor, pids: torch.Tensor,
                     path: list[list[int]] | None = None) -> dict[str, float]:
        self.net.train()
        # Zeroed, not freed, as in the paper's code (PyTorch 1.x's default; DESIGN 2b.2): a candidate selected
        # once keeps a (zero) gradient, so SGD's momentum and weight decay keep moving it on steps where it is
        # not selected. Freed gradients would freeze unselected candidates.
        self.weight_opt.zero_grad(set_to_none=False)
        loss, parts = self.criterion(self.net(images, arch_grad=False, path=path), pids)
        loss.backward()
        self.weight_opt.step()
        return {"train_loss": float(loss.detach()), "train_ce": float(parts["ce"]),
                "train_triplet": float(parts["triplet"]), "train_acc": float(parts["acc"])}

    def _alpha_step(self, images: torch.Tensor, pids: torch.Tensor) -> dict[str, float]:
        self.alpha_opt.zero_grad(set_to_none=False)
        loss, parts = self.criterion(self.net(images, arch_grad=True), pids)
        total, lat, pen = loss, float("nan"), 0.0
        expected = self.expected_latency()
        if expected is not None:
            penalty = latency_penalty(expected, self.config.latency_weight, self.config.latency_target_ms)
            total = loss + penalty.to(loss.dtype)
            lat, pen = float(expected.detach()), float(penalty.detach())
        total.backward()
        self.alpha_opt.step()
        self.weight_opt.zero_grad(set_to_none=False)  # the alpha step's weight gradients are not used
        return {"val_loss": float(loss.detach()), "val_acc_train_mode": float(parts["acc"]), "latency_ms": lat,
                "latency_penalty": pen}

    @property
    def in_warmup(self) -> bool:
        """True in the first ``warmup_epochs`` epochs: weight steps on random paths, no alpha steps."""
        return self.state.epoch < self.config.warmup_epochs

    def _warmup_path(self) -> list[list[int]]:
        """k candidates per layer, uniform; seeded by (seed, global step): identical on every rank and on resume."""
        g = torch.Generator().manual_seed(mix_seed(self.config.seed, WARMUP_STREAM, self.state.global_step))
        layers, n = self.model.alphas.shape
        return sample_paths(layers, n, self.config.topk, g)

    def _next_val_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The alpha step's batch. 'official': batch ``rank`` of a P x K pass shuffled afresh for this step
        (the paper's code draws ``next(iter(val_loader))`` every step); 'disjoint': the next batch of the
        current pass, passes in order."""
        s, w = self.state, self.dist.world_size
        if self.config.val_split == "official":
            if self.data.val.num_batches(s.global_step) < w:
                raise self._too_few_val_batches(self.data.val.num_batches(s.global_step))
            return self.data.val.batch(s.global_step, self.dist.rank)
        if (s.val_pos + 1) * w > self.data.val.num_batches(s.val_cycle):
            s.val_cycle, s.val_pos = s.val_cycle + 1, 0
            if self.data.val.num_batches(s.val_cycle) < w:
                raise self._too_few_val_batches(self.data.val.num_batches(s.val_cycle))
        batch = self.data.val.batch(s.val_cycle, s.val_pos * w + self.dist.rank)
        s.val_pos += 1
        return batch

    def _too_few_val_batches(self, n: int) -> UsageError:
        return UsageError(f"{n} validation batches of {self.config.batch_size}, validation split, expected at least "
                          f"{self.dist.world_size} (one per process)")

    def _step(self) -> dict[str, float]:
        s, w = self.state, self.dist.world_size
        t0 = time.perf_counter()
        x, y = self.data.train.batch(s.epoch, s.step * w + self.dist.rank)
        if self.in_warmup:
            metrics = self._weight_step(x.to(self.device), y.to(self.device), self._warmup_path())
        else:
            metrics = self._weight_step(x.to(self.device), y.to(self.device))
            xv, yv = self._next_val_batch()
            metrics.update(self._alpha_step(xv.to(self.device), yv.to(self.device)))
        metrics["time_s"] = time.perf_counter() - t0
        self._check_finite(metrics)
        for k, v in metrics.items():
            s.sums[k] += v
        s.count += 1
        s.step += 1
        s.global_step += 1
        return metrics

    def _check_finite(self, metrics: dict[str, float]) -> None:
        """Stop at the first NaN/Inf loss or alpha instead of deriving a genotype from NaN alphas."""
        s = self.state
        bad = [k for k in ("train_loss", "val_loss") if k in metrics and not math.isfinite(metrics[k])]  # no val_loss in warm-up
        if not bool(torch.isfinite(self.model.alphas.detach()).all()):
            bad.append("alphas")
        if bad:
            raise DivergedError(f"{', '.join(bad)} became NaN or infinite at epoch {s.epoch + 1}, step {s.step + 1}, "
                                f"search in {self.output}, expected finite values (lower --latency-weight or the "
                                "learning rates; check the latency table)")

    def table_identity(self) -> dict[str, Any] | None:
        """Name and content hash of the latency table (None without one): a resume must use the same table."""
        return table_identity(self.table)

    # ---- epochs, records, checkpoints --------------------------------------------------------------
    def _set_lrs(self) -> None:
        for g in self.weight_opt.param_groups:
            g["lr"] = weight_lr(self.config, self.state.epoch)
        for g in self.alpha_opt.param_groups:
            g["lr"] = alpha_lr(self.config, self.state.epoch)

    def _epoch_record(self) -> dict[str, Any]:
        s = self.state
        keys = [k for k in SUM_KEYS if k != "time_s"]
        means = _dist.average(torch.tensor([s.sums[k] / max(s.count, 1) for k in keys], dtype=torch.float64),
                              self.dist)
        record: dict[str, Any] = {"epoch": s.epoch + 1, "steps": s.count, "lr": weight_lr(self.config, s.epoch),
                                  "alpha_lr": alpha_lr(self.config, s.epoch), "time_s": s.sums["time_s"]}
        record.update({k: float(v) for k, v in zip(keys, means)})
        if self.in_warmup:  # no alpha steps, so no validation batches, in a warm-up epoch
            record.update(dict.fromkeys(VAL_KEYS))
        expected = self.expected_latency()
        record["latency_ms"] = None if expected is None else float(expected.detach())
        if self.table is None:
            record["latency_penalty"] = None
        entropy = alpha_entropy(self.model.alphas)
        record["alpha_entropy"] = sum(entropy) / len(entropy)
        record["alpha_entropy_per_layer"] = entropy
        decided = decisiveness(self.model.alphas, self.config.space)
        record["alpha_entropy_fraction"] = decided.mean_entropy_fraction
        record["alpha_margin"] = decided.mean_margin
        record["alphas"] = self.model.alphas.detach().cpu().tolist()
        record["genotype"] = derive_genotype(self.model.alphas, self.config.space).tostr()
        return record

    def _end_epoch(self) -> None:
        s = self.state
        record = self._epoch_record()
        s.history.append(record)
        lat = "" if record["latency_ms"] is None else f", E[lat] {record['latency_ms']:.3f} ms"
        val = ("weight warm-up (no alpha steps)" if record["val_loss"] is None else
               f"val loss {record['val_loss']:.4f} acc (train mode) {record['val_acc_train_mode']:.3f}")
        logger.info("epoch %d/%d: train loss %.4f acc %.3f, %s, alpha entropy %.4f ln n, margin %.4f%s, %s",
                    record["epoch"], self.config.epochs, record["train_loss"], record["train_acc"], val,
                    record["alpha_entropy_fraction"], record["alpha_margin"], lat, record["genotype"])
        s.epoch, s.step, s.count = s.epoch + 1, 0, 0
        s.sums = dict.fromkeys(SUM_KEYS, 0.0)

    def save(self) -> None:
        """Checkpoint (collective: every rank contributes its RNG state; rank 0 writes)."""
        rng = _dist.gather_objects(torch.get_rng_state(), self.dist)
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_path, {
                "config": self.config.to_dict(), "model": self.model.state_dict(),
                "weight_opt": self.weight_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict(),
                "state": self.state.to_dict(), "rng": rng, "world_size": self.dist.world_size,
                "latency_table": self.table_identity(), "grads_kept": self._grads_kept(),
                "data": self.data.identity})
        _dist.barrier(self.dist)

    def _grads_kept(self) -> list[str]:
        """Names of the parameters holding a (zeroed) gradient: SGD keeps stepping them (see _weight_step)."""
        return [name for name, p in self.model.named_parameters() if p.grad is not None]

    def _restore_grads(self, names: list[str]) -> None:
        params = dict(self.model.named_parameters())
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise CheckpointError(f"unknown parameter(s) {', '.join(unknown[:3])}, checkpoint '{self.checkpoint_path}' "
                                  f"grads_kept, expected parameters of this supernet")
        for name in names:
            params[name].grad = torch.zeros_like(params[name])

    def load(self, quiet: bool = False) -> None:
        """Continue from ``output/checkpoints/last.pt`` (refuses a checkpoint of a different search); ``quiet``:
        no "resumed from" log line (:func:`check_resume`'s dry load)."""
        ckpt = check_resumable(self.checkpoint_path, self.config, self.table, self.data.identity)
        where = f"checkpoint '{self.checkpoint_path}'"
        if ckpt.get("world_size", 1) != self.dist.world_size:
            raise CheckpointError(f"written by {ckpt.get('world_size')} process(es) but resumed by "
                                  f"{self.dist.world_size}, {where}, expected the same number of processes")
        load_weights(self.model, ckpt["model"], where, "the supernet of the same search settings")
        load_optimizer(self.weight_opt, ckpt["weight_opt"], where)
        load_optimizer(self.alpha_opt, ckpt["alpha_opt"], where)
        self.state = SearchState.from_checkpoint(ckpt["state"], self.config.epochs, where)
        self._check_progress(where)
        self._restore_grads(ckpt.get("grads_kept", []))
        try:
            torch.set_rng_state(ckpt["rng"][self.dist.rank])
        except (RuntimeError, IndexError, TypeError) as e:
            raise CheckpointError(f"bad random-number state ({e}), {where} rng, expected the state torch saved"
                                  ) from None
        if not quiet:
            logger.info("resumed from %s at epoch %d, step %d", self.checkpoint_path, self.state.epoch + 1,
                        self.state.step)

    def _check_progress(self, where: str) -> None:
        """The loaded counters fit this data: ``step`` within its epoch, ``global_step`` the steps taken so far."""
        s = self.state
        done = sum(self.steps_per_epoch(e) for e in range(s.epoch))
        total = self.steps_per_epoch(s.epoch) if s.epoch < self.config.epochs else 0
        if s.step > total or s.global_step != done + s.step:
            raise CheckpointError(f"bad progress (epoch {s.epoch}, step {s.step}, global step {s.global_step}), "
                                  f"{where} state, expected step <= {total} and global step = {done} + step "
                                  "(the steps of this data so far)")

    def _run_epoch(self, stop_at: int | None) -> bool:
        """One (possibly partial) epoch; returns False when ``stop_at`` global steps were reached."""
        s, every = self.state, self.config.checkpoint_every
        total = self.steps_per_epoch(s.epoch)
        self._set_lrs()
        with tqdm(total=total, initial=s.step, desc=f"search epoch {s.epoch + 1}/{self.config.epochs}",
                  disable=not self.progress, leave=False, dynamic_ncols=True) as bar:
            while s.step < total:
                m = self._step()
                bar.update(1)
                if "val_loss" in m:
                    bar.set_postfix(loss=f"{m['train_loss']:.3f}", val_acc_train_mode=f"{m['val_acc_train_mode']:.2f}",
                                    lat=f"{m['latency_ms']:.2f}ms")
                else:
                    bar.set_postfix(loss=f"{m['train_loss']:.3f}", phase="warm-up")
                if stop_at is not None and s.global_step >= stop_at:
                    return False
                if every and s.global_step % every == 0 and s.step < total:
                    self.save()
        self._end_epoch()
        self.save()
        for callback in self.epoch_callbacks:
            callback(s.history[-1]["epoch"], s.history[-1])
        return True

    def run(self, resume: bool = False, stop_after_steps: int | None = None) -> SearchResult | None:
        """Search to the end (or stop, as if killed, after ``stop_after_steps`` steps and return None)."""
        if resume:
            self.load()
        while self.state.epoch < self.config.epochs:
            if not self._run_epoch(stop_after_steps):
                return None
        return self.result()

    def select_by_score(self, alpha_genotype: Genotype) -> tuple[Genotype, dict[str, Any]]:
        """``derive='score'``: the best of the alpha genotype and ``derive_samples`` random genotypes (drawn with a
        generator seeded by the search's seed) by the supernet's fixed-path validation score; in a hardware-aware
        search (a latency table and a latency weight > 0) only genotypes whose predicted latency is at most the
        alpha genotype's compete, so the search's latency is kept. Returns the genotype and a record for the report."""
        from hwnas.search.scoring import random_genotypes, select_by_score

        g = torch.Generator().manual_seed(mix_seed(self.config.seed, DERIVE_STREAM, 0))
        pool = [alpha_genotype, *random_genotypes(self.config.space, self.config.derive_samples, g,
                                                  self.model.alphas.shape[0])]
        hardware_aware = self.table is not None and self.config.latency_weight > 0
        bound = self.table.genotype_latency_ms(alpha_genotype) if hardware_aware else None
        allowed = None if bound is None else (lambda geno: self.table.genotype_latency_ms(geno) <= bound + 1e-9)
        scores = select_by_score(self.model, self.data, pool, allowed=allowed)  # on copies: the supernet is untouched
        alpha_score = next(s for s in scores if s.genotype == alpha_genotype.tostr())
        logger.info("derive=score: %s (val acc %.3f) of %d genotypes scored; argmax alpha %s (val acc %.3f)",
                    scores[0].genotype, scores[0].val_acc, len(scores), alpha_genotype.tostr(), alpha_score.val_acc)
        record = {"method": "score", "samples": self.config.derive_samples, "scored": len(scores),
                  "latency_bound_ms": bound, "alpha_genotype": dataclasses.asdict(alpha_score),
                  "top": [dataclasses.asdict(s) for s in scores[:10]]}
        return Genotype.fromstr(scores[0].genotype), record

    @torch.no_grad()
    def validation_accuracy(self) -> float:
        """Top-1 identity accuracy of the supernet (eval mode, current top-k) over one validation pass
        (``val_acc_eval_mode``); every submodule's train/eval mode is restored afterwards."""
        val = self.data.val_eval if self.data.val_eval is not None else self.data.val
        correct = seen = 0
        with eval_mode(self.model):
            for i in range(val.num_batches(0)):
                x, y = val.batch(0, i)
                logits = self.model(x.to(self.device)).logits[0]
                correct += int((logits.argmax(1).cpu() == y).sum())
                seen += len(y)
        return correct / max(seen, 1)

    def result(self) -> SearchResult:
        alphas = self.model.alphas.detach().cpu().clone()
        expected = self.expected_latency()
        genotype, selection = derive_genotype(alphas, self.config.space), None
        if self.config.derive == "score":
            genotype, selection = self.select_by_score(genotype)
        return SearchResult(genotype=genotype, alphas=alphas, selection=selection,
                            topk=topk_genotypes(alphas, self.config.space, self.config.topk),
                            history=list(self.state.history), val_acc_eval_mode=self.validation_accuracy(),
                            expected_latency_ms=None if expected is None else float(expected.detach()),
                            decisiveness=decisiveness(alphas, self.config.space))
