"""Settings of one evaluation (``hwnas evaluate``) as frozen dataclasses: what its config file holds."""
from __future__ import annotations

from dataclasses import dataclass, field

from hwnas._limits import MAX_WORKERS
from hwnas.data.config import DataConfig
from hwnas.errors import UsageError

METRICS = ("euclidean", "cosine")
MAX_TOPK = 50  # gallery images per query in a ranked-results row (torchreid's visrank draws 10)


@dataclass(frozen=True)
class EvalConfig:
    """How features are computed and ranked (Market-1501 protocol, DESIGN 3).

    ``height``/``width``: input size in pixels (``None``: the checkpoint's training size). ``flip`` averages the
    features of each image and its mirror; ``rerank`` applies k-reciprocal re-ranking (k1=20, k2=6,
    lambda=0.3); ``metric``: euclidean (squared) or cosine distance; ``amp``: float16 autocast on CUDA.
    ``visualize_ranks``: draw the ranked results of that many queries, ``topk`` gallery images each (0: none).
    """

    height: int | None = None
    width: int | None = None
    batch_size: int = 128
    num_workers: int = 0
    flip: bool = False
    rerank: bool = False
    metric: str = "euclidean"
    amp: bool = True
    visualize_ranks: int = 0
    topk: int = 10

    def __post_init__(self) -> None:
        if (self.height is None) != (self.width is None):
            raise UsageError(f"only one of height/width ({self.height}/{self.width}), EvalConfig.height, expected "
                             "both or neither")
        for name in ("height", "width", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"bad value {value!r}, EvalConfig.{name}, expected an integer >= 1")
        for name, minimum in (("num_workers", 0), ("visualize_ranks", 0), ("topk", 1)):
            if getattr(self, name) < minimum:
                raise UsageError(f"bad value {getattr(self, name)!r}, EvalConfig.{name}, expected an integer >= "
                                 f"{minimum}")
        if self.num_workers > MAX_WORKERS:
            raise UsageError(f"bad value {self.num_workers!r}, EvalConfig.num_workers, expected at most {MAX_WORKERS} "
                             "DataLoader worker processes")
        if self.topk > MAX_TOPK:
            raise UsageError(f"bad value {self.topk!r}, EvalConfig.topk, expected at most {MAX_TOPK} gallery "
                             "images per row of the ranked results")
        if self.metric not in METRICS:
            raise UsageError(f"unknown metric {self.metric!r}, EvalConfig.metric, expected one of {', '.join(METRICS)}")


@dataclass(frozen=True)
class EvalRunConfig:
    """A config file for ``hwnas evaluate``: the checkpoint, the data and the settings."""

    checkpoint: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
