"""Final-training configuration: the original code's defaults (DESIGN 3) as a frozen dataclass."""
from __future__ import annotations

import math
import unicodedata
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from hwnas._cli import SEED_MAX
from hwnas._limits import FLOAT32_TINY as TINY
from hwnas._limits import (GAMMA_RANGE, LR_RANGE, MARGIN_MAX, MAX_INPUT_SIDE, MAX_WORKERS, SCHEDULED_LR_MIN,
                           WEIGHT_DECAY_MAX)
from hwnas.data.config import DataConfig
from hwnas.errors import ConfigError, UsageError

PAPER_EPOCHS = 350
PAPER_MILESTONES = (150, 225, 300)

LABEL_SMOOTHING_MAX = 0.999  # < 1 in float32 too (0.9999999999999999 is 1.0 there)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (SGD, step schedule, P x K batches, softmax + triplet).

    lr is multiplied by ``gamma`` at each epoch of ``milestones`` (epochs are 1-based); the first
    ``warmup_epochs`` ramp linearly from lr/10. ``eval_every`` = 0 evaluates only after the last epoch.
    ``amp`` applies on CUDA only. ``seed`` fixes the model init, the batches and the augmentation of every epoch.
    ``channels_last`` keeps the model's weights and the training batches in NHWC memory layout
    (``torch.channels_last``): the same computation in another layout (it changes only rounding, as the thread
    count does, so :meth:`Trainer.resume` accepts a checkpoint of the other layout); training steps x1.33-1.35
    faster on a CPU with oneDNN (CDNet x0.5 at 64x32, batch 32, 1 thread: benchmarks/results/channels_last.md); on CUDA
    it feeds tensor cores under AMP.

    Ranges (float settings must stay representable in float32, see the module constants): ``lr`` 1e-10..1000, and
    every lr of the schedule (``lr * gamma**k``, lr/10 at a warm-up's start) 1e-30..1000; ``gamma`` 1e-6..1000;
    ``momentum`` 0 or 1e-30..<1; ``weight_decay`` 0 or 1e-30..1000; ``margin`` 0 or 1e-30..10000;
    ``label_smoothing`` 0 or 1e-30..0.999; ``seed`` 0..2147483647 (:data:`hwnas._cli.SEED_MAX`).
    """

    epochs: int = PAPER_EPOCHS
    lr: float = 0.065
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = PAPER_MILESTONES
    gamma: float = 0.1
    warmup_epochs: int = 0
    batch_size: int = 64
    num_instances: int = 4
    height: int = 256
    width: int = 128
    label_smoothing: float = 0.0
    margin: float = 0.3
    eval_every: int = 50
    eval_at_start: bool = False
    eval_flip: bool = False
    test_batch_size: int = 128
    num_workers: int = 0
    amp: bool = True
    seed: int = 0
    channels_last: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> UsageError:
            return UsageError(f"bad value {getattr(self, name)!r}, TrainConfig.{name}, expected {expected}")

        for name in ("epochs", "batch_size", "num_instances", "height", "width", "test_batch_size"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "an integer >= 1")
        for name in ("height", "width"):
            if int(getattr(self, name)) > MAX_INPUT_SIDE:
                raise bad(name, f"at most {MAX_INPUT_SIDE} pixels")
        for name in ("warmup_epochs", "eval_every", "num_workers"):
            if int(getattr(self, name)) < 0:
                raise bad(name, "an integer >= 0")
        if self.num_workers > MAX_WORKERS:
            raise bad("num_workers", f"at most {MAX_WORKERS} DataLoader worker processes")
        for name in ("lr", "momentum", "weight_decay", "gamma", "label_smoothing", "margin"):
            if not math.isfinite(getattr(self, name)):
                raise bad(name, "a finite number")
        if not LR_RANGE[0] <= self.lr <= LR_RANGE[1]:
            raise bad("lr", f"a number between {LR_RANGE[0]:g} and {LR_RANGE[1]:g}")
        for name in ("momentum", "weight_decay", "gamma", "margin"):
            if getattr(self, name) < 0:
                raise bad(name, "a number >= 0")
        if not self.momentum < 1:
            raise bad("momentum", "a number in [0, 1) (SGD diverges at 1 and above)")
        if not self.gamma > 0:
            raise bad("gamma", "a number > 0 (0 would stop training at the first milestone)")
        if not GAMMA_RANGE[0] <= self.gamma <= GAMMA_RANGE[1]:
            raise bad("gamma", f"a number between {GAMMA_RANGE[0]:g} and {GAMMA_RANGE[1]:g}")
        if not 0 <= self.seed <= SEED_MAX:
            raise bad("seed", f"an integer between 0 and {SEED_MAX}")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "a number in [0, 1)")
        for name, top in (("momentum", None), ("weight_decay", WEIGHT_DECAY_MAX), ("margin", MARGIN_MAX),
                          ("label_smoothing", LABEL_SMOOTHING_MAX)):
            value = getattr(self, name)
            if 0 < value < TINY or (top is not None and value > top):
                span = f"between {TINY:g} and {top:g}" if top is not None else f"from {TINY:g} to below 1"
                raise bad(name, f"0 or a number {span} (so that float32 holds it)")
        if self.batch_size % self.num_instances or self.batch_size < 2 * self.num_instances:
            raise bad("batch_size", f"a multiple of num_instances ({self.num_instances}) covering at least 2 "
                                    "identities (the triplet loss needs negatives)")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise bad("milestones", "strictly increasing epochs >= 1")
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise bad("warmup_epochs", f"fewer than epochs ({self.epochs})")
        self._check_scheduled_lr()

    def _check_scheduled_lr(self) -> None:
        """Every lr of the schedule (lr * gamma**k after k milestones, times 0.1 at a warm-up's first epoch) within
        SCHEDULED_LR_MIN..LR_RANGE[1]: after 20 milestones at gamma 1e-6 the lr would be 0 in float32 (a silent
        no-op step), after 200 at gamma 10 it would overflow. Computed in log space (no overflow here)."""
        n = len(self.milestones)
        logs = [math.log10(self.lr), math.log10(self.lr) + n * math.log10(self.gamma)]
        low = min(logs) + (-1.0 if self.warmup_epochs else 0.0)
        high = max(logs)
        reached = low if low < math.log10(SCHEDULED_LR_MIN) else high if high > math.log10(LR_RANGE[1]) else None
        if reached is not None:
            raise UsageError(
                f"bad schedule lr {self.lr:g} x gamma {self.gamma:g}^{n} milestones"
                f"{' x 0.1 warm-up' if self.warmup_epochs else ''} (reaches about 1e{reached:+.0f}), "
                f"TrainConfig.gamma, expected every lr of the schedule between {SCHEDULED_LR_MIN:g} and "
                f"{LR_RANGE[1]:g} (fewer milestones or a gamma nearer 1)")

    def check_milestones_apply(self) -> None:
        """Refuse lr milestones after the last epoch (1-based), which would never apply. Not part of construction,
        so library code may shorten the paper's schedule; the command line, where a user wrote the schedule, calls
        it. Raises :class:`hwnas.errors.UsageError`."""
        late = [m for m in self.milestones if m > self.epochs]
        if late:
            raise UsageError(f"bad value {list(self.milestones)!r}, train.milestones (--milestones), expected epochs in "
                             f"1..epochs = 1..{self.epochs} ({late} would never apply)")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch``."""
        lr = self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        if epoch <= self.warmup_epochs:
            lr *= 0.1 + 0.9 * (epoch - 1) / self.warmup_epochs
        return lr

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}, {where}, expected fields of "
                              f"TrainConfig: {', '.join(sorted(known))}")
        data = dict(data)
        if "milestones" in data:
            data["milestones"] = tuple(int(m) for m in data["milestones"])
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def scaled_milestones(epochs: int, milestones: tuple[int, ...] = PAPER_MILESTONES,
                      base_epochs: int = PAPER_EPOCHS) -> tuple[int, ...]:
    """The paper's milestones at the same fractions of a shorter or longer run (used when only epochs change).

    Milestones are kept >= 2 so the first epoch always trains at the full lr; those beyond ``epochs`` are dropped.
    """
    return tuple(sorted(m for m in {max(2, round(m * epochs / base_epochs)) for m in milestones} if m <= epochs))


