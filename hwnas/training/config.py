"""Final-training configuration: the original code's defaults (DESIGN 3) as a frozen dataclass."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

PAPER_EPOCHS = 350
PAPER_MILESTONES = (150, 225, 300)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (SGD, step schedule, P x K batches, softmax + triplet).

    lr is multiplied by ``gamma`` at each epoch of ``milestones`` (epochs are 1-based); the first
    ``warmup_epochs`` ramp linearly from lr/10. ``eval_every`` = 0 evaluates only after the last epoch.
    ``amp`` applies on CUDA only. ``seed`` fixes the model init, the batches and the augmentation of every epoch.
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

    def __post_init__(self) -> None:
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.lr > 0, "lr must be > 0"),
                  (self.batch_size % self.num_instances == 0, "batch_size must be a multiple of num_instances"),
                  (self.height > 0 and self.width > 0, "height and width must be > 0"),
                  (list(self.milestones) == sorted(self.milestones), "milestones must be increasing"),
                  (0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0, "warmup_epochs must be < epochs"),
                  (self.eval_every >= 0, "eval_every must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {msg} (got {self})")

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
            raise ValueError(f"{where}: unknown training option(s) {', '.join(unknown)}")
        data = dict(data)
        if "milestones" in data:
            data["milestones"] = tuple(int(m) for m in data["milestones"])
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def scaled_milestones(epochs: int, milestones: tuple[int, ...] = PAPER_MILESTONES,
                      base_epochs: int = PAPER_EPOCHS) -> tuple[int, ...]:
    """The paper's milestones at the same fractions of a shorter or longer run (used when only epochs change).

    Milestones are kept >= 2 so the first epoch always trains at the full lr.
    """
    return tuple(sorted({max(2, round(m * epochs / base_epochs)) for m in milestones}))