SYNTHETIC_EPOCHS = 15  # the short default schedule on synthetic data (minutes on a CPU)


@dataclass(frozen=True)
class TrainRunConfig:
    """Everything that decides a training run: what a config file for ``hwnas train`` holds (sections).

    ``model``/``model_options``: a registered model and its options (``num_classes`` comes from the data);
    ``data``: the dataset; ``train``: the hyper-parameters; ``load_weights``: a checkpoint (or state-dict file) to
    start from instead of the random initialisation (fine-tuning). The output folder, device, threads and progress
    bars are not part of it.
    """

    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    load_weights: str | None = None

    def __post_init__(self) -> None:
        if self.load_weights is None:
            return
        path = str(self.load_weights)
        if not path.strip():
            raise UsageError("empty file name, TrainRunConfig.load_weights, expected a checkpoint or state-dict file")
        bad = next(((i, c) for i, c in enumerate(path) if unicodedata.category(c) == "Cc"), None)
        if bad is not None:  # NUL, newline, escape...: no file has it that a user meant, and it cannot be echoed
            raise UsageError(f"file name has control character {bad[1]!r} at position {bad[0]}, "
                             "TrainRunConfig.load_weights, expected a checkpoint or state-dict file path without "
                             "control characters")


def with_default_schedule(run: TrainRunConfig, epochs_set: bool, milestones_set: bool) -> TrainRunConfig:
    """The schedule's derived defaults: 15 epochs on synthetic data unless epochs were given, and milestones at the
    paper's fractions of the run unless they were given."""
    cfg = run.train
    epochs = cfg.epochs if epochs_set or not run.data.synthetic else SYNTHETIC_EPOCHS
    milestones = cfg.milestones if milestones_set else scaled_milestones(epochs)
    if (epochs, milestones) == (cfg.epochs, cfg.milestones):
        return run
    return replace(run, train=cfg.replace(epochs=epochs, milestones=milestones))
